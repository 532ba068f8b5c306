/**
 * Issue 2 benchmark: a session-cookie-authenticated route against the same
 * route without auth (and against a naive per-request SQLite lookup), at 100
 * and 2,000 connections, rounds interleaved; plus the store's bytes per session
 * for 200,000 sessions and the in-process cache's heap per entry.
 *
 *   node --import tsx bench/sessions.ts            (about 2 minutes)
 *   SECONDS_PER_RUN=3 ROUNDS=2 node --import tsx bench/sessions.ts
 *
 * The server runs in a child process so the load generator does not share its
 * event loop; on a 2-core machine each gets one core.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createLatchkey } from '../packages/latchkey/src/app.js';
import { parseConfig } from '../packages/latchkey/src/config.js';
import { sessionHooks } from '../packages/latchkey/src/http/auth.js';
import type { Context } from '../packages/latchkey/src/http/context.js';
import { SessionService } from '../packages/latchkey/src/sessions/service.js';
import { SqliteStore } from '../packages/latchkey/src/store/sqlite/index.js';
import { hasWrk, load, machine, median, report, wrkLoad, type LoadResult } from './lib.js';

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SESSIONS = 500;

/** The three routes under test: same handler body, different auth. */
async function benchRoutes(app: FastifyInstance, ctx: Context) {
  const { requireSession } = sessionHooks(ctx);
  const store = ctx.store as SqliteStore;
  const naive = store.db.prepare(
    `SELECT u.id, u.disabled, s.expires_at, s.last_seen_at FROM sessions s JOIN users u ON u.rowid = s.user_rowid WHERE s.id_hash = ?`,
  );
  app.get('/bench/bare', async () => ({ ok: true, sub: 'anonymous' }));
  app.get('/bench/session', { onRequest: requireSession }, async (request) => ({ ok: true, sub: request.auth!.user.id }));
  app.get('/bench/naive', async (request, reply) => {
    const secret = request.cookies[ctx.config.sessions.cookieName];
    const row = secret ? (naive.get(createHash('sha256').update(secret).digest()) as { id: string; expires_at: number } | undefined) : undefined;
    if (!row || row.expires_at * 1000 < Date.now()) return reply.code(401).send({ ok: false });
    return { ok: true, sub: row.id };
  });
}

async function server(port: number, dataDir: string) {
  const config = parseConfig({
    port,
    dataDir,
    logLevel: 'silent',
    passwords: { argon2: { memoryKiB: 8192, iterations: 1, parallelism: 1 } },
    rateLimit: { loginPerIp: 100000, signupPerIp: 100000 },
    // every session of the run (and the sign-up's) belongs to one user: past the default cap (50)
    // each login would end the least recently used
    sessions: { maxPerUser: SESSIONS + 1 },
  });
  const lk = await createLatchkey(config, { logger: false, plugins: [benchRoutes] });
  await lk.http.listen({ port, host: '127.0.0.1' });
  process.on('SIGINT', () => process.exit(0));
  process.send?.('ready');
}

