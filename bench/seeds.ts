/**
 * Issue 14: the seeds' benchmark, reproduced side by side. The same workload,
 * in one run on one machine, against
 *   - the seeds' stateful stack: Express + express-session + connect-redis (Redis) + passport-local;
 *   - the seeds' stateless stack: Express + jsonwebtoken, HS256 and RS256, no revocation;
 *   - latchkey session cookies, on SQLite and on PostgreSQL + Redis;
 *   - latchkey access tokens verified by @latchkey/verify in a Fastify service, revocation feed on.
 * Every stack checks passwords with @node-rs/argon2 at latchkey's argon2id parameters.
 *
 *   npm run bench -- seeds                 (mostly argon2id: 2,000 sign-ins per stack)
 *   QUICK=1 npm run bench -- seeds         (a smoke run: 200 users, short phases; report to a temporary directory)
 *   STACKS=express-session,latchkey-sqlite VUS=500 SECONDS_PER_RUN=5 npm run bench -- seeds
 *
 * Per stack: its servers start as child processes (with a private Redis or
 * PostgreSQL on free ports where it needs one); VUS accounts exist; PROBES more
 * sign in one after another on the idle server; then all VUS virtual users sign
 * in at once; then wrk holds VUS connections for SECONDS_PER_RUN, each request
 * carrying one of the users' credentials, with the server side pinned to CPU 1
 * and wrk to CPU 0; then sessions are revoked and the route is asked until it
 * refuses. Server CPU time comes from /proc for every process of the stack.
 * Two baselines run only the request phase: the same route with no auth on
 * Express and on Fastify. Then: argon2id verifications alone at the same
 * concurrency (the limit of logins/s), and the store bytes of MEMORY_SESSIONS
 * live sessions.
 * Writes bench/results/seeds.md, seeds.json and the charts in bench/results/seeds/.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hash } from '@node-rs/argon2';
import { postgresBin } from '../scripts/pg-server.mjs';
import { barChart, percentileChart, throughputChart, toSvg, type Series } from './seeds/charts.js';
import { CONTENDERS, postgresOnce, type Contender, type Env } from './seeds/contenders.js';
import { accepted, autocannonRun, burst, oneAtATime, revokeToRefused, wrk, wrkVersion, type Credential, type WrkResult } from './seeds/load.js';
import { latchkeyPostgres, latchkeySqlite, redisSessions } from './seeds/memory.js';
import { allCpus, canPin, cpuBetween, cpuSeconds, pin } from './seeds/procs.js';
import { ARGON2, ARGON2_OPTIONS, IDLE_SECONDS, JWT_LIFETIME_SECONDS, PASSWORD } from './seeds/stacks/common.js';
import { machine } from './lib.js';

const QUICK = process.env.QUICK !== undefined && process.env.QUICK !== '' && process.env.QUICK !== '0';
const num = (name: string, full: number, quick: number) => Number(process.env[name] ?? (QUICK ? quick : full));
const VUS = num('VUS', 2000, 200);
const SECONDS = num('SECONDS_PER_RUN', 10, 3);
const ROUNDS = num('ROUNDS', 3, 2);
const WARMUP = num('WARMUP_SECONDS', 3, 1);
const PROBES = num('PROBES', 20, 5);
const REVOKES = num('REVOKES', 20, 5);
const RAW_SECONDS = num('RAW_SECONDS', 20, 5);
const MEMORY_SESSIONS = num('MEMORY_SESSIONS', 200_000, 20_000);
const PG_CHECK = num('PG_CHECK_SESSIONS', 10_000, 1_000);
const SETTLE_MS = num('SETTLE_MS', 2000, 1000);
const SIGNIN_PERCENTILES = [50, 75, 90, 99, 99.9, 100];
const REQUEST_PERCENTILES = [50, 75, 90, 99, 99.9, 99.99, 100];

const root = new URL('..', import.meta.url).pathname;
const OUT = QUICK ? mkdtempSync(join(tmpdir(), 'latchkey-seeds-quick-')) : join(root, 'bench', 'results');

const SERIES: Record<string, Series> = {
  'express-session': { label: 'Express + express-session + connect-redis', color: '#c0392b' },
  'jwt-hs256': { label: 'Express + jsonwebtoken HS256', color: '#7f8c8d' },
  'jwt-rs256': { label: 'Express + jsonwebtoken RS256', color: '#b3b6b7' },
  'latchkey-sqlite': { label: 'latchkey cookie, SQLite', color: '#1f5fa8' },
  'latchkey-postgres': { label: 'latchkey cookie, PostgreSQL + Redis', color: '#5b9bd5' },
  'latchkey-tokens': { label: 'latchkey token + @latchkey/verify', color: '#2e9e8f' },
  'express-bare': { label: 'Express, no auth (baseline)', color: '#e0c9a6' },
  'fastify-bare': { label: 'Fastify, no auth (baseline)', color: '#a6c8e0' },
};

type Round = WrkResult & { cpuUs: Record<string, number>; cpuUsTotal: number; round: number };

type Signed = StackResult & { signIn: NonNullable<StackResult['signIn']> };

interface StackResult {
  id: string;
  label: string;
  revocationHow: string;
  baseline: boolean;
  /** none for the no-auth baselines */
  signIn?: {
    oneAtATimeMs: number[];
    burstSeconds: number;
    loginsPerSecond: number;
    failures: number;
    firstFailure?: string;
    percentiles: [number, number][];
    /** server CPU ms per sign-in, by process */
    cpuMs: Record<string, number>;
  };
  /** medians over the rounds (errors summed) */
  requests: WrkResult & { cpuUs: Record<string, number>; cpuUsTotal: number };
  /** each measured round, in the order run */
  rounds: Round[];
  wire: { credentialHeader: string; mean: number; min: number; max: number };
  /** resident memory of each process group after the authenticated run, bytes */
  rss: Record<string, number>;
  /** ms from the revoke call's start to the refusal, and from its return to the request that was refused (sorted each) */
  revocation: { fromStart: number[]; afterReturn: number[]; timeouts: number } | undefined;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
