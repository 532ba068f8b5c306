/**
 * Issue 5 benchmark: an upstream service called directly (with a bearer token)
 * and through the latchkey gateway (with a session cookie), same payload, at
 * 100 and 2,000 connections, rounds interleaved; plus the gateway's token
 * cache hit ratio. The upstream verifies every token with @latchkey/verify.
 *
 *   node --import tsx bench/gateway.ts          (needs wrk: apt-get install wrk)
 *   SECONDS_PER_RUN=3 ROUNDS=2 node --import tsx bench/gateway.ts
 *
 * Processes: latchkey (child), upstream (child), wrk; on a 2-core machine the
 * three share the cores, so the gateway's share is what the ratio shows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLatchkey } from '../packages/latchkey/src/app.js';
import { parseConfig } from '../packages/latchkey/src/config.js';
import { machine, median, report, wrkLoad, type LoadResult } from './lib.js';

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SESSIONS = 200;
const PAYLOAD = JSON.stringify({ orders: Array.from({ length: 5 }, (_, i) => ({ id: 1000 + i, item: 'notebook', total: 12.5 })) });

async function upstream(port: number, issuer: string) {
  const { createVerifier } = await import('@latchkey/verify');
  const verifier = createVerifier({ issuer, audience: 'orders' });
  createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    try {
      await verifier.verify(auth.slice(7));
    } catch {
      res.writeHead(401).end();
      return;
    }
    if (req.url === '/token') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(auth.slice(7));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(PAYLOAD);
  }).listen(port, '127.0.0.1', () => process.send?.('ready'));
}

async function gateway(port: number, upstreamPort: number, dataDir: string) {
  const config = parseConfig({
    port,
    dataDir,
    logLevel: 'silent',
    passwords: { argon2: { memoryKiB: 8192, iterations: 1, parallelism: 1 } },
    rateLimit: { loginPerIp: 100000, signupPerIp: 100000 },
    // every session of the run (and the sign-up's) belongs to one user: past the default cap (50)
    // each login would end the least recently used
    sessions: { maxPerUser: SESSIONS + 1 },
    gateway: { routes: [{ prefix: '/api/orders', upstream: `http://127.0.0.1:${upstreamPort}`, audience: 'orders', tokenLifetimeSeconds: 900 }] },
  });
  const lk = await createLatchkey(config, { logger: false });
  await lk.http.listen({ port, host: '127.0.0.1' });
  process.on('message', (m) => {
    if (m === 'stats') process.send?.({ hits: lk.gateway.cache.hits, misses: lk.gateway.cache.misses });
  });
  process.send?.('ready');
}

function child(args: string[]): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    c.once('message', () => resolve(c));
    c.once('exit', (code) => reject(new Error(`child ${args[0]} exited ${code}`)));
  });
}

async function main() {
  const gwPort = 21000 + Math.floor(Math.random() * 10000);
  const upPort = gwPort + 1;
  const issuer = `http://localhost:${gwPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-gw-'));
  const up = await child(['--upstream', String(upPort), issuer]);
  const gw = await child(['--gateway', String(gwPort), String(upPort), dataDir]);
  try {
    const base = `http://127.0.0.1:${gwPort}`;
    const body = JSON.stringify({ email: 'bench@example.com', password: 'correct horse battery staple' });
    await fetch(`${base}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const cookies: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const r = await fetch(`${base}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      cookies.push(r.headers.getSetCookie()[0]!.split(';')[0]!);
    }
    // one real gateway token per session, for the direct calls
    const tokens: string[] = [];
    for (const c of cookies) tokens.push(await (await fetch(`${base}/api/orders/token`, { headers: { cookie: c } })).text());
    const stats0 = await stats(gw);
    const results: Record<string, { direct: LoadResult[]; gateway: LoadResult[] }> = {};
    for (const connections of [100, 2000]) {
      results[connections] = { direct: [], gateway: [] };
      await wrkLoad({ url: `http://127.0.0.1:${upPort}/orders`, connections, seconds: 1, headers: tokens, header: 'Authorization', prefix: 'Bearer ' });
      await wrkLoad({ url: `${base}/api/orders/orders`, connections, seconds: 1, headers: cookies });
      for (let round = 0; round < ROUNDS; round++) {
        results[connections]!.direct.push(await wrkLoad({ url: `http://127.0.0.1:${upPort}/orders`, connections, seconds: SECONDS, headers: tokens, header: 'Authorization', prefix: 'Bearer ' }));
        results[connections]!.gateway.push(await wrkLoad({ url: `${base}/api/orders/orders`, connections, seconds: SECONDS, headers: cookies }));
      }
    }
    const stats1 = await stats(gw);
    const hits = stats1.hits - stats0.hits;
    const misses = stats1.misses - stats0.misses;
    const lines = [
      '# Gateway: upstream direct vs through latchkey',
      '',
      `Command: \`node --import tsx bench/gateway.ts\` (SECONDS_PER_RUN=${SECONDS}, ROUNDS=${ROUNDS}), load from wrk (1 thread).`,
      `Machine: ${machine()}. Date: ${new Date().toISOString()}. ${SESSIONS} sessions; payload ${PAYLOAD.length} bytes.`,
      'Direct: wrk sends `Authorization: Bearer <token>` to the upstream, which verifies it with @latchkey/verify.',
      'Gateway: wrk sends the session cookie to latchkey, which checks the session, takes the token from its cache (or mints), proxies.',
      '',
      '| connections | path | req/s (median) | p50 ms | p99 ms | vs direct |',
      '|---:|---|---:|---:|---:|---:|',
    ];
    for (const [conns, r] of Object.entries(results)) {
      const d = median(r.direct.map((x) => x.rps));
      for (const k of ['direct', 'gateway'] as const) {
        const xs = r[k];
        const rps = median(xs.map((x) => x.rps));
        const bad = xs.reduce((a, x) => a + x.non2xx + x.errors, 0);
        lines.push(`| ${conns} | ${k} | ${Math.round(rps)} | ${median(xs.map((x) => x.p50))} | ${median(xs.map((x) => x.p99))} | ${(rps / d).toFixed(2)}${bad ? ` (${bad} errors)` : ''} |`);
      }
    }
    lines.push('', `Token cache during the measured runs: ${hits} hits, ${misses} misses: hit ratio ${(hits / Math.max(1, hits + misses)).toFixed(4)}.`);
    report(new URL('./results/gateway.md', import.meta.url).pathname, lines);
  } finally {
    gw.kill('SIGTERM');
    up.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function stats(c: ChildProcess): Promise<{ hits: number; misses: number }> {
  return new Promise((resolve) => {
    c.once('message', (m) => resolve(m as { hits: number; misses: number }));
    c.send('stats');
  });
}

const [mode, a, b, d] = process.argv.slice(2);
if (mode === '--upstream') await upstream(Number(a), b!);
else if (mode === '--gateway') await gateway(Number(a), Number(b), d!);
else await main();
