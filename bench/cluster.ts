/**
 * Issue 13 benchmark, in one run: one latchkey node on SQLite, one on PostgreSQL + Redis, three on
 * PostgreSQL + Redis behind HAProxy (started by examples/cluster/cluster.mjs, as the example
 * does), and one on PostgreSQL + Redis with `sessions.strict`. For each:
 *
 *   - GET /v1/session with a session cookie against GET /bench/bare (the same handler and body
 *     without the auth hook, bench/cluster-server.ts) on the same server: req/s, p50/p99, and the
 *     CPU time of the server processes per request, read from /proc/<pid>/stat (utime + stime)
 *     before and after each run: latchkey's nodes, and PostgreSQL, Redis and HAProxy apart;
 *   - logins per second (argon2id at latchkey's default parameters) and refresh grants per second,
 *     from closed loops of concurrent clients;
 *   - with several nodes, the cross-node revocation delay: a session signed out on node A, polled
 *     on node B (which had it cached) until B refuses it.
 *
 *   npm run bench -- cluster                                        (about 6 minutes)
 *   SECONDS_PER_RUN=2 ROUNDS=1 SAMPLES=30 npm run bench -- cluster   (a check that it runs)
 *   ONLY=postgres,cluster npm run bench -- cluster                   (some setups: sqlite, postgres, cluster, strict)
 *
 * Everything is on 127.0.0.1. Load generator: wrk when installed (one thread), else autocannon;
 * logins, refresh grants and the revocation probes are Node fetch loops in this process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, type Cluster } from '../examples/cluster/cluster.mjs';
import { parseConfig } from '../packages/latchkey/src/config.js';
import { hasWrk, load, machine, median, report, wrkLoad, type LoadResult } from './lib.js';

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 100);
const SESSIONS = Number(process.env.SESSIONS ?? 500);
const LOGIN_CONCURRENCY = Number(process.env.LOGIN_CONCURRENCY ?? 8);
const REFRESH_CONCURRENCY = Number(process.env.REFRESH_CONCURRENCY ?? 16);
const SAMPLES = Number(process.env.SAMPLES ?? 200);
/** Accounts the logins and refresh families are spread over (one per concurrent client at most). */
const USERS = Math.max(LOGIN_CONCURRENCY, REFRESH_CONCURRENCY);
const PASSWORD = 'correct horse battery staple';
const COOKIE = '__Host-latchkey';
const SERVER = new URL('./cluster-server.ts', import.meta.url).pathname;

interface Setup {
  /** For ONLY=key,key: run some setups alone. */
  key: string;
  label: string;
  nodes: number;
  store: 'sqlite' | 'postgres';
  strict: boolean;
  /** Logins and refresh grants measured too (else only the session route). */
  grants: boolean;
}

const SETUPS: Setup[] = [
  { key: 'sqlite', label: '1 node, SQLite', nodes: 1, store: 'sqlite', strict: false, grants: true },
  { key: 'postgres', label: '1 node, PostgreSQL + Redis', nodes: 1, store: 'postgres', strict: false, grants: true },
  { key: 'cluster', label: '3 nodes, PostgreSQL + Redis', nodes: 3, store: 'postgres', strict: false, grants: true },
  { key: 'strict', label: '1 node, PostgreSQL + Redis, sessions.strict', nodes: 1, store: 'postgres', strict: true, grants: false },
];

// ── CPU time of the server processes, from /proc ────────────────────────────────────────────
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** utime + stime, and cutime + cstime, of a process, in µs; undefined once it is gone. */
function times(pid: number): { self: number; children: number; ppid: number; zombie: boolean } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // fields after "(comm) ": state ppid ... utime(14) stime(15) cutime(16) cstime(17), numbered from pid = 1
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i - 3]);
  return { self: (n(14) + n(15)) * TICK_US, children: (n(16) + n(17)) * TICK_US, ppid: n(4), zombie: f[0] === 'Z' };
}

