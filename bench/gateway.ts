/**
 * Issue 5 benchmark: an upstream service called directly (with a bearer token), through a plain
 * reverse proxy on latchkey's own HTTP stack (Fastify + @fastify/reply-from, no auth), and through
 * the latchkey gateway (session cookie in, token from its cache, proxied), same payload, at 100 and
 * 2,000 connections, runs alternating; req/s, p50/p99, the proxy's and the upstream's CPU time per
 * request, and the gateway's cache counters. The upstream verifies every token with @latchkey/verify.
 *
 *   npm run bench -- gateway          (about 3 minutes; needs wrk: apt-get install wrk)
 *   SECONDS_PER_RUN=1 ROUNDS=3 CONNS=100 npm run bench -- gateway
 *
 * Processes: latchkey (its build, dist/), the plain proxy, the upstream, wrk; on a 2-core machine
 * they share the cores, so compare ratios within a round and CPU per request.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerProbes, load1, machine, median, pairedRatio, probe, report, wrkLoad, type LoadResult } from './lib.js';

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 2);
/** Runs at 1,000 connections or more (see bench/sessions.ts: opening them all takes a second or more of a run). */
const LONG_SECONDS = Number(process.env.LONG_SECONDS ?? 5);
const secondsFor = (connections: number) => (connections >= 1000 ? Math.max(SECONDS, LONG_SECONDS) : SECONDS);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const CONNS = (process.env.CONNS ?? '100,2000').split(',').map(Number);
const SESSIONS = 200;
/** The route's token lifetime: past the run, so the tokens wrk sends straight to the upstream stay valid. */
const TOKEN_LIFETIME = 900;
const PREFIX = '/api/orders';
const PAYLOAD = JSON.stringify({ orders: Array.from({ length: 5 }, (_, i) => ({ id: 1000 + i, item: 'notebook', total: 12.5 })) });
const DIST = fileURLToPath(new URL('../packages/latchkey/dist/', import.meta.url));

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
  answerProbes();
}

/** The baseline: latchkey's HTTP stack and proxy (the gateway's reply-from and undici settings), no auth. */
async function plainProxy(port: number, upstreamPort: number) {
  const { default: Fastify } = await import('fastify');
  const { default: replyFrom } = await import('@fastify/reply-from');
  const app = Fastify({ logger: false });
  await app.register(replyFrom, { base: `http://127.0.0.1:${upstreamPort}`, undici: { connections: 256, pipelining: 1 }, disableRequestLogging: true });
  app.get(`${PREFIX}/*`, (request, reply) => reply.from(request.url.slice(PREFIX.length)));
  await app.listen({ port, host: '127.0.0.1' });
  answerProbes();
  process.send?.('ready');
}

async function gateway(port: number, upstreamPort: number, dataDir: string) {
  const { createLatchkey } = (await import(join(DIST, 'app.js'))) as typeof import('../packages/latchkey/dist/app.js');
  const { parseConfig } = (await import(join(DIST, 'config.js'))) as typeof import('../packages/latchkey/dist/config.js');
  const config = parseConfig({
    port,
    dataDir,
    logLevel: 'silent',
    passwords: { argon2: { memoryKiB: 8192, iterations: 1, parallelism: 1 } },
    rateLimit: { loginPerIp: 100000, signupPerIp: 100000 },
    // every session of the run (and the sign-up's) belongs to one user: past the default cap (50)
    // each login would end the least recently used
    sessions: { maxPerUser: SESSIONS + 1 },
    gateway: { routes: [{ prefix: PREFIX, upstream: `http://127.0.0.1:${upstreamPort}`, audience: 'orders', tokenLifetimeSeconds: TOKEN_LIFETIME }] },
  });
  const lk = await createLatchkey(config, { logger: false });
  await lk.http.listen({ port, host: '127.0.0.1' });
  answerProbes(() => ({ tokens: { hits: lk.gateway.cache.hits, misses: lk.gateway.cache.misses }, sessions: lk.sessions.stats() }));
  process.send?.('ready');
}

function child(args: string[]): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    c.once('message', () => resolve(c));
    c.once('exit', (code) => reject(new Error(`child ${args[0]} exited ${code}`)));
  });
}

