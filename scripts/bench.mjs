#!/usr/bin/env node
// `npm run bench [-- name ...]`: build, then run the named benchmarks of bench/ (all when none is named),
// one after another; each writes its table to bench/results/<name>.md. wrk (Debian package) is used when installed.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
const all = readdirSync('bench').filter((f) => f.endsWith('.ts') && f !== 'lib.ts' && !f.endsWith('-server.ts')).map((f) => f.slice(0, -3));
const names = process.argv.slice(2);
for (const n of names) {
  if (!all.includes(n)) {
    console.error(`npm run bench: no benchmark ${n} (there are: ${all.join(', ')})`);
    process.exit(2);
  }
}
const build = spawnSync(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-b', 'packages/verify', 'packages/latchkey'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);
for (const n of names.length ? names : all) {
  console.log(`\n== bench/${n}.ts`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join('bench', `${n}.ts`)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