/**
 * CPU µs of a process tree one level deep: PostgreSQL's postmaster, its live backends and those
 * that exited. A backend that has exited but is not reaped yet shows no CPU time and has not
 * reached its parent's cutime: read again until there is none (PostgreSQL reaps at once, but
 * the machine may be busy).
 */
async function treeCpu(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  for (let attempt = 0; ; attempt++) {
    const root = times(pid);
    if (!root) return 0;
    let total = root.self + root.children;
    let zombies = false;
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue;
      const t = times(Number(entry));
      if (t?.ppid !== pid) continue;
      total += t.self + t.children;
      zombies ||= t.zombie;
    }
    if (!zombies || attempt === 100) return total;
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Cpu {
  latchkey: number;
  postgres: number;
  redis: number;
  haproxy: number;
}

async function cpuNow(c: Cluster): Promise<Cpu> {
  return {
    latchkey: c.nodes.reduce((a, n) => a + (n.pid ? (times(n.pid)?.self ?? 0) : 0), 0),
    postgres: await treeCpu(c.postgres?.pid),
    redis: await treeCpu(c.redis?.pid),
    haproxy: await treeCpu(c.balancer?.pid),
  };
}

const cpuDiff = (a: Cpu, b: Cpu, per: number): Cpu => ({
  latchkey: (b.latchkey - a.latchkey) / per,
  postgres: (b.postgres - a.postgres) / per,
  redis: (b.redis - a.redis) / per,
  haproxy: (b.haproxy - a.haproxy) / per,
});

const medianCpu = (xs: Cpu[]): Cpu => ({
  latchkey: median(xs.map((x) => x.latchkey)),
  postgres: median(xs.map((x) => x.postgres)),
  redis: median(xs.map((x) => x.redis)),
  haproxy: median(xs.map((x) => x.haproxy)),
});

// ── clients ────────────────────────────────────────────────────────────────────────────────
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

const cookieOf = (res: Response) => res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`))!.split(';')[0]!;
const email = (i: number) => `bench${i}@example.com`;

interface LoopResult {
  rate: number;
  p50: number;
  p99: number;
  done: number;
  cpu: Cpu;
}

/** `concurrency` clients, each calling `op` back to back for `seconds`; every call must succeed. */
async function closedLoop(c: Cluster, concurrency: number, seconds: number, op: (client: number) => Promise<boolean>): Promise<LoopResult> {
  const latencies: number[] = [];
  let failed = 0;
  const cpu0 = await cpuNow(c);
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await op(client)) latencies.push(performance.now() - t);
        else failed++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = cpuDiff(cpu0, await cpuNow(c), Math.max(1, latencies.length));
  // a refused call measures the refusal, not the operation: no report from such a run
  if (failed) throw new Error(`${failed} calls failed`);
  return { rate: latencies.length / elapsed, p50: pct(latencies, 50), p99: pct(latencies, 99), done: latencies.length, cpu };
}

/** Session-cache counters summed over the nodes (IPC to bench/cluster-server.ts). */
async function cacheStats(c: Cluster): Promise<{ hits: number; misses: number }> {
  const all = await Promise.all(
    c.nodes.map(
      (n) =>
        new Promise<{ hits: number; misses: number }>((resolve) => {
          n.child.once('message', (m) => resolve((m as { stats: { hits: number; misses: number } }).stats));
          n.child.send('stats');
        }),
    ),
  );
  return { hits: all.reduce((a, s) => a + s.hits, 0), misses: all.reduce((a, s) => a + s.misses, 0) };
}

// ── one setup ────────────────────────────────────────────────────────────────────────────────
interface RouteRun extends LoadResult {
  cpu: Cpu;
}

interface SetupResult {
  setup: Setup;
  balancer: string;
  routes: { bare: RouteRun[]; session: RouteRun[] };
  cache: { hits: number; misses: number };
  logins?: LoopResult[];
  refresh?: LoopResult[];
  revocation?: { afterReturn: number[]; fromStart: number[]; poll: number[] };
}

async function runSetup(setup: Setup, useWrk: boolean): Promise<SetupResult> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-cluster-'));
  console.log(`\n-- ${setup.label}`);
  const c = await startCluster({
    dir,
    nodes: setup.nodes,
    store: setup.store,
    redis: setup.store === 'postgres',
    balancer: setup.nodes > 1 ? 'auto' : 'none',
    nodeCommand: [SERVER],
    nodeExecArgv: ['--import', 'tsx'],
    ipc: true,
    config: {
      sessions: { maxPerUser: 10_000, strict: setup.strict },
      // the run's logins and refresh grants come from a few accounts: every one writes its audit
      // event, as it would with the same load spread over many users (the default budget would drop most)
      audit: { perUserPerMinute: 1_000_000 },
    },
  });
  try {
    const url = c.url;
    for (let i = 0; i < USERS; i++) {
      const res = await post(`${url}/v1/signup`, { email: email(i), password: PASSWORD });
      if (res.status !== 201) throw new Error(`sign-up: HTTP ${res.status}`);
    }
    const cookies: string[] = [];
    const login = async (client: number) => {
      const res = await post(`${url}/v1/login`, { email: email(client % USERS), password: PASSWORD });
      if (res.status !== 200) return false;
      cookies.push(cookieOf(res));
      return true;
    };
    const result: SetupResult = { setup, balancer: c.balancer?.kind ?? 'none', routes: { bare: [], session: [] }, cache: { hits: 0, misses: 0 } };

    if (setup.grants) {
      console.log('logins');
      await closedLoop(c, LOGIN_CONCURRENCY, 1, login); // warm-up
      result.logins = [];
      for (let r = 0; r < ROUNDS; r++) result.logins.push(await closedLoop(c, LOGIN_CONCURRENCY, SECONDS, login));
    }
    // the sessions the session route is measured with: the logins' (more when they made too few)
    while (cookies.length < SESSIONS) {
      const need = SESSIONS - cookies.length;
      await Promise.all(Array.from({ length: Math.min(LOGIN_CONCURRENCY, need) }, (_, i) => login(i)));
    }
    const inPlay = cookies.slice(0, SESSIONS);
    for (const cookie of inPlay) {
      const res = await fetch(`${url}/v1/session`, { headers: { cookie } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`a session of the run is refused before the load (${res.status})`);
    }

    console.log('session route vs bare');
    const run = (path: string, seconds: number) =>
      useWrk
        ? wrkLoad({ url: `${url}${path}`, connections: CONNECTIONS, seconds, headers: inPlay })
        : load({ url: `${url}${path}`, connections: CONNECTIONS, seconds, perConnection: (i) => ({ cookie: inPlay[i % inPlay.length]! }) });
    // warm-up: JIT, connections, and every session into every node's cache
    await run('/bench/bare', 2);
    await run('/v1/session', 2);
    const stats0 = await cacheStats(c);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [key, path] of [['bare', '/bench/bare'], ['session', '/v1/session']] as const) {
        const cpu0 = await cpuNow(c);
        const res = await run(path, SECONDS);
        const cpu = cpuDiff(cpu0, await cpuNow(c), Math.max(1, res.requests));
        if (res.non2xx || res.errors) throw new Error(`${path}: ${res.non2xx} non-2xx, ${res.errors} errors`);
        result.routes[key].push({ ...res, cpu });
      }
    }
    const stats1 = await cacheStats(c);
    result.cache = { hits: stats1.hits - stats0.hits, misses: stats1.misses - stats0.misses };

    if (setup.grants) {
      console.log('refresh grants');
      const tokens: string[] = [];
      for (let i = 0; i < REFRESH_CONCURRENCY; i++) {
        const res = await post(`${url}/v1/tokens`, { email: email(i % USERS), password: PASSWORD });
        if (res.status !== 200) throw new Error(`token login: HTTP ${res.status}`);
        tokens.push(((await res.json()) as { refresh_token: string }).refresh_token);
      }
      const refresh = async (client: number) => {
        const res = await fetch(`${url}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens[client]! }).toString(),
        });
        const body = (await res.json()) as { refresh_token?: string };
        if (res.status !== 200 || !body.refresh_token) return false;
        tokens[client] = body.refresh_token;
        return true;
      };
      await closedLoop(c, REFRESH_CONCURRENCY, 1, refresh); // warm-up
      result.refresh = [];
      for (let r = 0; r < ROUNDS; r++) result.refresh.push(await closedLoop(c, REFRESH_CONCURRENCY, SECONDS, refresh));
    }

    if (setup.nodes > 1) {
      console.log('cross-node revocation');
      result.revocation = await revocationDelay(c);
    }
    return result;
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * SAMPLES times: sign in on node A, read the session twice on node B (the second read is a cache
 * hit), sign out on A, then poll B, one request at a time, until it answers 401. A and B go
 * round the nodes. The delay counts from the sign-out's response (A already refuses the session
 * then) and from its request.
 */
