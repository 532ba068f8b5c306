#!/usr/bin/env node
// `npm test`: build, check what the suite needs, start throwaway PostgreSQL and Redis servers,
// run every test file with node's test runner, stop the servers.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresBin, startPostgres } from './pg-server.mjs';
import { startRedis } from './redis-server.mjs';

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
if (!postgresBin()) aptPackages.push('postgresql');
if (!onPath('redis-server')) aptPackages.push('redis-server');
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
need(postgresBin(), "PostgreSQL for the store tests: run 'apt-get install -y postgresql' as root");
need(onPath('redis-server'), "Redis for the shared-state tests: run 'apt-get install -y redis-server' as root");
if (missing.length) {
  console.error('npm test: cannot run the whole suite, missing:\n' + missing.map((m) => `  - ${m}`).join('\n'));
  process.exit(1);
}

function onPath(cmd) {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, cmd)));
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
const all = readdirSync('packages').flatMap((p) => find(join('packages', p, 'test'))).sort();
// `npm test -- path/to/x.test.ts ...` runs only those files (with the services started); other
// arguments go to `node --test` (e.g. --test-name-pattern=fixation)
const args = process.argv.slice(2);
const chosen = args.filter((a) => a.endsWith('.test.ts'));
const extra = args.filter((a) => !a.endsWith('.test.ts'));
const files = chosen.length ? chosen : all;
// a hung test fails with its name after --test-timeout (per test file, since each runs in its own
// process: room for the browser suite on a loaded two-core machine) instead of stalling the run, and a
// test file that leaves a handle open (a socket in keep-alive) cannot keep its process alive
const guards = ['--test-timeout=300000', '--test-force-exit'];

// The services the suite runs against are started here, throwaway: a PostgreSQL cluster and a
// Redis server on free loopback ports with data dirs of their own, stopped (and their files
// removed) when the run ends, fails or is interrupted. Never the machine's own instances: the
// suite must pass where nothing is pre-started, and must not touch an operator's data.
// what stops the services started so far (in reverse): run at the end, on failure, and on
// SIGINT/SIGTERM, including one that arrives while they are still starting
const stops = [];
const servicesDir = mkdtempSync(join(tmpdir(), 'latchkey-services-'));
async function stopServices() {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  rmSync(servicesDir, { recursive: true, force: true });
}
let exiting = false;
let child;
const onSignal = (signal) => {
  if (exiting) return;
  exiting = true;
  child?.kill(signal);
  stopServices().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

let env;
try {
  const pg = (await startPostgres(servicesDir, stops)).url;
  const redis = (await startRedis(servicesDir, stops)).url;
  env = { LATCHKEY_TEST_DATABASE_URL: pg, LATCHKEY_TEST_REDIS_URL: redis };
} catch (err) {
  await stopServices();
  console.error(`npm test: ${err.message}`);
  process.exit(1);
}
if (exiting) await new Promise(() => undefined); // interrupted while starting: onSignal exits
const code = await new Promise((resolve) => {
  child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...guards, ...extra, ...files], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  child.on('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0)));
  child.on('error', () => resolve(1));
});
if (!exiting) {
  exiting = true;
  await stopServices();
  process.exit(code);
}