async function storeSize() {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const file = join(dir, 'size.sqlite');
  const store = new SqliteStore({ filename: file });
  await store.migrate();
  const USERS = 20_000;
  const N = 200_000;
  const now = Math.floor(Date.now() / 1000);
  const devices = ['Chrome on Windows', 'Safari on iPhone', 'Firefox on Linux', 'Chrome on Android', 'Edge on Windows', 'Safari on macOS'];
  store.db.transaction(() => {
    for (let i = 0; i < USERS; i++) {
      void store.createUser({ id: `u_${randomBytes(16).toString('base64url')}`, email: `user${i}@example.com`, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$' + randomBytes(16).toString('base64') + '$' + randomBytes(32).toString('base64'), createdAt: now });
    }
  })();
  const size = () => {
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    return statSync(file).size;
  };
  const before = size();
  const ids = store.db.prepare('SELECT id FROM users').pluck().all() as string[];
  store.db.transaction(() => {
    for (let i = 0; i < N; i++) {
      void store.createSession({
        idHash: randomBytes(32),
        userId: ids[i % USERS]!,
        createdAt: now - (i % 86400),
        lastSeenAt: now - (i % 3600),
        expiresAt: now + 7 * 86400,
        device: devices[i % devices.length]!,
        ip: `${10 + (i % 200)}.${i % 256}.${(i >> 8) % 256}.${(i * 7) % 256}`,
      });
    }
  })();
  const after = size();
  await store.close();

  // heap per cached session: authenticate 10,000 sessions through the real service
  const s2 = new SqliteStore({ filename: file });
  await s2.migrate();
  const svc = new SessionService(s2, { idleTimeoutSeconds: 86400, absoluteLifetimeSeconds: 30 * 86400, touchIntervalSeconds: 3600, cacheSize: 10_000, maxPerUser: 10_000 });
  const uid = ids[0]!;
  const secrets: string[] = [];
  for (let i = 0; i < 10_000; i++) secrets.push((await svc.create(uid, { userAgent: undefined, ip: '127.0.0.1' }, 'Firefox on Linux')).secret);
  const gc = (globalThis as { gc?: () => void }).gc;
  for (const s of secrets) await svc.authenticate(s, '127.0.0.1');
  gc?.();
  const h1 = process.memoryUsage().heapUsed;
  (svc as unknown as { cache: Map<string, unknown> }).cache.clear();
  gc?.();
  const h0 = process.memoryUsage().heapUsed;
  await s2.close();
  rmSync(dir, { recursive: true, force: true });
  return { perSession: (after - before) / N, total: after - before, heapPerEntry: gc ? (h1 - h0) / 10_000 : NaN };
}

async function main() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--server', String(port), dataDir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    const email = 'bench@example.com';
    const password = 'correct horse battery staple';
    const signup = await fetch(`${base}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
    if (signup.status !== 201) throw new Error(`signup ${signup.status}`);
    const cookies: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const r = await fetch(`${base}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
      cookies.push(r.headers.getSetCookie()[0]!.split(';')[0]!);
    }
    for (const c of cookies) {
      const r = await fetch(`${base}/bench/session`, { headers: { cookie: c } });
      if (r.status !== 200) throw new Error(`a session of the run is refused before the load (${r.status})`);
    }
    const routes = ['bare', 'session', 'naive'] as const;
    const useWrk = await hasWrk();
    const run = (route: string, connections: number, seconds: number) =>
      useWrk
        ? wrkLoad({ url: `${base}/bench/${route}`, connections, seconds, headers: cookies })
        : load({ url: `${base}/bench/${route}`, connections, seconds, perConnection: (i) => ({ cookie: cookies[i % SESSIONS]! }) });
    const results: Record<string, Record<string, LoadResult[]>> = {};
    for (const connections of (process.env.CONNS ?? '100,2000').split(',').map(Number)) {
      results[connections] = { bare: [], session: [], naive: [] };
      // warm-up
      for (const r of routes) await run(r, connections, 1);
      for (let round = 0; round < ROUNDS; round++) {
        for (const r of routes) {
          const res = await run(r, connections, SECONDS);
          // a refused request measures the refusal, not the route: no report from such a run
          if (res.non2xx || res.errors) throw new Error(`${r}@${connections}: ${res.non2xx} non-2xx, ${res.errors} errors`);
          results[connections]![r]!.push(res);
        }
      }
    }
    const size = await storeSize();
    const lines = [
      '# Session-authenticated route vs bare route',
      '',
      `Command: \`node --expose-gc --import tsx bench/sessions.ts\` (SECONDS_PER_RUN=${SECONDS}, ROUNDS=${ROUNDS})`,
      `Machine: ${machine()}; server in a child process, load from ${useWrk ? 'wrk (1 thread)' : 'autocannon (install wrk for a load generator that is not the bottleneck)'}, loopback.`,
      `Date: ${new Date().toISOString()}; ${SESSIONS} distinct sessions spread over the connections.`,
      '',
      '| connections | route | req/s (median) | p50 ms | p99 ms | vs bare |',
      '|---:|---|---:|---:|---:|---:|',
    ];
    for (const [conns, byRoute] of Object.entries(results)) {
      const bare = median(byRoute.bare!.map((x) => x.rps));
      for (const r of routes) {
        const xs = byRoute[r]!;
        const rps = median(xs.map((x) => x.rps));
        lines.push(`| ${conns} | ${r === 'bare' ? 'no auth' : r === 'session' ? 'latchkey session cookie' : 'naive SQLite lookup'} | ${Math.round(rps)} | ${+median(xs.map((x) => x.p50)).toFixed(2)} | ${+median(xs.map((x) => x.p99)).toFixed(2)} | ${(rps / bare).toFixed(2)} |`);
      }
    }
    lines.push(
      '',
      '## Store size',
      '',
      `200,000 sessions (20,000 users) add ${(size.total / 2 ** 20).toFixed(1)} MiB to the SQLite file: **${size.perSession.toFixed(0)} bytes per session** including indexes (target <= 200; the seeds quote 3,000).`,
      `In-process cache: ${Number.isNaN(size.heapPerEntry) ? 'run with --expose-gc to measure' : `${size.heapPerEntry.toFixed(0)} bytes of heap per cached session`} (default cache: 10,000 entries).`,
    );
    report(new URL('./results/sessions.md', import.meta.url).pathname, lines);
  } finally {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--server') await server(Number(process.argv[3]), process.argv[4]!);
else await main();
