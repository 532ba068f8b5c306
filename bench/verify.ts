/**
 * Issue 4 benchmark: @latchkey/verify against the limit (raw node:crypto
 * signature verification of the same tokens), jose.jwtVerify and fast-jwt,
 * for EdDSA, ES256 and RS256, on one core; then a Fastify route verifying
 * every request next to the same route without auth.
 *
 *   node --import tsx bench/verify.ts                       (about 4 minutes)
 *   SECONDS_PER_RUN=0.1 ROUNDS=9 HTTP_SECONDS=2 HTTP_ROUNDS=5 node --import tsx bench/verify.ts
 *   SKIP_HTTP=1 node --import tsx bench/verify.ts          (the one-core part only)
 *
 * Micro benchmark: runs in a child process pinned to CPU 0 (taskset, when
 * installed), contenders interleaved round by round, medians reported.
 * - distinct tokens: a pool of 20,000 tokens cycled in order through a
 *   verifier whose cache holds a quarter of them: a token comes back after
 *   19,999 others, past what the cache's doorkeeper remembers (2 x 5,000
 *   first sights), so it is never admitted and every verification is a miss.
 * - seen before: 100 tokens cycled; each operation gets a fresh copy of the
 *   token string, as a request header would be, so the cache pays for comparing it.
 * HTTP: the Fastify server runs in a child process pinned to CPU 1, the load
 * generator (autocannon, and wrk when installed) in this process on CPU 0,
 * 100 connections, each repeating one of 100 tokens (a gateway's pattern).
 */
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createVerifier as fastJwtVerifier } from 'fast-jwt';
import { importJWK, jwtVerify, type JWK } from 'jose';
import { hasWrk, load, load1, machine, median, report, wrkLoad, type LoadResult } from './lib.js';

// short runs, many rounds: contenders compared within a round are measured close together in time, so the
// machine's drift between minutes moves them together
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 0.15);
const ROUNDS = Number(process.env.ROUNDS ?? 31);
const HTTP_SECONDS = Number(process.env.HTTP_SECONDS ?? 3);
const HTTP_ROUNDS = Number(process.env.HTTP_ROUNDS ?? 9);
const DISTINCT = 20_000;
/** fast-jwt's cache for tokens seen before (ours keeps its default, 10,000). */
const CACHE = 10_000;
/** Ours for distinct tokens: its doorkeeper forgets a first sight after at most 2 x 5,000 others, less than the pool. */
const DISTINCT_CACHE = 5_000;
const ISSUER = 'https://auth.example.com';
const AUD = 'orders';
const ALGS = ['EdDSA', 'ES256', 'RS256'] as const;
type Alg = (typeof ALGS)[number];
const SELF = fileURLToPath(import.meta.url);
const RESULT = new URL('./results/verify.md', import.meta.url).pathname;

const b64 = (v: string | Buffer) => Buffer.from(v).toString('base64url');

function keyPair(alg: Alg) {
  return alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** Tokens exactly as the server mints them (header {alg, kid, typ}, RFC 9068 claims). */
function minter(alg: Alg, key: KeyObject, kid: string) {
  const header = b64(JSON.stringify({ alg, kid, typ: 'at+jwt' }));
  return (lifetime = 300): string => {
    const iat = Math.floor(Date.now() / 1000);
    const claims = { iss: ISSUER, sub: 'u_8m3PZTqXuVk2bN4sWcA1Yg', aud: AUD, exp: iat + lifetime, iat, jti: randomBytes(16).toString('base64url'), sid: 'Qm9vZ2FsbG9vMTIz', client_id: 'latchkey' };
    const input = `${header}.${b64(JSON.stringify(claims))}`;
    const data = Buffer.from(input);
    const sig = alg === 'EdDSA' ? sign(null, data, key) : alg === 'ES256' ? sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', data, key);
    return `${input}.${sig.toString('base64url')}`;
  };
}

function setup(alg: Alg) {
  const { privateKey, publicKey } = keyPair(alg);
  const kid = 'bench-' + alg;
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { alg, privateKey, publicKey, kid, jwk, mint: minter(alg, privateKey, kid) };
}

/**
 * Operations per second of `op(i)` over about `seconds`, awaiting only when it
 * returns a promise. `i` goes on from where the contender's last run stopped,
 * so a pool of distinct tokens is never revisited while still cached.
 */
async function rate(op: ((i: number) => unknown) & { next?: number }, seconds: number): Promise<number> {
  let n = 0;
  const base = op.next ?? 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let j = 0; j < 64; j++) {
      const r = op(base + n++);
      if (r instanceof Promise) await r;
    }
    now = performance.now();
  }
  op.next = base + n;
  return n / ((now - start) / 1000);
}

