// A private Redis server, in the foreground as a child: `npm test` starts the suite's with it
// (scripts/test.mjs), and examples/cluster starts one for its nodes.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './pg-server.mjs';

/**
 * redis-server on a free loopback port with `dir`/redis as its working dir: no persistence
 * (`--save ''`, no AOF), log in `dir`/redis.log. `stops`, when given, gets its stop at once.
 * `detached: true` puts it in a process group of its own, so a Ctrl-C at the terminal reaches
 * only the script that started it, which stops it in its own order. Returns its URL, pid, and
 * stop()/start() to take it down and bring it back on the same port.
 */
export async function startRedis(dir, stops = [], { detached = false } = {}) {
  const port = await freePort();
  const data = join(dir, 'redis');
  mkdirSync(data, { recursive: true, mode: 0o700 });
  let server;
  let exited = true;

  async function start() {
    if (!exited) return;
    server = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', data,
      '--logfile', join(dir, 'redis.log'),
    ], { cwd: data, stdio: 'ignore', detached });
    exited = false;
    server.on('exit', () => { exited = true; });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error('redis-server exited at start');
      if (await redisPing(port)) break;
      if (Date.now() > deadline) throw new Error('Redis did not answer within 30 s');
      await sleep(100);
    }
  }

  function stop() {
    return new Promise((resolve) => {
      if (exited) return resolve();
      server.once('exit', () => resolve());
      server.kill('SIGTERM');
    });
  }
  stops.push(stop);
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() { return exited ? undefined : server.pid; },
    stop,
    start,
  };
}

/** PING on a fresh connection: true when Redis answers PONG within a second. */
export function redisPing(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let buf = '';
    socket.setTimeout(1000);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => { buf += d; if (buf.includes('\r\n')) { socket.destroy(); resolve(buf.startsWith('+PONG')); } });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => { socket.destroy(); resolve(false); });
  });
}
