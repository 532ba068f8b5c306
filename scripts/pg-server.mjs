// A private PostgreSQL cluster from Debian's server binaries: `npm test` starts the suite's shared
// one with it (scripts/test.mjs), and tests that must stop and start a server of their own (outages)
// start one more with it, so the shared one is never stopped under other tests.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The newest Debian PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin), or undefined. */
export function postgresBin() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base).filter((v) => /^[0-9]+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of majors) if (existsSync(join(base, v, 'bin', 'postgres'))) return join(base, v, 'bin');
  return undefined;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * initdb + postgres in `dir` (which must exist). PostgreSQL refuses to run as root, so as root the
 * cluster belongs to the `postgres` user (the package creates it) and runs as it. Password
 * authentication (scram) for a random password, TCP on loopback only, no Unix socket; fsync off:
 * the cluster is thrown away after use. `stops`, when given, gets the server's stop at once (so an
 * interrupt during the start stops it too). `detached: true` puts the server in a process group of
 * its own, so a Ctrl-C at the terminal reaches only the script that started it, which stops it in
 * its own order (after the nodes that use it). Returns the URL of its `postgres` database, the
 * postmaster's pid while it runs, and stop()/start() to take the server down (fast shutdown) and
 * bring it back on the same port.
 */
export async function startPostgres(dir, stops = [], { detached = false } = {}) {
  const bin = postgresBin();
  if (!bin) throw new Error("PostgreSQL's server binaries are not installed (apt-get install -y postgresql)");
  const data = join(dir, 'pg');
  const asUser = {};
  if (process.getuid?.() === 0) {
    const entry = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (!entry) throw new Error('running as root, but there is no postgres user to run PostgreSQL as');
    const [, , uid, gid] = entry.split(':');
    Object.assign(asUser, { uid: Number(uid), gid: Number(gid) });
    chmodSync(dir, 0o711);
  }
  mkdirSync(data, { mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pg.pw');
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (asUser.uid !== undefined) {
    chownSync(data, asUser.uid, asUser.gid);
    chownSync(pwfile, asUser.uid, asUser.gid);
  }
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'latchkey', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...asUser, encoding: 'utf8', cwd: dir });
  rmSync(pwfile, { force: true });
  if (init.status !== 0) throw new Error(`initdb failed:\n${init.stderr || init.stdout}`);
  const port = await freePort();
  const logFile = join(dir, 'postgres.log');
  let server;
  let exited = true;

  async function start() {
    if (!exited) return;
    const log = openSync(logFile, 'a');
    if (asUser.uid !== undefined) chownSync(logFile, asUser.uid, asUser.gid);
    server = spawn(join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300',
    ], { ...asUser, cwd: dir, stdio: ['ignore', log, log], detached });
    exited = false;
    server.on('exit', () => { exited = true; });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error(`PostgreSQL did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      const ready = spawnSync(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]);
      if (ready.status === 0) break;
      if (Date.now() > deadline) throw new Error('PostgreSQL did not accept connections within 60 s');
      await sleep(100);
    }
  }

  // SIGINT: PostgreSQL's fast shutdown (roll back, close connections, stop); SIGQUIT if it takes too long
  function stop() {
    return new Promise((resolve) => {
      if (exited) return resolve();
      const t = setTimeout(() => server.kill('SIGQUIT'), 10_000);
      server.once('exit', () => { clearTimeout(t); resolve(); });
      server.kill('SIGINT');
    });
  }
  stops.push(stop);
  await start();
  return {
    url: `postgres://latchkey:${password}@127.0.0.1:${port}/postgres`,
    port,
    get pid() { return exited ? undefined : server.pid; },
    stop,
    start,
  };
}