async function revocationDelay(c: Cluster) {
  const afterReturn: number[] = [];
  const fromStart: number[] = [];
  const poll: number[] = [];
  const get = async (node: string, cookie: string) => {
    const res = await fetch(`${node}/v1/session`, { headers: { cookie } });
    await res.arrayBuffer();
    return res.status;
  };
  for (let i = 0; i < SAMPLES; i++) {
    const a = c.nodes[i % c.nodes.length]!.url;
    const b = c.nodes[(i + 1) % c.nodes.length]!.url;
    const res = await post(`${a}/v1/login`, { email: email(i % USERS), password: PASSWORD });
    if (res.status !== 200) throw new Error(`login: HTTP ${res.status}`);
    const cookie = cookieOf(res);
    if ((await get(b, cookie)) !== 200 || (await get(b, cookie)) !== 200) throw new Error('node B refuses a live session');
    const t0 = performance.now();
    const out = await fetch(`${a}/v1/logout`, { method: 'POST', headers: { cookie } });
    const t1 = performance.now();
    if (out.status !== 204) throw new Error(`logout: HTTP ${out.status}`);
    let polls = 0;
    for (;;) {
      const status = await get(b, cookie);
      polls++;
      if (status === 401) break;
      if (status !== 200) throw new Error(`node B answered ${status}`);
      if (performance.now() - t1 > 10_000) throw new Error('node B still accepts a session signed out 10 s ago');
    }
    const t2 = performance.now();
    afterReturn.push(t2 - t1);
    fromStart.push(t2 - t0);
    poll.push((t2 - t1) / polls);
    if ((await get(a, cookie)) !== 401) throw new Error('node A accepts the session it signed out');
  }
  return { afterReturn, fromStart, poll };
}