const PATHS = ['direct', 'proxy', 'gateway'] as const;
type Path = (typeof PATHS)[number];
const LABEL: Record<Path, string> = { direct: 'direct (bearer token)', proxy: 'plain proxy, no auth (bearer token)', gateway: 'latchkey gateway (session cookie)' };

interface Counters {
  tokens: { hits: number; misses: number };
  sessions: { hits: number; misses: number };
}
interface Run extends LoadResult {
  /** CPU µs per request of the process wrk talks to (proxy or gateway; for direct, the upstream) */
  frontCpu: number;
  upstreamCpu: number;
}

async function main() {
  execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-b', fileURLToPath(new URL('../packages/verify', import.meta.url)), fileURLToPath(new URL('../packages/latchkey', import.meta.url))], { stdio: 'inherit' });
  const gwPort = 21000 + Math.floor(Math.random() * 10000);
  const upPort = gwPort + 1;
  const pxPort = gwPort + 2;
  const issuer = `http://localhost:${gwPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-gw-'));
  const up = await child(['--upstream', String(upPort), issuer]);
  const gw = await child(['--gateway', String(gwPort), String(upPort), dataDir]);
  const px = await child(['--proxy', String(pxPort), String(upPort)]);
  const started = new Date().toISOString();
  const loadAtStart = load1();
  try {
    const base = `http://127.0.0.1:${gwPort}`;
    const body = JSON.stringify({ email: 'bench@example.com', password: 'correct horse battery staple' });
    await fetch(`${base}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const cookies: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const r = await fetch(`${base}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      cookies.push(r.headers.getSetCookie()[0]!.split(';')[0]!);
    }
    // one real gateway token per session, for the direct and plain-proxy calls
    const tokens: string[] = [];
    for (const c of cookies) tokens.push(await (await fetch(`${base}${PREFIX}/token`, { headers: { cookie: c } })).text());
    const drive = (path: Path, connections: number, seconds: number) =>
      path === 'gateway'
        ? wrkLoad({ url: `${base}${PREFIX}/orders`, connections, seconds, headers: cookies })
        : wrkLoad({ url: path === 'direct' ? `http://127.0.0.1:${upPort}/orders` : `http://127.0.0.1:${pxPort}${PREFIX}/orders`, connections, seconds, headers: tokens, header: 'Authorization', prefix: 'Bearer ' });
    const front: Record<Path, ChildProcess> = { direct: up, proxy: px, gateway: gw };
    const run = async (path: Path, connections: number): Promise<Run> => {
      const [f0, u0] = [await probe(front[path]), await probe(up)];
      const r = await drive(path, connections, secondsFor(connections));
      const [f1, u1] = [await probe(front[path]), await probe(up)];
      if (r.non2xx || r.errors) throw new Error(`${path}@${connections}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { ...r, frontCpu: (f1.cpuUs - f0.cpuUs) / r.requests, upstreamCpu: (u1.cpuUs - u0.cpuUs) / r.requests };
    };
    const results: Record<number, Record<Path, Run[]>> = {};
    // warm-up of every path at every connection count before the counters are read
    for (const connections of CONNS) for (const path of PATHS) await run(path, connections);
    const before = await probe<Counters & Record<string, unknown>>(gw);
    for (const connections of CONNS) {
      const byPath = (results[connections] = { direct: [], proxy: [], gateway: [] } as Record<Path, Run[]>);
      for (let round = 0; round < ROUNDS; round++) {
        for (let j = 0; j < PATHS.length; j++) {
          const path = PATHS[(j + round) % PATHS.length]!;
          byPath[path].push(await run(path, connections));
        }
      }
    }
    const after = await probe<Counters & Record<string, unknown>>(gw);
    const loadAtEnd = load1();
    const tokenHits = after.tokens.hits - before.tokens.hits;
    const tokenMisses = after.tokens.misses - before.tokens.misses;
    const sessionHits = after.sessions.hits - before.sessions.hits;
    const sessionMisses = after.sessions.misses - before.sessions.misses;
    const f = (x: number) => Math.round(x).toLocaleString('en-US');
    const lines = [
      '# Gateway: upstream direct, through a plain proxy, through latchkey',
      '',
      `Command: \`npm run bench -- gateway\` (SECONDS_PER_RUN=${SECONDS}, LONG_SECONDS=${LONG_SECONDS}, ROUNDS=${ROUNDS}, CONNS=${CONNS.join(',')}), load from wrk (1 thread) on loopback.`,
      `Machine: ${machine()}. Date: ${started}. Load average (1 min) ${loadAtStart} at the start, ${loadAtEnd} at the end of the runs.`,
      `Payload ${PAYLOAD.length} bytes. ${SESSIONS} sessions (one user). The upstream is a node:http server that verifies every`,
      'token with @latchkey/verify (EdDSA, JWKS fetched from latchkey) and answers the payload.',
      '',
      '- direct: wrk sends `Authorization: Bearer <token>` to the upstream (one token per session, minted by the gateway before the runs).',
      '- plain proxy: the same requests to Fastify + @fastify/reply-from (undici, 256 connections, as the gateway\'s route), no auth:',
      '  what putting any proxy on this HTTP stack in front costs.',
      `- latchkey gateway: wrk sends the session cookie; latchkey checks the session (cache), takes the route's token from its token`,
      `  cache (or mints one), strips and sets headers, proxies. Route token lifetime **${TOKEN_LIFETIME} s** (the default is 60 s, under`,
      '  which each session\'s token is minted again every 45 s: about 4 mints a second for these sessions; 900 s keeps the tokens',
      '  sent directly valid for the whole run).',
      '',
      `Each path in a run of ${SECONDS} s (${Math.max(SECONDS, LONG_SECONDS)} s at 1,000 connections or more), the three one after another in each of ${ROUNDS} rounds (order rotated every round), after one`,
      'unreported warm-up run of each path at each connection count.',
      '',
      '| connections | path | req/s | p50 ms | p99 ms | front CPU µs/req | upstream CPU µs/req | req/s vs direct | req/s vs plain proxy | proxy / gateway CPU |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    for (const [conns, r] of Object.entries(results)) {
      const rps = (p: Path) => r[p].map((x) => x.rps);
      for (const p of PATHS) {
        const xs = r[p];
        const vsDirect = p === 'direct' ? '1.00' : pairedRatio(rps(p), rps('direct')).toFixed(2);
        const vsProxy = p === 'direct' ? '-' : p === 'proxy' ? '1.00' : `**${pairedRatio(rps('gateway'), rps('proxy')).toFixed(2)}**`;
        const cpu = p === 'gateway' ? `**${pairedRatio(r.proxy.map((x) => x.frontCpu), r.gateway.map((x) => x.frontCpu)).toFixed(2)}**` : p === 'proxy' ? '1.00' : '-';
        lines.push(
          `| ${conns} | ${LABEL[p]} | ${f(median(rps(p)))} | ${median(xs.map((x) => x.p50)).toFixed(2)} | ${median(xs.map((x) => x.p99)).toFixed(2)} | ${median(xs.map((x) => x.frontCpu)).toFixed(1)} | ${median(xs.map((x) => x.upstreamCpu)).toFixed(1)} | ${vsDirect} | ${vsProxy} | ${cpu} |`,
        );
      }
    }
    lines.push(
      '',
      'req/s, p50, p99 and CPU are medians over the rounds; the ratios are medians of the ratio within each round. "front CPU" is the',
      'CPU time (process.cpuUsage, user + system) of the process wrk talks to, per request: the upstream itself for direct, the proxy',
      'or latchkey otherwise; "proxy / gateway CPU" is the plain proxy\'s over latchkey\'s, what auth, the token and the header rules',
      'cost on top of proxying. With four processes on two cores, req/s is bounded by whichever saturates first; CPU per request is not.',
      '',
      `Gateway caches over the reported runs (counted after the warm-up): token cache ${f(tokenHits)} hits, ${f(tokenMisses)} misses (hit ratio ${(tokenHits / Math.max(1, tokenHits + tokenMisses)).toFixed(4)});`,
      `session cache ${f(sessionHits)} hits, ${f(sessionMisses)} misses (a miss here is a session's once-a-minute last-seen write).`,
    );
    report(new URL('./results/gateway.md', import.meta.url).pathname, lines);
  } finally {
    gw.kill('SIGTERM');
    px.kill('SIGTERM');
    up.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const [mode, a, b, d] = process.argv.slice(2);
if (mode === '--upstream') await upstream(Number(a), b!);
else if (mode === '--gateway') await gateway(Number(a), Number(b), d!);
else if (mode === '--proxy') await plainProxy(Number(a), Number(b));
else await main();