interface MicroRow {
  alg: Alg;
  raw: number;
  ours: number;
  jose: number;
  fastJwt: number;
  hit: number;
  fastJwtHit: number;
  /** Medians of the per-round ratios to raw (each round runs every contender back to back); hit: ours over fast-jwt's cache. */
  paired: { ours: number; jose: number; fastJwt: number; hit: number };
}

async function micro(alg: Alg): Promise<MicroRow> {
  // imported here, in the child, after the parent has built the package: never a stale build
  const { createVerifier } = await import('@latchkey/verify');
  const s = setup(alg);
  const tokens = Array.from({ length: DISTINCT }, () => s.mint());
  const hot = tokens.slice(0, 100).map((t) => Buffer.from(t, 'latin1'));
  // the limit: the signature check alone, on bytes decoded beforehand
  const rawInputs = tokens.map((t) => {
    const dot = t.lastIndexOf('.');
    return { data: Buffer.from(t.slice(0, dot)), sig: Buffer.from(t.slice(dot + 1), 'base64url') };
  });
  const rawKey = alg === 'ES256' ? { key: s.publicKey, dsaEncoding: 'ieee-p1363' as const } : s.publicKey;
  const hash = alg === 'EdDSA' ? null : 'sha256';

  const ours = createVerifier({ issuer: ISSUER, audience: AUD, jwks: { keys: [s.jwk] }, cache: { maxEntries: DISTINCT_CACHE } });
  const oursHit = createVerifier({ issuer: ISSUER, audience: AUD, jwks: { keys: [s.jwk] } });
  const joseKey = await importJWK(s.jwk, alg);
  const joseOpts = { issuer: ISSUER, audience: AUD, typ: 'at+jwt', algorithms: [alg], requiredClaims: ['exp', 'iat', 'sub', 'jti', 'client_id'] };
  const pem = s.publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const fjOpts = { key: pem, algorithms: [alg], allowedIss: ISSUER, allowedAud: AUD, requiredClaims: ['exp', 'iat', 'sub', 'jti', 'client_id'] };
  const fj = fastJwtVerifier({ ...fjOpts, cache: false });
  const fjHit = fastJwtVerifier({ ...fjOpts, cache: CACHE });

  const contenders: Record<keyof Omit<MicroRow, 'alg' | 'paired'>, (i: number) => unknown> = {
    raw: (i) => {
      const r = rawInputs[i % DISTINCT]!;
      if (!cryptoVerify(hash, r.data, rawKey, r.sig)) throw new Error('raw verify failed');
    },
    ours: (i) => ours.verify(tokens[i % DISTINCT]!),
    jose: (i) => jwtVerify(tokens[i % DISTINCT]!, joseKey, joseOpts),
    fastJwt: (i) => fj(tokens[i % DISTINCT]!),
    hit: (i) => oursHit.verify(hot[i % 100]!.toString('latin1')),
    fastJwtHit: (i) => fjHit(hot[i % 100]!.toString('latin1')),
  };
  // every contender must accept every token, or the comparison means nothing
  for (const [name, op] of Object.entries(contenders)) {
    for (let i = 0; i < 200; i++) {
      await Promise.resolve(op(DISTINCT - 1 - i)).catch((e: Error) => {
        throw new Error(`${alg} ${name}: ${e.message}`);
      });
    }
  }
  for (const op of Object.values(contenders)) await rate(op, 0.2);
  const samples: Record<string, number[]> = {};
  const names = Object.keys(contenders) as (keyof typeof contenders)[];
  for (let r = 0; r < ROUNDS; r++) {
    // rotate the order each round so no contender always runs after the same one
    for (let j = 0; j < names.length; j++) {
      const name = names[(j + r) % names.length]!;
      (samples[name] ??= []).push(await rate(contenders[name], SECONDS));
    }
  }
  const m = (k: string) => median(samples[k]!);
  // a noisy machine drifts between rounds: the ratio within a round is steadier than the ratio of medians
  const p = (k: string, base = 'raw') => median(samples[k]!.map((x, i) => x / samples[base]![i]!));
  return {
    alg,
    raw: m('raw'),
    ours: m('ours'),
    jose: m('jose'),
    fastJwt: m('fastJwt'),
    hit: m('hit'),
    fastJwtHit: m('fastJwtHit'),
    paired: { ours: p('ours'), jose: p('jose'), fastJwt: p('fastJwt'), hit: p('hit', 'fastJwtHit') },
  };
}

interface HttpRow {
  tool: string;
  bare: number;
  auth: number;
  /** Server CPU microseconds per request. */
  bareCpu: number;
  authCpu: number;
  bareP99: number;
  authP99: number;
  non2xx: number;
  /** Median of the per-round auth / bare ratios (req/s, and server CPU per request bare / auth). */
  pairedRps: number;
  pairedCpu: number;
}

