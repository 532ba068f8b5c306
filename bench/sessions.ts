/**
 * Issue 2 benchmark: a session-cookie-authenticated route against the same route without auth, on
 * one server, runs alternating: the session cache's hit path (HOT sessions, all cached), its miss
 * path (COLD sessions cycled through the default 10,000-entry cache, so every request reads the
 * store) and a naive per-request SQLite lookup; req/s, p50/p99 and the server's CPU time per
 * request, at 100 and 2,000 connections. Then the store's bytes per session (200,000 sessions) and
 * the cache's heap per entry.
 *
 *   npm run bench -- sessions                        (about 4 minutes)
 *   SECONDS_PER_RUN=1 ROUNDS=3 CONNS=100 npm run bench -- sessions
 *
 * The server runs latchkey's build (dist/, as `latchkey serve` does) in a child process so the
 * load generator does not share its event loop. On a shared 2-core machine throughput moves with
 * whatever else runs: compare the ratios (within a round, then the median), and CPU per request.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Context } from '../packages/latchkey/dist/http/context.js';
import type { SessionCacheStats } from '../packages/latchkey/dist/sessions/service.js';
import type { SqliteStore } from '../packages/latchkey/dist/store/sqlite/index.js';
import { answerProbes, hasWrk, load, load1, machine, median, pairedRatio, probe, report, wrkLoad, type LoadResult } from './lib.js';

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 2);
/**
 * Runs at 1,000 connections or more: wrk opens them all at once, past the listen backlog (511),
 * and a connection whose SYN was dropped waits a second or more before it sends anything, so a
 * short run measures the connection storm more than the route.
 */
const LONG_SECONDS = Number(process.env.LONG_SECONDS ?? 5);
const secondsFor = (connections: number) => (connections >= 1000 ? Math.max(SECONDS, LONG_SECONDS) : SECONDS);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const CONNS = (process.env.CONNS ?? '100,2000').split(',').map(Number);
/** Sessions of the hit runs: all fit in the cache. */
const HOT = 500;
/** Sessions of the miss runs: twice the default cache (10,000), cycled in order, so each is evicted before it comes back. */
const COLD = 20_000;
/** Sessions per user (under the default cap of 50). */
const PER_USER = 10;
const DIST = fileURLToPath(new URL('../packages/latchkey/dist/', import.meta.url));
const dist = <T>(path: string): Promise<T> => import(join(DIST, path)) as Promise<T>;

const ROUTES = ['bare', 'session', 'miss', 'naive'] as const;
type Route = (typeof ROUTES)[number];
const LABEL: Record<Route, string> = {
  bare: 'no auth',
  session: `latchkey session, cache hit (${HOT} sessions)`,
  miss: `latchkey session, cache miss (${COLD.toLocaleString('en-US')} sessions)`,
  naive: 'naive SQLite lookup per request',
};
const PATH: Record<Route, string> = { bare: 'bare', session: 'session', miss: 'session', naive: 'naive' };

// ---- server (child process) ----

async function server(port: number, dataDir: string) {
  const { createLatchkey } = await dist<typeof import('../packages/latchkey/dist/app.js')>('app.js');
  const { parseConfig } = await dist<typeof import('../packages/latchkey/dist/config.js')>('config.js');
  const { sessionHooks } = await dist<typeof import('../packages/latchkey/dist/http/auth.js')>('http/auth.js');
  const { hashSecret, newSecret } = await dist<typeof import('../packages/latchkey/dist/sessions/ids.js')>('sessions/ids.js');

  /** The routes under test: the same handler body, different auth. */
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

  // the defaults, but for the data dir: cache 10,000 entries, touch interval 60 s, per-user cap 50
  const config = parseConfig({ port, dataDir, logLevel: 'silent' });
  const lk = await createLatchkey(config, { logger: false, plugins: [benchRoutes] });
  const s = config.sessions;
  let users = 0;
  /**
   * `n` live sessions, PER_USER per user, written as the service writes them (SessionService.create:
   * SHA-256 of the secret, under the per-user cap), in one transaction (only to start sooner), and
   * with last-seen times spread over the touch interval, as in a service whose sessions began at
   * different times: their last-seen writes (one per session per interval) then come evenly, not all
   * in the same second once a minute.
   */
  function sessions(n: number): string[] {
    const now = Math.floor(Date.now() / 1000);
    const secrets: string[] = [];
    (lk.store as SqliteStore).db.transaction(() => {
      let userId = '';
      for (let i = 0; i < n; i++) {
        if (i % PER_USER === 0) {
          userId = `u_bench${String(users++).padStart(17, '0')}`;
          void lk.store.createUser({ id: userId, email: `bench${users}@example.com`, passwordHash: 'not-a-hash', createdAt: now });
        }
        const secret = newSecret();
        void lk.store.createSession(
          {
            idHash: hashSecret(secret),
            userId,
            createdAt: now - 3600,
            lastSeenAt: now - Math.floor((i * s.touchIntervalSeconds) / n),
            expiresAt: now - 3600 + s.absoluteLifetimeSeconds,
            device: 'Firefox on Linux',
            ip: '127.0.0.1',
          },
          lk.sessions.limit,
        );
        secrets.push(`${s.cookieName}=${secret}`);
      }
    })();
    return secrets;
  }
  await lk.http.listen({ port, host: '127.0.0.1' });
  answerProbes(() => ({ cache: lk.sessions.stats() }));
  const hot = sessions(HOT);
  const cold = sessions(COLD);
  process.on('SIGTERM', () => void lk.close().finally(() => process.exit(0)));
  process.send?.({ ready: true, hot, cold, cacheSize: s.cacheSize, touch: s.touchIntervalSeconds });
}

