#!/bin/sh
# The stmtflow quickstart: run an expense approval end to end with the command line, on a
# fresh SQLite file (stmtflow-demo.db in the current directory).
#
#   pip install -e . && sh examples/quickstart.sh
#
# Set STMTFLOW to another command (e.g. "python -m stmtflow.cli") if `stmtflow` is not on PATH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
stmtflow=${STMTFLOW:-stmtflow}
export STMTFLOW_DB="sqlite:///stmtflow-demo.db"
rm -f stmtflow-demo.db stmtflow-demo.db-wal stmtflow-demo.db-shm

if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); else bold="" plain=""; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

step stmtflow run examples/quickstart.py:Expense --id exp-1 --input '{...}'
$stmtflow run "$here/quickstart.py:Expense" --id exp-1 \
    --input '{"employee": "ada", "amount": 42.5, "description": "train ticket"}'

step stmtflow show exp-1
$stmtflow show exp-1

step stmtflow send exp-1 approve '{"approver": "grace", "comment": "ok"}'
$stmtflow send exp-1 approve '{"approver": "grace", "comment": "ok"}'

step stmtflow show exp-1
$stmtflow show exp-1

step stmtflow list
$stmtflow list
