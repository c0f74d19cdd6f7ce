// node increment.js NAME [BY]: increments a counter through the transpiled component and prints
// the new value. With KV_FILE=counters.json the counters survive from one run to the next.
import { counter } from './out/counter.js';

const [name, by = '1'] = process.argv.slice(2);
try {
  console.log(String(counter.increment(name ?? '', BigInt(by))));
} catch (error) {
  console.error(`increment failed: ${JSON.stringify(error.payload ?? String(error))}`);
  process.exit(1);
}