// ---- store size and cache heap (this process) ----

async function storeSize() {
  const { SqliteStore } = await dist<typeof import('../packages/latchkey/dist/store/sqlite/index.js')>('store/sqlite/index.js');
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
  rmSync(dir, { recursive: true, force: true });
  return { perSession: (after - before) / N, total: after - before };
}

/**
 * Heap the session cache holds per entry: a fresh SessionService filled with ENTRIES sessions
 * (10 per user), measured against the same service empty. Everything the cache keeps counts: the
 * entry (session, user, handle), all three maps (by cookie, by handle, by user) and the cookie
 * string itself, its key: each `authenticate` gets a fresh string, as from a request header,
 * which only the cache keeps alive.
 */
async function cacheHeap() {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return NaN;
  const { SqliteStore } = await dist<typeof import('../packages/latchkey/dist/store/sqlite/index.js')>('store/sqlite/index.js');
  const { SessionService } = await dist<typeof import('../packages/latchkey/dist/sessions/service.js')>('sessions/service.js');
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const store = new SqliteStore({ filename: join(dir, 'heap.sqlite') });
  await store.migrate();
  const ENTRIES = 10_000;
  const settings = { idleTimeoutSeconds: 86400, absoluteLifetimeSeconds: 30 * 86400, touchIntervalSeconds: 3600, cacheSize: ENTRIES, maxPerUser: 50 };
  const creator = new SessionService(store, settings);
  const now = Math.floor(Date.now() / 1000);
  const secrets: string[] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const uid = `u_heap${String(Math.floor(i / 10)).padStart(18, '0')}`;
    if (i % 10 === 0) await store.createUser({ id: uid, email: `heap${i}@example.com`, passwordHash: 'not-a-hash', createdAt: now });
    secrets.push((await creator.create(uid, { userAgent: undefined, ip: '127.0.0.1' }, 'Firefox on Linux')).secret);
  }
  // the secrets as bytes only, so no string the cache will key by exists before it is measured
  const bytes = Buffer.from(secrets.join(''), 'latin1');
  secrets.length = 0;
  const secret = (i: number) => bytes.toString('latin1', i * 43, i * 43 + 43);
  // statements compiled and the code warmed on a service of its own
  const warm = new SessionService(store, settings);
  for (let i = 0; i < 100; i++) await warm.authenticate(secret(i), '127.0.0.1');
  const svc = new SessionService(store, settings);
  gc();
  const empty = process.memoryUsage().heapUsed;
  for (let i = 0; i < ENTRIES; i++) await svc.authenticate(secret(i), '127.0.0.1');
  gc();
  const full = process.memoryUsage().heapUsed;
  if (svc.stats().size !== ENTRIES) throw new Error(`the cache holds ${svc.stats().size} entries, not ${ENTRIES}`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return (full - empty) / ENTRIES;
}

// ---- runner ----

const t0 = performance.now();
/** Progress on stderr, so an unattended run shows where it is. */
const say = (what: string) => process.stderr.write(`[sessions ${((performance.now() - t0) / 1000).toFixed(0)} s] ${what}\n`);

