#!/bin/sh
# A nightly report, operated from the command line: schedule it, fire it, let a worker publish
# it to a Redis stream, then look at one night's history, rewind it and prune the rest.
# README.md beside this file walks through what each command prints.
#
#   sh examples/nightly_report/run.sh [FOLDER]
#
# The SQLite file (nightly.db) goes into FOLDER, default a fresh temporary folder. Needs
# `pip install 'stmtflow[redis]'` and a Redis server: $REDIS_URL, default
# redis://127.0.0.1:6379/0. The stream is $STREAM (default nightly-reports), emptied first.
# Set STMTFLOW to another command (e.g. "python -m stmtflow.cli") if `stmtflow` is not on
# PATH, and PYTHON to the interpreter with stmtflow installed (default python3).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
stmtflow=${STMTFLOW:-stmtflow}
python=${PYTHON:-python3}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
stream=${STREAM:-nightly-reports}
folder=${1:-$(mktemp -d "${TMPDIR:-/tmp}/nightly-report.XXXXXX")}
mkdir -p "$folder"
export STMTFLOW_DB="sqlite:///$folder/nightly.db"
sink="$redis_url?stream=$stream"
night1="nightly-report@2026-03-01T01:30:00Z"

if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); else bold="" plain=""; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

echo "store: $STMTFLOW_DB; stream: $stream on $redis_url"
"$python" "$here/read_stream.py" "$redis_url" "$stream" --delete

# 1. A schedule: every night at 02:30 in Paris (01:30 UTC in winter). The store remembers the
#    target, so a bare `stmtflow worker` can import the workflow.
step stmtflow schedule add nightly-report examples/nightly_report/report.py:NightlyReport "'30 2 * * *'" \
    --timezone Europe/Paris --input "'{\"region\": \"EU\"}'"
$stmtflow schedule add nightly-report "$here/report.py:NightlyReport" '30 2 * * *' \
    --timezone Europe/Paris --input '{"region": "EU"}'

# 2. Two nights that never ran (the service was not deployed yet), and one fire now. Each
#    instance gathers its figures, then waits for the retry of its `render` step.
step stmtflow schedule backfill nightly-report --start 2026-03-01 --end 2026-03-03
$stmtflow schedule backfill nightly-report --start 2026-03-01 --end 2026-03-03
step stmtflow schedule trigger nightly-report
$stmtflow schedule trigger nightly-report

# 3. A worker, in the background until no instance waits any more (at most 30 s): it runs the
#    retries, and its sink appends what `publish` emitted to the Redis stream. SIGTERM lets it
#    finish the unit it is in, and exit.
step stmtflow --sink "'$sink'" worker --poll 0.2 "&"
$stmtflow --sink "$sink" worker --poll 0.2 &
worker=$!
waited=0
until [ "$($stmtflow list --status waiting --json)" = "[]" ] || [ "$waited" -ge 30 ]; do
    sleep 1
    waited=$((waited + 1))
done
step kill -TERM '$!'
kill -TERM "$worker"
wait "$worker"

step stmtflow list
$stmtflow list

# 4. What happened to the first night, event by event (a * marks those a rewind can go back to).
step stmtflow history "$night1"
$stmtflow history "$night1"

# 5. The report template was wrong that night: put the instance back as it stood right after
#    event 2 (`gather` completed), so its next run renders and publishes it again -- with the
#    same outbox key, which the stream's consumers deduplicate by.
step stmtflow rewind "$night1" --to 2
$stmtflow rewind "$night1" --to 2
step stmtflow history "$night1"
$stmtflow history "$night1"

# 6. Delete ended instances (with their history): in production `--older-than 30d`; here every
#    instance that has ended. The rewound one is waiting again, so it is kept.
step stmtflow prune --older-than 0s
$stmtflow prune --older-than 0s
step stmtflow list
$stmtflow list

# 7. What the stream's consumers got: one message per night.
step python examples/nightly_report/read_stream.py "$redis_url" "$stream"
"$python" "$here/read_stream.py" "$redis_url" "$stream"
