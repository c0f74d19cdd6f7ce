"""The commonest counter in the wild, unchanged, against tally's RESP port.

Run by tests/resp_clients.rs as `python redis_py_client.py PORT`; prints one line per step, which
the test compares exactly.
"""

import sys

import redis

port = int(sys.argv[1])

# A plain client, RESP2 (redis-py's default).
r = redis.Redis(host="127.0.0.1", port=port)
print("incr", r.incr("counter"))
print("incr", r.incr("counter"))
print("incrby", r.incr("counter", 40))
print("get", r.get("counter"))
print("missing", r.get("never"))
print("mget", r.mget(["counter", "never"]))
print("exists", r.exists("counter", "never"))
print("set", r.set("other", 7))
print("get", r.get("other"))
print("delete", r.delete("other", "never"))
print("ping", r.ping())

# A pipeline without MULTI: many commands in one write.
pipe = r.pipeline(transaction=False)
for _ in range(5):
    pipe.incr("piped")
pipe.get("piped")
print("pipeline", pipe.execute())

for i in range(30):
    r.set(f"user:{i:02}", i)
print("scan_iter", len(sorted(r.scan_iter(match="user:*", count=7))))
print("keys", sorted(r.keys("user:0*")))

try:
    r.decr("counter")
except redis.ResponseError as error:
    print("decr refused:", str(error).split(",")[0])
try:
    r.incr("counter", -5)
except redis.ResponseError as error:
    print("negative refused:", str(error).split(",")[0])
try:
    r.set("counter", "many")
except redis.ResponseError as error:
    print("non-number refused:", str(error).split(";")[0])
print("unchanged", r.get("counter"))

# A transaction: redis-py's default pipeline sends MULTI, the commands and EXEC in one write.
tx = r.pipeline()
tx.incr("tx")
tx.incr("tx")
tx.incr("tx")
print("transaction", tx.execute())
tx = r.pipeline()
tx.incr("tx")
tx.decr("tx")
try:
    tx.execute()
except redis.ResponseError as error:
    print("transaction refused:", type(error).__name__, str(error).split(",")[0])
print("transaction unchanged", r.get("tx"))

# RESP3 (HELLO 3) with the same commands.
r3 = redis.Redis(host="127.0.0.1", port=port, protocol=3)
print("resp3 incr", r3.incr("counter"))
print("resp3 missing", r3.get("never"))
print("resp3 info", r3.info("server")["redis_version"])