interface Run extends LoadResult {
  /** server CPU µs per request */
  cpu: number;
  hits: number;
  misses: number;
}

interface Ready {
  hot: string[];
  cold: string[];
  cacheSize: number;
  touch: number;
}

async function main() {
  // the server runs the build: never a stale one
  execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-b', fileURLToPath(new URL('../packages/latchkey', import.meta.url))], { stdio: 'inherit' });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--server', String(port), dataDir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<Ready>((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if (!(m as { ready?: boolean }).ready) return;
      child.off('message', onMessage);
      resolve(m as Ready);
    };
    child.on('message', onMessage);
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  say(`server up, ${ready.hot.length + ready.cold.length} sessions written`);
  const base = `http://127.0.0.1:${port}`;
  const loadAtStart = load1();
  const started = new Date().toISOString();
  try {
    // every session of the run is accepted before the load: a refusal would measure the refusal
    for (const cookie of [...ready.hot, ...ready.cold.filter((_, i) => i % 100 === 0)]) {
      const r = await fetch(`${base}/bench/session`, { headers: { cookie } });
      if (r.status !== 200) throw new Error(`a session of the run is refused before the load (${r.status})`);
    }
    const useWrk = await hasWrk();
    // the miss runs go on through the cold sessions where the last one stopped: a run that started
    // over would first meet the sessions the previous one left in the cache
    let coldAt = 0;
    const cookiesOf = (route: Route) => (route === 'miss' ? [...ready.cold.slice(coldAt), ...ready.cold.slice(0, coldAt)] : ready.hot);
    const drive = (route: Route, connections: number, seconds: number) => {
      const cookies = cookiesOf(route);
      return useWrk
        ? wrkLoad({ url: `${base}/bench/${PATH[route]}`, connections, seconds, headers: cookies })
        : load({ url: `${base}/bench/${PATH[route]}`, connections, seconds, perRequest: (i) => ({ cookie: cookies[i % cookies.length]! }) });
    };
    /** Bring the hot sessions back into the cache after a miss run evicted them (not measured). */
    const rewarm = async () => {
      for (const cookie of ready.hot) await fetch(`${base}/bench/session`, { headers: { cookie } });
    };
    const run = async (route: Route, connections: number): Promise<Run> => {
      if (route === 'session') await rewarm();
      const a = await probe<{ cache: SessionCacheStats }>(child);
      const r = await drive(route, connections, secondsFor(connections));
      const b = await probe<{ cache: SessionCacheStats }>(child);
      // past the requests still in flight when wrk stopped, which the server went on to load
      if (route === 'miss') coldAt = (coldAt + r.requests + connections) % COLD;
      // a refused request measures the refusal, not the route: no report from such a run
      if (r.non2xx || r.errors) throw new Error(`${route}@${connections}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { ...r, cpu: (b.cpuUs - a.cpuUs) / r.requests, hits: b.cache.hits - a.cache.hits, misses: b.cache.misses - a.cache.misses };
    };
    const results: Record<number, Record<Route, Run[]>> = {};
    for (const connections of CONNS) {
      const byRoute = (results[connections] = { bare: [], session: [], miss: [], naive: [] } as Record<Route, Run[]>);
      for (const route of ROUTES) await run(route, connections); // warm-up, not reported
      for (let round = 0; round < ROUNDS; round++) {
        // a different order each round, so no route always follows the same one
        for (let j = 0; j < ROUTES.length; j++) {
          const route = ROUTES[(j + round) % ROUTES.length]!;
          byRoute[route].push(await run(route, connections));
        }
      }
      say(`${connections} connections done`);
    }
    const loadAtEnd = load1();
    const size = await storeSize();
    say('store size measured');
    const heap = await cacheHeap();
    say('cache heap measured');
    const f = (x: number, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
    const lines = [
      '# Session-authenticated route vs bare route',
      '',
      `Command: \`npm run bench -- sessions\` (SECONDS_PER_RUN=${SECONDS}, LONG_SECONDS=${LONG_SECONDS}, ROUNDS=${ROUNDS}, CONNS=${CONNS.join(',')}).`,
      `Machine: ${machine()}. Date: ${started}. Load average (1 min) ${loadAtStart} at the start, ${loadAtEnd} at the end of the runs.`,
      `Server: latchkey's build (dist/) in a child process, default session settings (cache ${f(ready.cacheSize)} entries, touch interval ${ready.touch} s,`,
      'a cache hit trusted while the revocation feed has read every event within the last second), SQLite store;',
      `load from ${useWrk ? 'wrk (1 thread)' : 'autocannon (install wrk for a load generator that is not the bottleneck)'} on loopback, each route in a run of ${SECONDS} s`,
      `(${Math.max(SECONDS, LONG_SECONDS)} s at 1,000 connections or more, where opening them all takes a second or more of the run),`,
      `the four routes one after another in each of ${ROUNDS} rounds (order rotated every round), after one unreported warm-up run each.`,
      '',
      'Routes (same handler body): no auth; the `requireSession` hook with the cookie of one of ' + `${HOT} sessions (all cached: the hit path);`,
      `the same hook with one of ${f(COLD)} sessions cycled in order, twice what the cache holds, so each is evicted before it`,
      'comes back (the miss path: SHA-256 of the cookie, one indexed SQLite read joining users and devices, caching it, and the',
      'last-seen write once a minute per session); a naive lookup (SHA-256 and one SQLite read per request, the absolute expiry only, no cache).',
      `Sessions: ${PER_USER} per user, last-seen times spread over the touch interval (sessions that began at different times),`,
      'so their last-seen writes come evenly rather than all in one second.',
      '',
      '| connections | route | req/s | p50 ms | p99 ms | server CPU µs/req | cache hits / misses | req/s vs bare | bare / route CPU | p99 / bare p99 |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    for (const [conns, byRoute] of Object.entries(results)) {
      const bare = byRoute.bare;
      for (const route of ROUTES) {
        const xs = byRoute[route];
        const hits = xs.reduce((n, x) => n + x.hits, 0);
        const misses = xs.reduce((n, x) => n + x.misses, 0);
        const paired =
          route === 'bare'
            ? '1.00 | 1.00 | 1.00'
            : `${pairedRatio(xs.map((x) => x.rps), bare.map((x) => x.rps)).toFixed(2)} | **${pairedRatio(bare.map((x) => x.cpu), xs.map((x) => x.cpu)).toFixed(2)}** | ${pairedRatio(xs.map((x) => x.p99), bare.map((x) => x.p99)).toFixed(2)}`;
        lines.push(
          `| ${conns} | ${LABEL[route]} | ${f(median(xs.map((x) => x.rps)))} | ${median(xs.map((x) => x.p50)).toFixed(2)} | ${median(xs.map((x) => x.p99)).toFixed(2)} | ${median(xs.map((x) => x.cpu)).toFixed(1)} | ${route === 'session' || route === 'miss' ? `${f(hits)} / ${f(misses)}` : '-'} | ${paired} |`,
        );
      }
    }
    lines.push(
      '',
      'req/s, p50, p99 and CPU are medians over the rounds; the three ratios are medians of the ratio within each round (the route',
      'against the bare run of the same round), which the machine\'s drift between rounds disturbs less. "bare / route CPU" is the',
      'server\'s CPU time per request (process.cpuUsage in the server, user + system) without auth over with it: the throughput',
      'ratio a server-bound deployment would see, which the load generator cannot cap. On a machine shared with other work, CPU',
      'time per request rises with contention too, so compare figures of one run, not across runs. The cache counters are the',
      'server\'s own over the reported runs; the hit runs\' misses are the last-seen writes (a cached session whose last-seen time',
      'is a touch interval old is read and written again).',
      '',
      '## Store size',
      '',
      `200,000 sessions (20,000 users) add ${(size.total / 2 ** 20).toFixed(1)} MiB to the SQLite file: **${size.perSession.toFixed(0)} bytes per session** including indexes (target <= 200; the seeds quote 3,000).`,
      '',
      '## Cache memory',
      '',
      Number.isNaN(heap)
        ? 'Heap per cached session: run with --expose-gc to measure.'
        : `**${heap.toFixed(0)} bytes of heap per cached session**: a SessionService filled with 10,000 sessions (10 per user) against the same service empty,` +
            ' after a full GC each; it counts the entry (session, user, handle), the three maps (by cookie, by handle, by user) and the' +
            ' cookie string each entry is keyed by. The default cache (10,000 entries) then holds about ' +
            `${((heap * 10_000) / 2 ** 20).toFixed(1)} MiB.`,
    );
    report(new URL('./results/sessions.md', import.meta.url).pathname, lines);
  } finally {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--server') await server(Number(process.argv[3]), process.argv[4]!);
else await main();