async function http(): Promise<HttpRow[]> {
  const s = setup('EdDSA');
  const tokens = Array.from({ length: 100 }, () => s.mint(300));
  const pin = (cpu: number) => (hasTaskset ? ['taskset', ['-c', String(cpu), process.execPath]] : [process.execPath, []]) as [string, string[]];
  const [cmd, pre] = pin(1);
  const child = spawn(cmd, [...pre, '--import', 'tsx', SELF.replace(/verify\.ts$/, 'verify-server.ts')], {
    env: { ...process.env, VERIFY_JWKS: JSON.stringify({ keys: [s.jwk] }), VERIFY_ISSUER: ISSUER, VERIFY_AUDIENCE: AUD },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  if (hasTaskset) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const rows: HttpRow[] = [];
  try {
    const tools: [string, (path: string, seconds: number) => Promise<LoadResult>][] = [
      ['autocannon', (path, seconds) => load({ url: `http://127.0.0.1:${port}${path}`, connections: 100, seconds, perConnection: (i) => ({ authorization: `Bearer ${tokens[i % 100]}` }) })],
    ];
    if (await hasWrk()) {
      tools.push(['wrk', (path, seconds) => wrkLoad({ url: `http://127.0.0.1:${port}${path}`, connections: 100, seconds, headers: tokens, header: 'Authorization', prefix: 'Bearer ' })]);
    }
    const cpu = async () => ((await (await fetch(`http://127.0.0.1:${port}/__cpu`)).json()) as { us: number }).us;
    /** One run, with the server's CPU time per request over it. */
    const measured = async (run: (path: string, seconds: number) => Promise<LoadResult>, path: string) => {
      const before = await cpu();
      const r = await run(path, HTTP_SECONDS);
      return { ...r, cpuPerRequest: ((await cpu()) - before) / (r.rps * HTTP_SECONDS) };
    };
    for (const [tool, run] of tools) {
      await run('/bare', 1);
      await run('/auth', 1);
      const bare: (LoadResult & { cpuPerRequest: number })[] = [];
      const auth: (LoadResult & { cpuPerRequest: number })[] = [];
      for (let r = 0; r < HTTP_ROUNDS; r++) {
        if (r % 2 === 0) {
          bare.push(await measured(run, '/bare'));
          auth.push(await measured(run, '/auth'));
        } else {
          auth.push(await measured(run, '/auth'));
          bare.push(await measured(run, '/bare'));
        }
      }
      rows.push({
        tool,
        bare: median(bare.map((x) => x.rps)),
        auth: median(auth.map((x) => x.rps)),
        bareCpu: median(bare.map((x) => x.cpuPerRequest)),
        authCpu: median(auth.map((x) => x.cpuPerRequest)),
        bareP99: median(bare.map((x) => x.p99)),
        authP99: median(auth.map((x) => x.p99)),
        non2xx: [...bare, ...auth].reduce((n, x) => n + x.non2xx + x.errors, 0),
        pairedRps: median(auth.map((a, i) => a.rps / bare[i]!.rps)),
        pairedCpu: median(auth.map((a, i) => bare[i]!.cpuPerRequest / a.cpuPerRequest)),
      });
    }
  } finally {
    child.kill();
  }
  return rows;
}

let hasTaskset = false;
try {
  execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  hasTaskset = true;
} catch {
  hasTaskset = false;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

if (process.argv[2] === '--micro') {
  // child: one core, print JSON rows
  const rows: MicroRow[] = [];
  for (const alg of ALGS) rows.push(await micro(alg));
  process.stdout.write(JSON.stringify(rows));
} else {
  // the package as users get it: its build (tsc), not the TypeScript sources through tsx
  execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-b', fileURLToPath(new URL('../packages/verify', import.meta.url))], { stdio: 'inherit' });
  const started = new Date().toISOString();
  const loadAtStart = load1();
  const [cmd, pre] = hasTaskset ? ['taskset', ['-c', '0', process.execPath]] : [process.execPath, []];
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(cmd, [...(pre as string[]), '--import', 'tsx', SELF, '--micro'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    c.stdout.on('data', (d: Buffer) => (buf += d));
    c.once('exit', (code) => (code === 0 ? resolve(buf) : reject(new Error(`micro benchmark exited ${code}`))));
  });
  const rows = JSON.parse(out) as MicroRow[];
  const httpRows = process.env.SKIP_HTTP ? [] : await http();
  const cpuNote = hasTaskset ? 'pinned to CPU 0 with taskset' : 'taskset not installed: single-threaded, not pinned';
  report(RESULT, [
    '# @latchkey/verify',
    '',
    `Command: \`npm run bench -- verify\` (SECONDS_PER_RUN=${SECONDS}, ROUNDS=${ROUNDS}, HTTP_SECONDS=${HTTP_SECONDS}, HTTP_ROUNDS=${HTTP_ROUNDS})`,
    `Machine: ${machine()}. Load average (1 min) at the start: ${loadAtStart}, at the end: ${load1()}.`,
    `Date: ${started}. Medians over ${ROUNDS} interleaved rounds (micro) and ${HTTP_ROUNDS} alternating rounds (HTTP).`,
    '',
    `## Verifications per second, one core (${cpuNote})`,
    '',
    'Tokens as the server mints them (header {alg, kid, typ: at+jwt}, RFC 9068 claims). Every contender checks the',
    'signature, iss, aud, exp and iat and the required claims; @latchkey/verify also checks typ, the header members,',
    'canonical base64url, claim types and the lifetime. "raw" is `crypto.verify` alone on bytes decoded beforehand: the limit.',
    '',
    `Distinct tokens: ${DISTINCT.toLocaleString('en-US')} tokens cycled; ours with \`cache: { maxEntries: ${DISTINCT_CACHE.toLocaleString('en-US')} }\`, whose doorkeeper`,
    `forgets a first sight after at most ${(2 * DISTINCT_CACHE).toLocaleString('en-US')} others, so no token is admitted and every verification is a miss (cache`,
    'lookup and doorkeeper included).',
    '',
    '| alg | raw node:crypto | @latchkey/verify | jose.jwtVerify | fast-jwt | ours / raw | jose / raw | fast-jwt / raw |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.alg} | ${fmt(r.raw)} | ${fmt(r.ours)} | ${fmt(r.jose)} | ${fmt(r.fastJwt)} | **${r.paired.ours.toFixed(2)}** | ${r.paired.jose.toFixed(2)} | ${r.paired.fastJwt.toFixed(2)} |`),
    '',
    'Rates are medians over the rounds; the ratios are medians of the ratio within each round (contenders run back to',
    'back), which a machine whose speed drifts between rounds disturbs less.',
    '',
    'Seen before: 100 tokens cycled, a fresh copy of the token string per operation (as from a request header): a cache',
    'against a cache. @latchkey/verify answers from its verified-token cache (default size), re-checking exp, the key and',
    `revocation on every hit; fast-jwt from its own cache (\`cache: ${CACHE.toLocaleString('en-US')}\`, keyed by a hash of the token), which checks`,
    'the cached entry\'s validity window (nbf to exp, at most its cacheTTL) on every hit.',
    'The ratio is ours over fast-jwt\'s, the median of the ratio within each round. Neither figure says what a signature check',
    'costs: that is the table above.',
    '',
    '| alg | @latchkey/verify, hit | fast-jwt, cached | ours hit / fast-jwt cached |',
    '|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.alg} | ${fmt(r.hit)} | ${fmt(r.fastJwtHit)} | **${r.paired.hit.toFixed(2)}** |`),
    '',
    '## Fastify route, 100 connections',
    '',
    'GET /bare and GET /auth answer the same small JSON; /auth verifies the bearer token in an onRequest hook',
    '(`latchkeyAuth` plugin, EdDSA, static JWKS). Both receive the same Authorization headers: 100 tokens, each',
    `repeated (a gateway sends one token per session many times). Server in a child process${hasTaskset ? ' on CPU 1' : ''}, load generator in`,
    `this process${hasTaskset ? ' on CPU 0' : ''}; ${HTTP_SECONDS} s per run, bare and auth alternating; the ratios are medians of the`,
    'ratio within each pair of runs, the other columns medians of the runs.',
    '',
    '| load generator | bare req/s | with auth req/s | auth / bare | server CPU µs/req bare | with auth | bare / auth CPU | p99 ms bare | p99 ms auth | errors + non-2xx |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...httpRows.map(
      (r) =>
        `| ${r.tool} | ${fmt(r.bare)} | ${fmt(r.auth)} | **${r.pairedRps.toFixed(2)}** | ${r.bareCpu.toFixed(1)} | ${r.authCpu.toFixed(1)} | **${r.pairedCpu.toFixed(2)}** | ${r.bareP99.toFixed(2)} | ${r.authP99.toFixed(2)} | ${r.non2xx} |`,
    ),
    '',
    'On two cores the load generator can be the bottleneck (autocannon, one JavaScript thread, usually is), which would',
    'hide the cost of auth in req/s. "bare / auth CPU" does not depend on that: server CPU time per request (process.cpuUsage',
    'in the server) without auth over with auth, the throughput ratio a server-bound deployment would see.',
    '',
  ]);
}
