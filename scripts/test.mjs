#!/usr/bin/env node
// `npm test`: build, check what the suite needs, run every test file with node's test runner.
// Extra arguments are passed to `node --test` (e.g. --test-name-pattern=fixation).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return r.status ?? 1;
}

if (run(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-b', 'packages/verify', 'packages/latchkey']) !== 0) {
  console.error('npm test: the TypeScript build failed');
  process.exit(1);
}

// Debian packages the suite needs; installed here when missing and we may (root with apt),
// so `npm ci && npm test` passes on a fresh Debian/Ubuntu machine with nothing pre-installed
const chromium = process.env.LATCHKEY_CHROMIUM ?? '/usr/bin/chromium';
const aptPackages = [];
if (!existsSync(chromium) && !process.env.LATCHKEY_CHROMIUM) aptPackages.push('chromium');
if (aptPackages.length && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
  console.error(`npm test: installing ${aptPackages.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-qq'], { env }) !== 0 || run('apt-get', ['install', '-y', '-qq', ...aptPackages], { env }) !== 0) {
    console.error('npm test: apt-get could not install ' + aptPackages.join(', '));
  }
}

const missing = [];
const need = (ok, what) => { if (!ok) missing.push(what); };
need(existsSync(chromium),
  "Chromium for the browser tests: run 'apt-get install -y chromium' as root (or set LATCHKEY_CHROMIUM to its path)");
if (missing.length) {
  console.error('npm test: cannot run the whole suite, missing:\n' + missing.map((m) => `  - ${m}`).join('\n'));
  process.exit(1);
}

function find(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const files = readdirSync('packages').flatMap((p) => find(join('packages', p, 'test'))).sort();
const extra = process.argv.slice(2);
// a hung test fails with its name after --test-timeout (per test file, since each runs in its own
// process: room for the browser suite on a loaded two-core machine) instead of stalling the run, and a
// test file that leaves a handle open (a socket in keep-alive) cannot keep its process alive
const guards = ['--test-timeout=300000', '--test-force-exit'];
process.exit(run(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...guards, ...extra, ...files]));
