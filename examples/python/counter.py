"""A command line over `tally_counter`: what the Python section of docs/embedding.md runs, and the tests.

    python counter.py COMPONENT STORE COMMAND [ARGS...]

STORE is `sqlite:PATH` or a `redis://HOST:PORT/DB` URL. COMMAND is one of `get NAME`,
`find NAME`, `find-many NAME...`, `incr NAME [BY]`, `set NAME VALUE`, `reset NAME`,
`page LIMIT [CURSOR]` (the counters, then `next: CURSOR` when more follow), `hammer NAME N`
(N increments, each its own call), `hit NAME LENGTH_MS LIMIT COST POLICY NOW_MS` (the outcome as
one JSON line) and `history NAME LENGTH_MS LAST NOW_MS`. A refusal prints `error: CASE: DETAIL`
and exits 1.
"""

import json
import sys

from tally_counter import CounterError, Counters, RedisStore, SqliteStore


def open_store(spec: str):
    if spec.startswith("sqlite:"):
        return SqliteStore(spec[len("sqlite:"):])
    if spec.startswith("redis://"):
        return RedisStore(spec)
    raise SystemExit(f"error: a store is sqlite:PATH or redis://HOST:PORT/DB, not {spec!r}")


def main(component: str, store: str, command: str, *args: str) -> None:
    counters = Counters(component, open_store(store))
    if command == "get":
        print(counters.get(args[0]))
    elif command == "find":
        print(counters.find(args[0]))
    elif command == "find-many":
        print(counters.find_many(args))
    elif command == "incr":
        print(counters.increment(args[0], int(args[1]) if len(args) > 1 else 1))
    elif command == "set":
        counters.set(args[0], int(args[1]))
    elif command == "reset":
        counters.reset(args[0])
    elif command == "page":
        counters_, following = counters.list_page(args[1] if len(args) > 1 else None, int(args[0]))
        for name, value in counters_:
            print(f"{name}\t{value}")
        if following is not None:
            print(f"next: {following}")
    elif command == "hammer":
        for _ in range(int(args[1])):
            counters.increment(args[0])
    elif command == "hit":
        name, length_ms, limit, cost, policy, now_ms = args
        outcome = counters.hit(
            name, int(length_ms), int(limit), int(cost), policy, now_ms=int(now_ms)
        )
        print(json.dumps(outcome, sort_keys=True))
    elif command == "history":
        name, length_ms, last, now_ms = args
        print(counters.history(name, int(length_ms), int(last), now_ms=int(now_ms)))
    else:
        raise SystemExit(f"error: unknown command {command!r}")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except CounterError as error:
        print(f"error: {error.case}: {error.detail}", file=sys.stderr)
        sys.exit(1)
