// A private Redis server (redis-server from the Debian package, in the foreground as a child): `npm test`
// starts the suite's with it (scripts/test.mjs), and bench/seeds.ts starts one per contender with it.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './pg-server.mjs';

/**
 * redis-server on a free loopback port, data in `dir`/redis (`dir` is created if missing; its redis/
 * must not exist), no persistence.
 * `stops`, when given, gets the server's stop at once (so an interrupt during the start stops it
 * too). Returns its URL, port and process id, and stop().
 */
export async function startRedis(dir, stops = []) {
  const port = await freePort();
  const data = join(dir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(data, { mode: 0o700 });
  const server = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', data,
    '--logfile', join(dir, 'redis.log'),
  ], { cwd: data, stdio: 'ignore' });
  let exited = false;
  server.on('exit', () => { exited = true; });
  const stop = () => new Promise((resolve) => {
    if (exited) return resolve();
    server.once('exit', () => resolve());
    server.kill('SIGTERM');
  });
  stops.push(stop);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error('redis-server exited at start');
    if (await redisPing(port)) break;
    if (Date.now() > deadline) throw new Error('Redis did not answer within 30 s');
    await sleep(100);
  }
  return { url: `redis://127.0.0.1:${port}`, port, pid: server.pid, stop };
}

function redisPing(port) {
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
