// node hit.js NAME LENGTH_MS LIMIT COST POLICY NOW_MS: one hit of a window through the transpiled
// component, at the time given, and its outcome as one JSON line (the fields of the WIT
// `hit-outcome`, sorted, as the Python example prints them). With KV_FILE=windows.json the
// windows survive from one run to the next.
import { window } from './out/counter.js';

const [name, lengthMs, limit, cost, policy, nowMs] = process.argv.slice(2);
try {
  const outcome = window.hit(
    name ?? '',
    { lengthMs: BigInt(lengthMs), keep: 60 },
    BigInt(cost),
    BigInt(limit),
    policy,
    BigInt(nowMs),
  );
  // u64s are BigInts, which JSON.stringify refuses: written as the numbers they are.
  const fields = [
    ['allowed', outcome.allowed],
    ['count', outcome.count],
    ['remaining', outcome.remaining],
    ['resets-at', outcome.resetsAt],
    ['used', outcome.used],
    ['window-start', outcome.windowStart],
  ];
  console.log(`{${fields.map(([key, value]) => `"${key}": ${String(value)}`).join(', ')}}`);
} catch (error) {
  console.error(`hit failed: ${JSON.stringify(error.payload ?? String(error))}`);
  process.exit(1);
}