const log = (s: string) => console.log(`[seeds ${new Date().toISOString().slice(11, 19)}] ${s}`);

function rssOf(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += m ? Number(m[1]) * 1024 : 0;
    } catch {
      // gone
    }
  }
  return total;
}

/** wrk when installed, else autocannon. */
let generator: typeof wrk = wrk;

/** A stack started and signed in, kept running while every stack's rounds take turns. */
interface Prepared {
  c: Contender;
  r: Awaited<ReturnType<Contender['start']>>;
  signIn: StackResult['signIn'];
  creds: Credential[];
  groups: () => { name: string; pids: number[] }[];
  cpuByRole: <T>(fn: () => Promise<T>) => Promise<{ value: T; seconds: Record<string, number> }>;
  rounds: Round[];
}

async function prepare(c: Contender, env: Env): Promise<Prepared> {
  log(`${c.label}: starting`);
  const started = await c.start(env);
  // stopped by finish(), or by the runner's cleanup after a failure: once either way
  let stopping: Promise<void> | undefined;
  const r = { ...started, stop: () => (stopping ??= started.stop()) };
  try {
    const groups = () => r.roles.map((role) => ({ name: role.name, pids: role.pids() }));
    const cpuByRole = async <T>(fn: () => Promise<T>): Promise<{ value: T; seconds: Record<string, number> }> => {
      const gs = groups();
      const before = gs.map((g) => cpuSeconds(g.pids));
      const value = await fn();
      const seconds: Record<string, number> = {};
      // the processes of each group now (PostgreSQL may have started backends meanwhile)
      groups().forEach((g, i) => (seconds[g.name] = cpuBetween(before[i]!, cpuSeconds([...new Set([...gs[i]!.pids, ...g.pids])]))));
      return { value, seconds };
    };

    let signIn: StackResult['signIn'];
    let creds: Credential[];
    if (c.baseline) {
      // the same number of distinct header values as the stacks send credentials, which this route ignores
      creds = range(0, VUS).map((i) => ({ header: 'Cookie', value: `user=vu${i}` }));
    } else {
      // one sign-in first, not counted: the first request of a fresh server pays for JIT and for opening connections
      await oneAtATime([VUS + PROBES], r.signIn);
      const oneAtATimeMs = await oneAtATime(range(VUS, VUS + PROBES), r.signIn);
      log(`${c.label}: ${VUS} sign-ins at once`);
      const b = await cpuByRole(() => burst(range(0, VUS), r.signIn));
      creds = b.value.credentials.filter((x): x is Credential => x !== undefined);
      log(`${c.label}: ${creds.length} signed in in ${b.value.seconds.toFixed(1)} s (${b.value.failures} failed${b.value.firstFailure ? `: ${b.value.firstFailure}` : ''})`);
      if (creds.length === 0) throw new Error(`${c.label}: no sign-in succeeded`);
      const ok = await accepted(r.me, creds);
      if (ok !== creds.length) throw new Error(`${c.label}: ${creds.length - ok} of ${creds.length} fresh credentials refused before the load`);
      const latencies = b.value.latencies;
      signIn = {
        oneAtATimeMs,
        burstSeconds: b.value.seconds,
        loginsPerSecond: latencies.length / b.value.seconds,
        failures: b.value.failures,
        ...(b.value.firstFailure ? { firstFailure: b.value.firstFailure } : {}),
        percentiles: SIGNIN_PERCENTILES.map((p) => [p, pct(latencies, p)]),
        cpuMs: Object.fromEntries(Object.entries(b.seconds).map(([k, s]) => [k, (s * 1000) / Math.max(1, latencies.length)])),
      };
    }
    return { c, r, signIn, creds, groups, cpuByRole, rounds: [] };
  } catch (err) {
    await r.stop();
    throw err;
  }
}

/** One measured round of authenticated requests (after a warm-up and a pause), server pinned to CPU 1. */
async function measure(s: Prepared, round: number): Promise<void> {
  const { c, r, creds, groups, cpuByRole } = s;
  const header = creds[0]!.header;
  const serverPids = groups().flatMap((g) => g.pids);
  pin(serverPids, '1');
  let w: { value: WrkResult; seconds: Record<string, number> };
  try {
    await generator({ url: r.me, connections: VUS, seconds: WARMUP, header, values: creds.map((x) => x.value) });
    // requests the warm-up left queued must not be served (and their CPU counted) in the measured run
    await sleep(SETTLE_MS);
    w = await cpuByRole(() => generator({ url: r.me, connections: VUS, seconds: SECONDS, header, values: creds.map((x) => x.value) }));
  } finally {
    pin(serverPids, allCpus());
  }
  const cpuUs = Object.fromEntries(Object.entries(w.seconds).map(([k, sec]) => [k, (sec * 1e6) / Math.max(1, w.value.requests)]));
  const errs = w.value.errors;
  s.rounds.push({ ...w.value, cpuUs, cpuUsTotal: Object.values(cpuUs).reduce((a, x) => a + x, 0), round });
  log(`${c.label}, round ${round}: ${Math.round(w.value.rps)} req/s, p99 ${w.value.p99.toFixed(1)} ms, errors ${JSON.stringify(errs)}`);
}

