"""Print what a Redis stream holds, oldest first, or delete it (``--delete``).

    python examples/nightly_report/read_stream.py redis://127.0.0.1:6379/0 nightly-reports

Each entry is what `RedisStreamSink` appended for one emitted message: its fields ``key``
(stable per message: consumers deduplicate by it), ``topic``, ``payload`` (JSON),
``instance``, ``thread`` and ``step``. A consumer would read it with XREAD or XREADGROUP.
"""

from __future__ import annotations

import sys

import redis


def main(url: str, stream: str, delete: bool) -> None:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        if delete:
            client.delete(stream)
            return
        entries = client.xrange(stream)
        print(f"stream {stream!r}: {len(entries)} message(s)")
        for _, fields in entries:
            print(f"  {fields['key']}  {fields['topic']}  {fields['payload']}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--delete"]
    if len(args) != 2:
        sys.exit("usage: read_stream.py REDIS_URL STREAM [--delete]")
    main(args[0], args[1], "--delete" in sys.argv[1:])
