// wasi:keyvalue/store, atomics and batch (0.2.0-draft) for the tally counter component in
// Node.js: an in-memory Map per bucket, optionally saved to a JSON file after every write
// (KV_FILE), so counters survive restarts of the Node process too.
//
// jco's conventions: u64 values are BigInts, list<u8> values are Uint8Arrays, an import returns
// `err(e)` by throwing `e` (here a `wasi:keyvalue/store.error` variant: {tag: 'other', val}).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const file = process.env.KV_FILE;
const buckets = new Map(); // identifier -> Map(key -> string)

function load() {
  if (!file || !existsSync(file)) return;
  for (const [name, entries] of Object.entries(JSON.parse(readFileSync(file, 'utf8')))) {
    buckets.set(name, new Map(Object.entries(entries)));
  }
}

function save() {
  if (!file) return;
  const data = Object.fromEntries([...buckets].map(([name, map]) => [name, Object.fromEntries(map)]));
  writeFileSync(`${file}.tmp`, JSON.stringify(data));
  renameSync(`${file}.tmp`, file); // atomic replace
}

load();

class Bucket {
  constructor(map) { this.map = map; }
  get(key) {
    const value = this.map.get(key);
    return value === undefined ? undefined : new TextEncoder().encode(value);
  }
  set(key, value) { this.map.set(key, new TextDecoder().decode(value)); save(); }
  delete(key) { this.map.delete(key); save(); }
  exists(key) { return this.map.has(key); }
  // One page holds every key: a store may choose its page size, and a Map is small.
  listKeys(_cursor) { return { keys: [...this.map.keys()], cursor: undefined }; }
}

export const store = {
  Bucket,
  open(identifier) {
    if (!buckets.has(identifier)) buckets.set(identifier, new Map());
    return new Bucket(buckets.get(identifier));
  },
};

const U64_MAX = (1n << 64n) - 1n;

export const atomics = {
  // Node runs one call at a time, so read-add-write here is atomic.
  increment(bucket, key, delta) {
    const current = bucket.map.get(key) ?? '0';
    if (!/^[0-9]+$/.test(current)) throw { tag: 'other', val: `${key} is not a decimal number` };
    const next = BigInt(current) + delta;
    if (next > U64_MAX) throw { tag: 'other', val: `overflow incrementing ${key}` };
    bucket.map.set(key, next.toString());
    save();
    return next;
  },
};

export const batch = {
  getMany(bucket, keys) {
    return keys.map((key) => {
      const value = bucket.get(key);
      return value === undefined ? undefined : [key, value];
    });
  },
  setMany(bucket, entries) {
    for (const [key, value] of entries) bucket.map.set(key, new TextDecoder().decode(value));
    save();
  },
  deleteMany(bucket, keys) {
    for (const key of keys) bucket.map.delete(key);
    save();
  },
};