/** The median of each figure over the rounds (errors summed): what the report's tables show. */
function medianRound(rounds: readonly Round[]): StackResult['requests'] {
  const med = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    const m = a.length >> 1;
    return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
  };
  const first = rounds[0]!;
  const cpuUs = Object.fromEntries(Object.keys(first.cpuUs).map((k) => [k, med(rounds.map((x) => x.cpuUs[k]!))]));
  const sum = (k: keyof WrkResult['errors']) => rounds.reduce((a, x) => a + x.errors[k], 0);
  return {
    requests: rounds.reduce((a, x) => a + x.requests, 0),
    seconds: rounds.reduce((a, x) => a + x.seconds, 0),
    rps: med(rounds.map((x) => x.rps)),
    errors: { connect: sum('connect'), read: sum('read'), write: sum('write'), timeout: sum('timeout'), status: sum('status') },
    percentiles: first.percentiles.map(([p], i) => [p, med(rounds.map((x) => x.percentiles[i]![1]))]),
    p50: med(rounds.map((x) => x.p50)),
    p99: med(rounds.map((x) => x.p99)),
    responseBytes: med(rounds.map((x) => x.responseBytes)),
    cpuUs,
    cpuUsTotal: med(rounds.map((x) => x.cpuUsTotal)),
  };
}

/** Resident memory, then the revoke-to-refused probe on the idle server, then stop it. */
async function finish(s: Prepared): Promise<StackResult> {
  const { c, r, creds, groups } = s;
  try {
    const rss = Object.fromEntries(groups().map((g) => [g.name, rssOf(g.pids)]));
    const header = creds[0]!.header;
    const lines = creds.map((x) => Buffer.byteLength(`${x.header}: ${x.value}\r\n`));

    let revocation: StackResult['revocation'];
    if (r.revoke) {
      const fromStart: number[] = [];
      const afterReturn: number[] = [];
      let timeouts = 0;
      for (const cred of creds.slice(-Math.min(REVOKES, creds.length))) {
        const t = await revokeToRefused(r.me, cred, () => r.revoke!(cred));
        if (t === undefined) timeouts++;
        else {
          fromStart.push(t.fromStart);
          afterReturn.push(t.afterReturn);
        }
      }
      const asc = (a: number, b2: number) => a - b2;
      revocation = { fromStart: fromStart.sort(asc), afterReturn: afterReturn.sort(asc), timeouts };
    }
    return {
      id: c.id,
      label: c.label,
      revocationHow: c.revocation,
      baseline: c.baseline === true,
      ...(s.signIn ? { signIn: s.signIn } : {}),
      requests: medianRound(s.rounds),
      rounds: s.rounds,
      wire: { credentialHeader: header, mean: lines.reduce((a, x) => a + x, 0) / lines.length, min: Math.min(...lines), max: Math.max(...lines) },
      rss,
      revocation,
    };
  } finally {
    await r.stop();
  }
}

async function rawArgon2(passwordHash: string): Promise<{ verifications: number; seconds: number; cpuSecondsPerVerification: number; perSecond: number }> {
  log(`argon2id alone: ${VUS} in flight for ${RAW_SECONDS} s`);
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./seeds/argon2-raw.ts', import.meta.url).pathname], {
    env: { ...process.env, SEEDS_HASH: passwordHash, SEEDS_CONCURRENCY: String(VUS), SEEDS_SECONDS: String(RAW_SECONDS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += String(d);
      if (buf.includes('\n')) resolve(buf);
    });
    child.once('exit', (code) => reject(new Error(`argon2-raw exited (${code}) without a result`)));
  });
  // its exit would first drain the verifications still queued in the thread pool
  child.kill('SIGKILL');
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { verifications: number; seconds: number; cpuSecondsPerVerification: number };
  return { ...r, perSecond: r.verifications / r.seconds };
}

