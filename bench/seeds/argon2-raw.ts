/**
 * The limit for sign-in throughput: argon2id verifications alone, with
 * @node-rs/argon2 at latchkey's parameters, in a process of their own (as a
 * server's would be, same libuv thread pool), SEEDS_CONCURRENCY of them in
 * flight at all times. Counts those that complete during SEEDS_SECONDS after a
 * one-second warm-up and prints one JSON line (verifications, seconds, CPU seconds
 * per verification). The runner then kills it: an exit would wait for the thread
 * pool to drain every verification still queued.
 */
import { verify } from '@node-rs/argon2';
import { PASSWORD } from './stacks/common.js';

const hash = process.env.SEEDS_HASH!;
const concurrency = Number(process.env.SEEDS_CONCURRENCY);
const seconds = Number(process.env.SEEDS_SECONDS);

if (!(await verify(hash, PASSWORD))) throw new Error('the hash does not verify the password');
let counted = 0;
let counting = false;
let cpu0 = process.cpuUsage();
let t0 = 0;

for (let i = 0; i < concurrency; i++) {
  void (async () => {
    for (;;) {
      await verify(hash, PASSWORD);
      if (counting) counted++;
    }
  })();
}
setTimeout(() => {
  counting = true;
  cpu0 = process.cpuUsage();
  t0 = performance.now();
  setTimeout(() => {
    const cpu = process.cpuUsage(cpu0);
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ verifications: counted, seconds: s, cpuSecondsPerVerification: (cpu.user + cpu.system) / 1e6 / counted }) + '\n');
  }, seconds * 1000);
}, 1000);