// ── the report ─────────────────────────────────────────────────────────────────────────────
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const int = (x: number) => (Number.isFinite(x) ? String(Math.round(x)) : 'n/a');

function setupLabel(r: SetupResult): string {
  return r.setup.nodes > 1 ? `${r.setup.label} (${r.balancer === 'haproxy' ? 'HAProxy' : 'Node balancer'})` : r.setup.label;
}

async function main() {
  const useWrk = await hasWrk();
  const defaults = parseConfig({});
  const a2 = defaults.passwords.argon2;
  const results: SetupResult[] = [];
  const only = process.env.ONLY?.split(',');
  const unknown = only?.filter((k) => !SETUPS.some((s) => s.key === k));
  if (unknown?.length) throw new Error(`ONLY: no setup ${unknown.join(', ')} (there are ${SETUPS.map((s) => s.key).join(', ')})`);
  for (const setup of SETUPS) if (!only || only.includes(setup.key)) results.push(await runSetup(setup, useWrk));

  const lines = [
    '# Cluster: one node on SQLite, one on PostgreSQL + Redis, three behind a balancer',
    '',
    `Command: \`${process.env.ONLY ? `ONLY=${process.env.ONLY} ` : ''}npm run bench -- cluster\` (SECONDS_PER_RUN=${SECONDS}, ROUNDS=${ROUNDS}, CONNECTIONS=${CONNECTIONS}, SESSIONS=${SESSIONS}, LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY}, REFRESH_CONCURRENCY=${REFRESH_CONCURRENCY}, SAMPLES=${SAMPLES}).`,
    `Machine: ${machine()}. Date: ${new Date().toISOString()}.`,
    '',
    'Everything runs on this machine over 127.0.0.1 and shares its cores: the load generator, the nodes, PostgreSQL, Redis and HAProxy.',
    '',
    '- Nodes: `bench/cluster-server.ts`, which is `latchkey serve` (the same configuration from the same environment, the same `createLatchkey`) plus `GET /bench/bare` and a stats channel; started by `examples/cluster/cluster.mjs` as the example starts them (one issuer, one key-encryption key, `LATCHKEY_TRUST_PROXY=1` behind the balancer).',
    `- Settings that differ from the defaults: \`sessions.maxPerUser\` 10000 (the run's sessions belong to ${USERS} accounts), \`audit.perUserPerMinute\` 1000000 (every login and refresh writes its audit event, as the same load from many users would). At their defaults: \`sessions.cacheSize\` ${defaults.sessions.cacheSize} entries, \`sessions.touchIntervalSeconds\` ${defaults.sessions.touchIntervalSeconds}, \`store.poolSize\` 10 per node, rate limits (counted in SQLite, or in Redis with PostgreSQL), tokens ${defaults.tokens.algorithm}, access tokens ${defaults.tokens.accessTokenLifetimeSeconds} s.`,
    `- Passwords: argon2id at latchkey's defaults, m=${a2.memoryKiB} KiB, t=${a2.iterations}, p=${a2.parallelism}.`,
    '- PostgreSQL: Debian\'s server, a throwaway cluster from `scripts/pg-server.mjs` with **fsync, synchronous_commit and full_page_writes off**: commits cost less than on a durable server, which flatters logins and refresh grants (writes) on PostgreSQL, not the session route on cache hits (no writes). Redis: no persistence.',
    `- Session route: \`GET /v1/session\` with one of ${SESSIONS} session cookies (spread over the requests), against \`GET /bench/bare\`: the same handler and body (user and session views, \`no-store\`) without the auth hook, on the same server. Load: ${useWrk ? 'wrk, 1 thread' : 'autocannon (install wrk for a load generator that costs less CPU)'}, ${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} rounds interleaved (bare, session), medians shown; warm-up first (every session in every node's cache). With three nodes the load generator targets the balancer, which spreads the requests round robin.`,
    '- CPU: utime + stime of each server process from `/proc/<pid>/stat` before and after each run (resolution 10 ms per process), divided by the requests completed in the run. "latchkey" sums the nodes; PostgreSQL counts the postmaster and its backends. The load generator is not counted.',
    `- Logins: \`POST /v1/login\` in a closed loop of ${LOGIN_CONCURRENCY} concurrent clients, ${SECONDS} s per round; refresh grants: \`POST /oauth/token\` (grant_type=refresh_token), ${REFRESH_CONCURRENCY} concurrent clients each rotating its own refresh family. Both from Node fetch in the bench process, through the balancer with three nodes.`,
    '',
    '## Session route against bare route',
    '',
    '| setup | route | req/s | p50 ms | p99 ms | latchkey CPU µs/req | PostgreSQL µs/req | Redis µs/req | HAProxy µs/req |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    for (const key of ['bare', 'session'] as const) {
      const xs = r.routes[key];
      const cpu = medianCpu(xs.map((x) => x.cpu));
      lines.push(
        `| ${setupLabel(r)} | ${key === 'bare' ? 'bare' : '/v1/session'} | ${int(median(xs.map((x) => x.rps)))} | ${f2(median(xs.map((x) => x.p50)))} | ${f2(median(xs.map((x) => x.p99)))} | ${f1(cpu.latchkey)} | ${f1(cpu.postgres)} | ${f1(cpu.redis)} | ${r.balancer === 'none' ? '' : f1(cpu.haproxy)} |`,
      );
    }
  }
  lines.push(
    '',
    'Ratios (session route against bare, same setup): CPU = bare latchkey CPU per request / session latchkey CPU per request; req/s = session req/s / bare req/s. Target (issue 13): CPU ratio at least 0.85 on PostgreSQL + Redis with cache hits.',
    '',
    '| setup | session cache during the measured runs | CPU ratio | req/s ratio | target |',
    '|---|---|---:|---:|---|',
  );
  for (const r of results) {
    const bare = medianCpu(r.routes.bare.map((x) => x.cpu)).latchkey;
    const sess = medianCpu(r.routes.session.map((x) => x.cpu)).latchkey;
    const rps = median(r.routes.session.map((x) => x.rps)) / median(r.routes.bare.map((x) => x.rps));
    const ratio = bare / sess;
    const target = r.setup.store === 'postgres' && !r.setup.strict ? (ratio >= 0.85 ? 'met' : 'not met') : '';
    const hitRatio = r.cache.hits / Math.max(1, r.cache.hits + r.cache.misses);
    lines.push(`| ${setupLabel(r)} | ${r.cache.hits} hits, ${r.cache.misses} store reads (hit ratio ${hitRatio.toFixed(4)}) | ${f2(ratio)} | ${f2(rps)} | ${target} |`);
  }
  lines.push(
    '',
    '`sessions.strict` trusts no cache hit: every request reads the session from the store, which is where its cost shows (latchkey and PostgreSQL CPU per request).',
    '',
    '## Logins and refresh grants',
    '',
    '| setup | operation | per second | p50 ms | p99 ms | latchkey CPU µs/op | PostgreSQL µs/op | Redis µs/op | HAProxy µs/op |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    for (const [name, xs] of [['login', r.logins], ['refresh grant', r.refresh]] as const) {
      if (!xs) continue;
      const cpu = medianCpu(xs.map((x) => x.cpu));
      lines.push(
        `| ${setupLabel(r)} | ${name} | ${int(median(xs.map((x) => x.rate)))} | ${f1(median(xs.map((x) => x.p50)))} | ${f1(median(xs.map((x) => x.p99)))} | ${int(cpu.latchkey)} | ${int(cpu.postgres)} | ${int(cpu.redis)} | ${r.balancer === 'none' ? '' : int(cpu.haproxy)} |`,
      );
    }
  }
  lines.push(
    '',
    '## Cross-node revocation',
    '',
    `Per sample: sign in on node A, read the session twice on node B (cached there), \`POST /v1/logout\` on A, then poll \`GET /v1/session\` on B, one request at a time and back to back, until it answers 401 (A refuses at once: checked). A and B go round the nodes; the cluster is otherwise idle. "After the response" counts from the logout's response, "from the request" from the moment it was sent; both include up to one poll round trip (its median is shown). Target (issue 13): p99 under 100 ms.`,
    '',
    '| setup | samples | after the response p50 ms | p99 ms | max ms | from the request p50 ms | p99 ms | poll round trip ms | target |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const r of results) {
    const v = r.revocation;
    if (!v) continue;
    lines.push(
      `| ${setupLabel(r)} | ${v.afterReturn.length} | ${f1(pct(v.afterReturn, 50))} | ${f1(pct(v.afterReturn, 99))} | ${f1(Math.max(...v.afterReturn))} | ${f1(pct(v.fromStart, 50))} | ${f1(pct(v.fromStart, 99))} | ${f2(median(v.poll))} | ${pct(v.afterReturn, 99) < 100 ? 'met' : 'not met'} |`,
    );
  }
  report(new URL('./results/cluster.md', import.meta.url).pathname, lines);
}

await main();
