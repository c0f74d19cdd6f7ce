"""The tally counter component in a Python service: wasmtime from PyPI, storage in Python.

Copy this file into a service. It loads the component (`tally component --out counter.wasm`),
links WASI and `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`) implemented in Python over
a store of your choice, and calls `tally:counter/counter@0.2.1` and `tally:counter/window@0.2.1`
with Python types:

    counters = Counters("counter.wasm", SqliteStore("counters.db"))
    counters.increment("visits")          # 1
    counters.get("visits")                # 1
    counters.get("")                      # raises CounterError (case "invalid-name")
    counters.hit("api:client-7", length_ms=60_000, limit=100)   # {"count": 1, "allowed": True, ...}

Each call runs in a fresh instance of the component (it keeps no state; every value lives in the
store), as tally's own server does per request. Two stores:

- `SqliteStore(path)`: Python's `sqlite3`, one table `kv (key, value)`, WAL with
  `synchronous=FULL`; an increment is one `BEGIN IMMEDIATE` transaction.
- `RedisStore(url)`: redis-py; a counter is the plain key of that name, so `tally --store
  redis://...`, `redis-cli INCR` and this host move the same counters. An increment is one Lua
  script (atomic on the server); Redis counters are signed 64-bit.

Values are ASCII decimal, as in every tally store; an increment never passes the store's range
(it fails with a message naming the overflow, which the component reports as `overflow`).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Dict, List, Optional, Sequence, Tuple

import wasmtime
from wasmtime import component as wc

U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
COUNTER_INTERFACE = "tally:counter/counter@0.2.1"
WINDOW_INTERFACE = "tally:counter/window@0.2.1"
HIT_FIELDS = ("count", "used", "allowed", "remaining", "window-start", "resets-at")
PAGE_SIZE = 1000


class StoreError(Exception):
    """A store's failure. The component sees it as `wasi:keyvalue`'s `other` error, with this
    text (which says "overflow" for an increment past the store's range)."""


class CounterError(Exception):
    """The component refused a call: `case` is the WIT `error` case (`invalid-name`,
    `overflow`, `corrupt-value`, `store-failure`, `invalid-page`, and for windows
    `invalid-window`), `detail` its payload."""

    def __init__(self, case: str, detail: str):
        super().__init__(f"{case}: {detail}")
        self.case = case
        self.detail = detail


def incremented(key: str, current: Optional[bytes], delta: int, limit: int) -> int:
    """The increment rule of every tally store: absent is 0, anything but decimal digits is
    refused, and the sum never passes `limit`."""
    if current is None:
        value = 0
    elif current.isdigit() and current.isascii():
        value = int(current)
    else:
        raise StoreError(f"cannot increment {key!r}: its stored value is not a decimal u64")
    if value + delta > limit:
        raise StoreError(f"cannot increment {key!r} by {delta}: {value} + {delta} would overflow")
    return value + delta


UPSERT = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class SqliteStore:
    """Counters in a SQLite file of this host's own (one table `kv`)."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def get(self, key: str) -> Optional[bytes]:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes) -> None:
        # An upsert keeps the row (and its rowid, the listing order); REPLACE would move it.
        self.db.execute(UPSERT, (key, value))

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def keys(self, cursor: Optional[int]) -> Tuple[List[str], Optional[int]]:
        """A page of keys in insertion order (rowid), and the cursor of the next page: a key
        present during a whole listing is on exactly one page."""
        rows = self.db.execute(
            "SELECT rowid, key FROM kv WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (cursor or 0, PAGE_SIZE),
        ).fetchall()
        more = len(rows) == PAGE_SIZE
        return [key for _, key in rows], rows[-1][0] if more else None

    def increment(self, key: str, delta: int) -> int:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            new = incremented(key, self.get(key), delta, U64_MAX)
            self.set(key, str(new).encode())
            self.db.execute("COMMIT")
            return new
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def set_many(self, pairs: Sequence[Tuple[str, bytes]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(UPSERT, pairs)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise


# One atomic step on the server: refuse a value that is not digits, then INCRBY (which refuses
# passing the i64 range); the stored text is the answer (Lua numbers are doubles).
INCREMENT_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value and not string.match(value, '^%d+$') then return {1} end
local added = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(added) == 'table' and added.err then return {2} end
return {0, redis.call('GET', KEYS[1])}
"""


class RedisStore:
    """Counters as plain keys of a Redis database, shared with `tally --store redis://...`."""

    def __init__(self, url: str):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.script = self.redis.register_script(INCREMENT_SCRIPT)

    def get(self, key: str) -> Optional[bytes]:
        return self.redis.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.redis.set(key, value)

    def delete(self, key: str) -> None:
        self.redis.delete(key)

    def keys(self, cursor: Optional[int]) -> Tuple[List[str], Optional[int]]:
        """One `SCAN` step; tally's idempotency records (a control character first) and keys
        that are not UTF-8 are no counters."""
        following, keys = self.redis.scan(cursor or 0, count=PAGE_SIZE)
        names = []
        for key in keys:
            try:
                name = key.decode()
            except UnicodeDecodeError:
                continue
            if not name.startswith("\x1f"):
                names.append(name)
        return names, following or None

    def increment(self, key: str, delta: int) -> int:
        if delta > I64_MAX:
            raise StoreError(f"cannot increment {key!r} by {delta}: it would overflow Redis's range")
        status, *value = self.script(keys=[key], args=[delta])
        if status == 1:
            raise StoreError(f"cannot increment {key!r}: its stored value is not a decimal u64")
        if status == 2:
            raise StoreError(f"cannot increment {key!r} by {delta}: it would overflow Redis's range")
        return int(value[0])

    def set_many(self, pairs: Sequence[Tuple[str, bytes]]) -> None:
        if pairs:
            self.redis.mset(dict(pairs))


def _other(error: Exception) -> wc.Variant:
    """A store failure as `wasi:keyvalue`'s error."""
    return wc.Variant("other", str(error))


class Counters:
    """The counter component over one store: each method is one call of
    `tally:counter/counter@0.2.1` (or `window@0.2.1`) in a fresh instance. Refusals raise
    `CounterError`."""

    def __init__(self, component_path: str, store):
        self.store = store
        self.engine = wasmtime.Engine()
        self.component = wc.Component.from_file(self.engine, component_path)
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self._link_keyvalue()

    def _link_keyvalue(self) -> None:
        store = self.store
        bucket_type = wc.ResourceType.host(1)

        # Every method gets the guest's bucket as a borrowed handle, which it must drop before
        # it returns; the only bucket is the default one, "".
        def method(body):
            def run(context, bucket, *args):
                bucket.drop(context)
                try:
                    return body(*args)
                except StoreError as error:
                    return _other(error)

            return run

        def open_bucket(context, name):
            if name != "":
                return wc.Variant("no-such-store")
            return wc.ResourceHost.own(0, 1)

        def list_keys(cursor):
            keys, following = store.keys(cursor)
            response = wc.Record()
            response.keys = keys
            response.cursor = following
            return response

        def get_many(keys):
            return [(key, value) if (value := store.get(key)) is not None else None for key in keys]

        def delete_many(keys):
            for key in keys:
                store.delete(key)

        with self.linker.root() as root:
            with root.add_instance("wasi:keyvalue/store@0.2.0-draft") as kv:
                kv.add_resource("bucket", bucket_type, lambda context, rep: None)
                kv.add_func("open", open_bucket)
                kv.add_func("[method]bucket.get", method(store.get))
                kv.add_func("[method]bucket.set", method(lambda key, value: store.set(key, bytes(value))))
                kv.add_func("[method]bucket.delete", method(store.delete))
                kv.add_func("[method]bucket.exists", method(lambda key: store.get(key) is not None))
                kv.add_func("[method]bucket.list-keys", method(list_keys))
            with root.add_instance("wasi:keyvalue/atomics@0.2.0-draft") as atomics:
                atomics.add_func("increment", method(store.increment))
            with root.add_instance("wasi:keyvalue/batch@0.2.0-draft") as batch:
                batch.add_func("get-many", method(get_many))
                batch.add_func(
                    "set-many", method(lambda pairs: store.set_many([(k, bytes(v)) for k, v in pairs]))
                )
                batch.add_func("delete-many", method(delete_many))

    def _call(self, name: str, *args, interface_name: str = COUNTER_INTERFACE):
        context = wasmtime.Store(self.engine)
        context.set_wasi(wasmtime.WasiConfig())
        instance = self.linker.instantiate(context, self.component)
        interface = instance.get_export_index(context, interface_name)
        func = instance.get_func(context, instance.get_export_index(context, name, interface))
        answer = func(context, *args)
        func.post_return(context)
        if isinstance(answer, wc.Variant):
            raise CounterError(answer.tag, answer.payload)
        return answer

    def get(self, name: str) -> int:
        """The counter's value; 0 for one never written."""
        return self._call("get", name)

    def find(self, name: str) -> Optional[int]:
        """The counter's value; `None` for one never written."""
        return self._call("find", name)

    def find_many(self, names: Sequence[str]) -> List[Optional[int]]:
        """Several counters in one call."""
        return self._call("find-many", list(names))

    def increment(self, name: str, by: int = 1) -> int:
        """Adds `by` (one atomic step in the store) and returns the new value."""
        return self._call("increment", name, by)

    def set(self, name: str, value: int) -> None:
        self._call("set", name, value)

    def reset(self, name: str) -> None:
        """Removes the counter: it reads 0 again."""
        self._call("reset", name)

    def list_page(self, cursor: Optional[str], limit: int) -> Tuple[List[Tuple[str, int]], Optional[str]]:
        """At most `limit` (1-1000) counters and their values, and the cursor of the next page."""
        page = self._call("list-page", cursor, limit)
        return list(page.counters), page.next

    def hit(
        self,
        name: str,
        length_ms: int,
        limit: int,
        cost: int = 1,
        policy: str = "fixed",
        keep: int = 60,
        now_ms: Optional[int] = None,
    ) -> Dict[str, object]:
        """Adds `cost` to the window of `length_ms` that holds now (`now_ms`, milliseconds since
        the Unix epoch; the system clock when `None`) and checks it against `limit` (`policy`
        `fixed` or `sliding`): `count`, `used`, `allowed`, `remaining`, `window-start`,
        `resets-at`. The first hit of a window deletes the one `keep` windows before it."""
        spec = wc.Record()
        setattr(spec, "length-ms", length_ms)
        spec.keep = keep
        now = int(time.time() * 1000) if now_ms is None else now_ms
        outcome = self._call(
            "hit", name, spec, cost, limit, policy, now, interface_name=WINDOW_INTERFACE
        )
        return {field: getattr(outcome, field) for field in HIT_FIELDS}

    def history(self, name: str, length_ms: int, last: int, now_ms: Optional[int] = None) -> List[int]:
        """The counts of the `last` windows of `length_ms` up to now, oldest first."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return self._call("history", name, length_ms, last, now, interface_name=WINDOW_INTERFACE)