function versions(): Record<string, string> {
  const v = (pkg: string) => {
    try {
      return (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return '?';
    }
  };
  const cmd = (file: string, args: string[]) => {
    try {
      return execFileSync(file, args, { encoding: 'utf8' }).trim().split('\n')[0]!;
    } catch {
      return '?';
    }
  };
  const pgBin = postgresBin();
  return {
    node: process.version,
    express: v('express'),
    'express-session': v('express-session'),
    'connect-redis': v('connect-redis'),
    redis: v('redis'),
    passport: v('passport'),
    'passport-local': v('passport-local'),
    jsonwebtoken: v('jsonwebtoken'),
    '@node-rs/argon2': v('@node-rs/argon2'),
    fastify: v('fastify'),
    'better-sqlite3': v('better-sqlite3'),
    pg: v('pg'),
    ioredis: v('ioredis'),
    latchkey: v('latchkey'),
    '@latchkey/verify': v('@latchkey/verify'),
    vega: v('vega'),
    'vega-lite': v('vega-lite'),
    'redis-server': cmd('redis-server', ['--version']).replace(/^Redis server /, ''),
    PostgreSQL: pgBin ? cmd(join(pgBin, 'postgres'), ['--version']) : 'not installed',
  };
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const ms = (n: number) => (n >= 100 ? f0(n) : n >= 10 ? f1(n) : f2(n));
const mib = (b: number) => (b / 2 ** 20).toFixed(1);

async function main() {
  const started = new Date();
  const load0 = loadavg();
  const wrkV = await wrkVersion();
  if (!wrkV) log('wrk is not installed (apt-get install -y wrk): autocannon generates the load, in this process, and may be the bottleneck');
  generator = wrkV ? wrk : autocannonRun;
  const chosen = process.env.STACKS ? process.env.STACKS.split(',') : CONTENDERS.map((c) => c.id);
  const unknown = chosen.filter((id) => !CONTENDERS.some((c) => c.id === id));
  if (unknown.length) throw new Error(`STACKS: no stack ${unknown.join(', ')} (there are: ${CONTENDERS.map((c) => c.id).join(', ')})`);
  const contenders = CONTENDERS.filter((c) => chosen.includes(c.id));

  const dir = mkdtempSync(join(tmpdir(), 'latchkey-seeds-'));
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => void stopAll().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`argon2id m=${ARGON2.memoryKiB} KiB, t=${ARGON2.iterations}, p=${ARGON2.parallelism}; ${VUS} virtual users; ${SECONDS} s runs${QUICK ? ' (QUICK)' : ''}`);
    const passwordHash = await hash(PASSWORD, ARGON2_OPTIONS);
    const env: Env = { dir, hash: passwordHash, users: VUS + PROBES + 1, postgres: postgresOnce(stops), stops };
    const results: StackResult[] = [];
    // every stack signs its users in and stays up; then ROUNDS rounds, each stack measured once per
    // round in an order rotated every round, so a noisy minute on this shared machine falls on
    // different stacks in different rounds and the medians compare like with like
    const prepared: Prepared[] = [];
    for (const c of contenders) {
      const s = await prepare(c, env);
      prepared.push(s);
      stops.push(() => s.r.stop());
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const shift = (round - 1) % prepared.length;
      const order = [...prepared.slice(shift), ...prepared.slice(0, shift)];
      log(`round ${round} of ${ROUNDS}: ${SECONDS} s of authenticated requests per stack, ${VUS} connections`);
      for (const s of order) await measure(s, round);
    }
    for (const s of prepared) results.push(await finish(s));
    const raw = await rawArgon2(passwordHash);
    log(`argon2id alone: ${f1(raw.perSecond)} verifications/s`);

    log(`store bytes for ${MEMORY_SESSIONS} sessions`);
    const memory: Everything['memory'] = [];
    let tokenMemory: Everything['memory'][number] | undefined;
    if (chosen.includes('express-session')) {
      const m = await redisSessions(dir, MEMORY_SESSIONS);
      memory.push({ id: 'express-session', label: 'connect-redis (Redis)', ...m });
    }
    if (chosen.some((id) => id.startsWith('jwt-'))) {
      memory.push({ id: 'jwt-hs256', label: 'jsonwebtoken (HS256 or RS256)', what: 'nothing is stored per session', sessions: MEMORY_SESSIONS, bytes: 0 });
    }
    if (chosen.includes('latchkey-sqlite') || chosen.includes('latchkey-tokens')) {
      const m = await latchkeySqlite(dir, MEMORY_SESSIONS);
      if (chosen.includes('latchkey-sqlite')) memory.push({ id: 'latchkey-sqlite', label: 'latchkey cookie sessions, SQLite', ...m.cookie });
      if (chosen.includes('latchkey-tokens')) tokenMemory = { id: 'latchkey-tokens', label: 'latchkey token logins, SQLite', ...m.tokens };
    }
    if (chosen.includes('latchkey-postgres')) {
      const m = await latchkeyPostgres(dir, (await env.postgres()).url, MEMORY_SESSIONS, PG_CHECK);
      memory.push({
        id: 'latchkey-postgres',
        label: 'latchkey cookie sessions, PostgreSQL',
        ...m,
        note: `rows inserted by one INSERT in the service's shape; ${f0(m.checkSessions)} more through SessionService took ${f0(m.checkBytes / m.checkSessions)} bytes each`,
      });
    }
    if (tokenMemory) memory.push(tokenMemory);
    const versionList = versions();
    const load1 = loadavg();
    await write({ results, raw, memory, versionList, started, load0, load1, wrkV });
  } finally {
    await stopAll();
  }
}

interface Everything {
  results: StackResult[];
  raw: Awaited<ReturnType<typeof rawArgon2>>;
  memory: { id: string; label: string; what: string; sessions: number; bytes: number; note?: string }[];
  versionList: Record<string, string>;
  started: Date;
  load0: number[];
  load1: number[];
  wrkV: string | undefined;
}

