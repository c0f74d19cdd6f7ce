// Runs the transpiled tally component (out/, made by `npm run transpile`) in Node.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { counter, window } from './out/counter.js';

test('counts', () => {
  assert.equal(counter.increment('visits', 1n), 1n);
  assert.equal(counter.increment('visits', 41n), 42n);
  assert.equal(counter.get('visits'), 42n);
  counter.set('other', 7n);
  assert.deepEqual(counter.list(), [['other', 7n], ['visits', 42n]]);
  assert.deepEqual(counter.listPage(undefined, 1), { counters: [['other', 7n]], next: ':other' });
  assert.deepEqual(counter.listPage(':other', 1), { counters: [['visits', 42n]], next: undefined });
  assert.deepEqual(counter.findMany(['visits', 'never']), [42n, undefined]);
  counter.reset('other');
  assert.equal(counter.get('other'), 0n);
  assert.equal(counter.find('other'), undefined);
});

test('typed errors', () => {
  const payload = (call) => {
    try { call(); } catch (error) { return error.payload; }
    assert.fail('expected an error');
  };
  assert.deepEqual(payload(() => counter.get('')), { tag: 'invalid-name', val: 'a counter name must not be empty' });
  counter.set('big', (1n << 64n) - 1n);
  assert.deepEqual(payload(() => counter.increment('big', 1n)), { tag: 'overflow', val: 'big' });
  assert.equal(counter.get('big'), (1n << 64n) - 1n);
});

test('windows', () => {
  const spec = { lengthMs: 60000n, keep: 2 };
  const hit = (now) => window.hit('api', spec, 1n, 2n, 'fixed', now);
  assert.deepEqual(hit(125000n), {
    count: 1n, used: 1n, allowed: true, remaining: 1n, windowStart: 120000n, resetsAt: 180000n,
  });
  hit(126000n);
  assert.equal(hit(127000n).allowed, false);
  assert.equal(hit(185000n).count, 1n);
  assert.deepEqual([...window.history('api', 60000n, 3, 185000n)], [0n, 3n, 1n]);
  // Windows are not counters.
  assert.deepEqual(counter.list().filter(([name]) => name.startsWith('\u001f')), []);
});