async function write(all: Everything) {
  const { results, raw, memory, versionList, started, load0, load1, wrkV } = all;
  const series = results.map((r) => SERIES[r.id]!);
  const signed = results.filter((r): r is Signed => r.signIn !== undefined);
  const signedSeries = signed.map((r) => SERIES[r.id]!);
  const name = (r: { id: string }) => SERIES[r.id]!.label;
  const by = (id: string) => results.find((r) => r.id === id);
  const charts = join(OUT, 'seeds');
  mkdirSync(charts, { recursive: true });
  const oneRun = `one run, ${started.toISOString().slice(0, 10)}, ${VUS.toLocaleString('en-US')} users, 2 shared cores`;
  const roundsNote = `medians of ${ROUNDS} rounds`;

  const svgs: Record<string, string> = {
    headline: await toSvg(
      barChart({
        title: `Authenticated requests per second at ${VUS.toLocaleString('en-US')} concurrent users`,
        subtitle: `${oneRun}, ${roundsNote}; p99 latency after each bar (bench/results/seeds.md)`,
        xTitle: 'requests per second (higher is better)',
        series,
        rows: results.map((r) => ({ stack: name(r), value: r.requests.rps, text: `${f0(r.requests.rps)} req/s · p99 ${ms(r.requests.p99)} ms` })),
      }),
    ),
    'request-latency': await toSvg(
      percentileChart(
        `Authenticated request latency, ${VUS.toLocaleString('en-US')} connections`,
        `${oneRun}, ${roundsNote}`,
        series,
        results.flatMap((r) => r.requests.percentiles.filter(([p]) => REQUEST_PERCENTILES.includes(p)).map(([p, v]) => ({ stack: name(r), p, ms: Math.max(v, 0.01), baseline: r.baseline }))),
      ),
    ),
    'signin-latency': await toSvg(
      percentileChart(
        `Sign-in latency, ${VUS.toLocaleString('en-US')} users signing in at once`,
        `${oneRun}; argon2id m=${ARGON2.memoryKiB} KiB, t=${ARGON2.iterations}, p=${ARGON2.parallelism} in every stack`,
        signedSeries,
        signed.flatMap((r) => r.signIn.percentiles.map(([p, v]) => ({ stack: name(r), p, ms: v }))),
      ),
    ),
    throughput: await toSvg(
      throughputChart(
        `${oneRun}, ${roundsNote}`,
        series,
        results.map((r) => ({ stack: name(r), rps: r.requests.rps })),
        results.flatMap((r) => Object.entries(r.requests.cpuUs).map(([process, us]) => ({ stack: name(r), process, us }))),
      ),
    ),
    logins: await toSvg(
      barChart({
        title: 'Sign-ins per second against argon2id verifications alone',
        subtitle: `${oneRun}; dashed: argon2id verifications/s, ${VUS.toLocaleString('en-US')} in flight, nothing else`,
        xTitle: 'completed sign-ins per second (higher is better)',
        series: signedSeries,
        rows: signed.map((r) => ({ stack: name(r), value: r.signIn.loginsPerSecond, text: `${f1(r.signIn.loginsPerSecond)}/s` })),
        rule: { value: raw.perSecond, text: `argon2id alone ${f1(raw.perSecond)}/s` },
      }),
    ),
    memory: await toSvg(
      barChart({
        title: `Store memory for ${MEMORY_SESSIONS.toLocaleString('en-US')} live sessions`,
        subtitle: 'Redis used_memory; SQLite file growth; PostgreSQL table + indexes; JWT: nothing stored',
        xTitle: 'MiB (lower is better)',
        series: memory.map((m) => ({ label: m.label, color: SERIES[m.id]!.color })),
        rows: memory.map((m) => ({ stack: m.label, value: m.bytes / 2 ** 20, text: `${mib(m.bytes)} MiB · ${f0(m.bytes / m.sessions)} B/session` })),
      }),
    ),
  };
  for (const [file, svg] of Object.entries(svgs)) writeFileSync(join(charts, `${file}.svg`), svg);

  const es = by('express-session') as Signed | undefined;
  const lk = by('latchkey-sqlite') as Signed | undefined;
  const targetLines: string[] = [];
  if (es && lk) {
    // each round's ratio, from the two stacks' runs in that round; the medians of those
    const paired = lk.rounds.map((x) => ({ lk: x, es: es.rounds.find((y) => y.round === x.round)! }));
    const median = (xs: number[]) => {
      const a = [...xs].sort((x, y) => x - y);
      const m = a.length >> 1;
      return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
    };
    const ratio = median(paired.map((p) => p.lk.rps / p.es.rps));
    const lower = paired.filter((p) => p.lk.p99 < p.es.p99).length;
    const met = ratio >= 3 && lk.requests.p99 < es.requests.p99;
    targetLines.push(
      `Target (issue 14): the latchkey cookie route serves at least 3x the req/s of express-session + connect-redis at ${VUS.toLocaleString('en-US')} users, with lower p99.`,
      `This run, medians over ${paired.length} rounds: **${f2(ratio)}x** (${f0(lk.requests.rps)} against ${f0(es.requests.rps)} req/s), p99 ${ms(lk.requests.p99)} ms against ${ms(es.requests.p99)} ms (lower in ${lower} of ${paired.length} rounds): **${met ? 'met' : 'not met'}**` +
        (met ? '.' : ` (${ratio < 3 ? 'throughput ratio below 3' : ''}${ratio < 3 && lk.requests.p99 >= es.requests.p99 ? ', ' : ''}${lk.requests.p99 >= es.requests.p99 ? 'p99 not lower' : ''}).`),
    );
    const es2 = es.requests.cpuUsTotal;
    const exb = by('express-bare');
    const fb = by('fastify-bare');
    if (exb && fb) {
      targetLines.push(
        `The frameworks alone (the same route, no auth): Express ${f0(exb.requests.rps)} req/s and ${f1(exb.requests.cpuUsTotal)} µs per request, Fastify ${f0(fb.requests.rps)} req/s and ${f1(fb.requests.cpuUsTotal)} µs. express-session + connect-redis keeps ${f2(es.requests.rps / exb.requests.rps)} of bare Express's req/s, latchkey's cookie route ${f2(lk.requests.rps / fb.requests.rps)} of bare Fastify's: part of the ratio above is Express against Fastify, not sessions against sessions.`,
      );
    }
    targetLines.push(
      `Server CPU per request (every process of the stack): latchkey ${f1(lk.requests.cpuUsTotal)} µs, express-session + connect-redis ${f1(es2)} µs (${f2(es2 / lk.requests.cpuUsTotal)}x); on a machine where the server side is CPU-bound this ratio is the throughput ratio.`,
    );
  }

  const seedsRows: string[] = [];
  const jwtH = by('jwt-hs256') as Signed | undefined;
  if (es && jwtH) {
    seedsRows.push(
      `| Login latency at 2,000 concurrent users: JWT 300 ms, Cookie/Passport.js 420 ms | sign-in p50 with ${VUS.toLocaleString('en-US')} users at once: jsonwebtoken HS256 ${ms(jwtH.signIn.percentiles.find(([p]) => p === 50)![1])} ms, express-session ${ms(es.signIn.percentiles.find(([p]) => p === 50)![1])} ms; one at a time: ${ms(pct(jwtH.signIn.oneAtATimeMs, 50))} ms and ${ms(pct(es.signIn.oneAtATimeMs, 50))} ms. Sign-in time is argon2id's: ${f1(raw.perSecond)} verifications/s on this machine bound every stack alike. |`,
    );
  }
  const memEs = memory.find((m) => m.id === 'express-session');
  if (memEs) {
    const lkm = memory.find((m) => m.id === 'latchkey-sqlite');
    seedsRows.push(
      `| 200,000 sessions: 600 MB for the stateful store, 120 MB JWT baseline | ${f0(MEMORY_SESSIONS)} sessions: Redis used_memory +${mib(memEs.bytes)} MiB (connect-redis)${lkm ? `, latchkey SQLite file +${mib(lkm.bytes)} MiB` : ''}; JWT stores nothing. The server processes' resident memory is in the memory section. |`,
    );
  }
  if (es && jwtH) {
    const lkw = lk?.wire;
    seedsRows.push(
      `| Per request: 32 bytes (session ID) vs 300-700 bytes (JWT) | credential header per request: express-session ${f0(es.wire.mean)} bytes, jsonwebtoken HS256 ${f0(jwtH.wire.mean)}${by('jwt-rs256') ? `, RS256 ${f0(by('jwt-rs256')!.wire.mean)}` : ''}${lkw ? `, latchkey cookies ${f0(lkw.mean)}` : ''}${by('latchkey-tokens') ? `, latchkey access token ${f0(by('latchkey-tokens')!.wire.mean)}` : ''} (header name, value and CRLF) |`,
    );
    seedsRows.push(
      `| A session lookup adds ~1-5 ms per request | server CPU per request, express-session + connect-redis (Redis included) minus jsonwebtoken HS256 on the same Express: ${f0(es.requests.cpuUsTotal - jwtH.requests.cpuUsTotal)} µs${lk ? `; latchkey's cookie route in all: ${f0(lk.requests.cpuUsTotal)} µs` : ''}. Latency at ${VUS.toLocaleString('en-US')} connections is mostly queueing for the one server core (p50: express-session ${ms(es.requests.p50)} ms, jsonwebtoken HS256 ${ms(jwtH.requests.p50)} ms${lk ? `, latchkey cookie ${ms(lk.requests.p50)} ms` : ''}) |`,
    );
  }

  const roleCols = (r: StackResult) =>
    Object.entries(r.requests.cpuUs)
      .map(([k, v]) => `${k} ${f1(v)}`)
      .join(' + ');
  const lines = [
    "# The seeds' benchmark, side by side",
    '',
    `Command: \`${QUICK ? 'QUICK=1 ' : ''}npm run bench -- seeds\` (VUS=${VUS}, SECONDS_PER_RUN=${SECONDS}, WARMUP_SECONDS=${WARMUP}, ROUNDS=${ROUNDS}, PROBES=${PROBES}, REVOKES=${REVOKES}, RAW_SECONDS=${RAW_SECONDS}, MEMORY_SESSIONS=${MEMORY_SESSIONS}).`,
    `Machine: ${machine()}; load average ${load0.map(f2).join(' ')} at the start, ${load1.map(f2).join(' ')} at the end (the machine is shared: other work ran during this run).`,
    `Date: ${started.toISOString()}. **All numbers are from this one run.** Authenticated requests: every stack stays up, and each is measured once in each of ${ROUNDS} rounds (order rotated every round); the tables show the median of each figure over the rounds (errors: the sum), the per-round figures are under "Rounds". Sign-in, memory and revocation: once per stack. Expect run-to-run differences of tens of percent on this machine.`,
    QUICK ? '\n**QUICK smoke run: short phases and fewer users; not a result.**\n' : '',
    '![Authenticated requests per second](seeds/headline.svg)',
    '',
    ...targetLines.flatMap((l) => [l, '']),
    '## Setup',
    '',
    `- Every stack checks the password with @node-rs/argon2, argon2id m=${ARGON2.memoryKiB} KiB, t=${ARGON2.iterations}, p=${ARGON2.parallelism} (latchkey's defaults). The runner hashes the password once; every account of every stack has that hash, so a sign-in costs the same verification everywhere.`,
    `- ${VUS.toLocaleString('en-US')} accounts per stack (plus ${PROBES} for the one-at-a-time sign-ins and one for a first, uncounted sign-in). Express stacks keep their accounts in process memory (no user lookup in a store); latchkey reads them from its store.`,
    `- Each stack's servers run as child processes. Sign-in phase: all ${VUS.toLocaleString('en-US')} users start their sign-in at once, each on a connection of its own (Node's HTTP client); servers may use both cores. Authenticated phase: ${wrkV ? `wrk ${wrkV.split(' ').slice(0, 2).join(' ')} (1 thread` : '**autocannon** (wrk is not installed; one JavaScript thread in the runner, likely the bottleneck'}, ${VUS.toLocaleString('en-US')} connections, ${WARMUP} s warm-up, a ${SETTLE_MS / 1000} s pause, then ${SECONDS} s measured, request i carries user i mod ${VUS.toLocaleString('en-US')}'s credential)${wrkV && canPin() ? ' pinned to CPU 0' : ''}, ${canPin() ? 'every server-side process of the stack (app, Redis, PostgreSQL, verifier) pinned to CPU 1' : 'nothing pinned (taskset not available)'}.`,
    '- Server CPU µs per request: utime + stime from /proc/<pid>/stat of every process of the stack (PostgreSQL: the postmaster and its backends) over the measured run, divided by the requests wrk completed.',
    `- Every server listens with backlog 4096 (Node's default 511 overflows when ${VUS.toLocaleString('en-US')} clients connect at once, whatever the stack).`,
    '- Baselines: the same route with no authentication, on Express and on Fastify (each in a server of its own, only the request phase, requests carrying a cookie the route ignores), so the framework\'s share of a stack\'s cost is visible.',
    `- The authenticated route answers \`{"ok":true,"sub":"<user id>"}\` in every stack: Express \`GET /me\`; latchkey \`GET /bench/me\` behind its session hook; the token stack's Fastify \`GET /me\` behind @latchkey/verify's plugin.`,
    `- express-session: resave and saveUninitialized false, connect-redis defaults (touch on: each request is a Redis GET and an EXPIRE), cookie HttpOnly, SameSite=Lax, maxAge ${IDLE_SECONDS / 3600} h (latchkey's idle timeout); passport.session() deserializes the user from memory.`,
    `- jsonwebtoken: the seeds' middleware (split the Authorization header, \`jwt.verify\` with the algorithm pinned); HS256 with a 32-byte secret, RS256 with a 2048-bit key; tokens \`{sub, role, iat, exp}\`, exp ${JWT_LIFETIME_SECONDS / 60} minutes.`,
    "- latchkey: defaults (session cache 10,000 entries, EdDSA access tokens of 5 minutes, verifier cache on, revocation feed heartbeats every 2 s), except the per-IP login limit, raised to 1,000,000 because every virtual user signs in from 127.0.0.1 (the limiter still counts every attempt). Cookie stacks send both cookies latchkey sets for Path=/ (the session and the known-device cookie), as a browser would.",
    '',
    'Versions: ' + Object.entries(versionList).map(([k, v]) => `${k} ${v}`).join(', ') + '.',
    '',
    '## Authenticated requests',
    '',
    '![Throughput and CPU per request](seeds/throughput.svg)',
    '',
    '| stack | req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/request (by process) | total µs | errors (socket / status >= 400) | credential bytes per request | response bytes |',
    '|---|---:|---:|---:|---:|---|---:|---:|---:|---:|',
    ...results.map((r) => {
      const e = r.requests.errors;
      const p999 = r.requests.percentiles.find(([p]) => p === 99.9)![1];
      return `| ${r.label} | ${f0(r.requests.rps)} | ${ms(r.requests.p50)} | ${ms(r.requests.p99)} | ${ms(p999)} | ${roleCols(r)} | ${f1(r.requests.cpuUsTotal)} | ${e.connect + e.read + e.write + e.timeout} / ${e.status} | ${r.baseline ? '-' : `${f0(r.wire.mean)}${r.wire.min !== r.wire.max ? ` (${r.wire.min}-${r.wire.max})` : ''}`} | ${f0(r.requests.responseBytes)} |`;
    }),
    '',
    'Credential bytes: the `Cookie` or `Authorization` header line as sent (name, value, CRLF), averaged over the users. Response bytes: what the load generator read per response (status line, headers, body). A request unanswered after 10 s counts as a socket error (timeout) and is left out of the latency percentiles by the load generator: read p99 together with the errors column.',
    '',
    '![Request latency percentiles](seeds/request-latency.svg)',
    '',
    '### Rounds',
    '',
    `Each stack's measured run in each round (req/s, p99 ms, server CPU µs per request, socket errors); a round runs the stacks one after another, the order rotated by one stack every round.`,
    '',
    `| stack | ${range(1, ROUNDS + 1).map((i) => `round ${i}`).join(' | ')} |`,
    `|---|${range(0, ROUNDS).map(() => '---:').join('|')}|`,
    ...results.map((r) => `| ${r.label} | ${r.rounds.map((x) => { const e = x.errors; const n = e.connect + e.read + e.write + e.timeout; return `${f0(x.rps)} · ${ms(x.p99)} · ${f1(x.cpuUsTotal)}${n ? ` · ${n} err` : ''}`; }).join(' | ')} |`),
    '',
    '## Sign-in',
    '',
    '![Sign-in latency percentiles](seeds/signin-latency.svg)',
    '',
    `| stack | one at a time, p50 ms | all at once: p50 ms | p99 ms | max ms | sign-ins/s | / argon2id alone | server CPU ms per sign-in | failed |`,
    '|---|---:|---:|---:|---:|---:|---:|---|---:|',
    ...signed.map((r) => {
      const at = (p: number) => r.signIn.percentiles.find(([q]) => q === p)![1];
      const cpu = Object.entries(r.signIn.cpuMs)
        .map(([k, v]) => `${k} ${f1(v)}`)
        .join(' + ');
      return `| ${r.label} | ${ms(pct(r.signIn.oneAtATimeMs, 50))} | ${f0(at(50))} | ${f0(at(99))} | ${f0(at(100))} | ${f1(r.signIn.loginsPerSecond)} | ${f2(r.signIn.loginsPerSecond / raw.perSecond)} | ${cpu} | ${r.signIn.failures}${r.signIn.firstFailure ? ` (${r.signIn.firstFailure.slice(0, 80)})` : ''} |`;
    }),
    `| argon2id verifications alone (same parameters, ${VUS.toLocaleString('en-US')} in flight, one process) | | | | | ${f1(raw.perSecond)} | 1.00 | ${f1(raw.cpuSecondsPerVerification * 1000)} | |`,
    '',
    `Sign-ins/s: completed sign-ins over the time from the first request to the last answer. argon2id alone: @node-rs/argon2 \`verify\` in a process of its own with ${VUS.toLocaleString('en-US')} calls in flight, counted over ${RAW_SECONDS} s after a 1 s warm-up. With every user arriving at once, a sign-in's latency is mostly its wait in the queue for the password hash; "one at a time" is ${PROBES} sign-ins on an idle server, after one that is not counted (a fresh server's first request pays for JIT and for opening its store connections).`,
    '',
    '![Sign-ins per second](seeds/logins.svg)',
    '',
    '## Memory',
    '',
    '![Store memory](seeds/memory.svg)',
    '',
    '| store | sessions | bytes | per session | what is measured |',
    '|---|---:|---:|---:|---|',
    ...memory.map((m) => `| ${m.label} | ${f0(m.sessions)} | ${f0(m.bytes)} (${mib(m.bytes)} MiB) | ${m.sessions ? f0(m.bytes / m.sessions) : '-'} | ${m.what}${m.note ? `; ${m.note}` : ''} |`),
    '',
    `Sessions created through each store's own API, not by HTTP sign-ins: connect-redis \`set\` with the session express-session and passport store (its Cookie with the stack's options, \`passport.user\`); latchkey's SessionService (cookie sessions) and RefreshService (token logins), on SQLite in transactions of 10,000. ${f0(Math.max(1, Math.round(MEMORY_SESSIONS / 10)))} users hold them, 10 each; users' own rows are not counted.`,
    '',
    `Resident memory (VmRSS) of each stack's processes after its last round (${VUS.toLocaleString('en-US')} live sessions):`,
    '',
    '| stack | resident memory |',
    '|---|---|',
    ...signed.map((r) => `| ${r.label} | ${Object.entries(r.rss).map(([k, b]) => `${k} ${mib(b)} MiB`).join(', ')} |`),
    '',
    '## From "revoke" to refused',
    '',
    '| stack | how | rounds | from the revoke call: p50 ms | max ms | accepted after the call returned: p50 ms | max ms |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...signed.map((r) => {
      const v = r.revocation;
      if (!v) return `| ${r.label} | ${r.revocationHow} | not measured | up to ${JWT_LIFETIME_SECONDS / 60} min | ${JWT_LIFETIME_SECONDS / 60} min | up to ${JWT_LIFETIME_SECONDS / 60} min | ${JWT_LIFETIME_SECONDS / 60} min |`;
      const cell = (xs: number[], p: number) => (xs.length ? ms(pct(xs, p)) : '-');
      return `| ${r.label} | ${r.revocationHow} | ${v.fromStart.length}${v.timeouts ? ` (+${v.timeouts} still accepted after 10 s)` : ''} | ${cell(v.fromStart, 50)} | ${cell(v.fromStart, 100)} | ${cell(v.afterReturn, 50)} | ${cell(v.afterReturn, 100)} |`;
    }),
    '',
    "After the load, on idle servers: the revoke call, then the route asked one request after another with the revoked credential. \"From the revoke call\": from the call's start to the first refusal's arrival (the call's own time included). \"Accepted after the call returned\": how long requests sent after the call had returned were still accepted (0: the first one was refused). For the token stack the refusal comes from the Fastify service's @latchkey/verify, which learns of the revocation from latchkey's feed. jsonwebtoken: not measured; there is nothing to call, and a token is accepted until its exp.",
    '',
    "## The seeds' figures next to this run's",
    '',
    '| the seeds say | this run |',
    '|---|---|',
    ...seedsRows,
    '',
  ];
  const text = lines.join('\n').replace(/\n{3,}/g, '\n\n');
  writeFileSync(join(OUT, 'seeds.md'), text);
  writeFileSync(join(OUT, 'seeds.json'), JSON.stringify({ settings: { QUICK, VUS, SECONDS, WARMUP, ROUNDS, PROBES, REVOKES, RAW_SECONDS, MEMORY_SESSIONS, argon2: ARGON2 }, ...all }, null, 1) + '\n');
  process.stdout.write(text);
  log(`report: ${join(OUT, 'seeds.md')}`);
}

await main();
// timers of libraries the runner loaded (redis clients, pools) must not keep a finished run alive
process.exit(0);
