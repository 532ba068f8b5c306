/**
 * Issue 3 benchmark: access-token signing rate per algorithm (latchkey's
 * node:crypto signer next to jose's SignJWT with the same key), the refresh
 * grant's throughput over HTTP, and the access token's size in bytes.
 *
 *   npm run bench -- tokens                          (about a minute)
 *   SECONDS_PER_RUN=2 ROUNDS=3 npm run bench -- tokens
 *
 * The refresh server runs in a child process so the client loop does not share
 * its event loop; on a 2-core machine each gets one core. Each client keeps its
 * own refresh family and always presents its current token, so every request
 * is a real rotation (compare-and-swap in SQLite, a new access token signed). Both parts run
 * latchkey's build (dist/), as `latchkey serve` does.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importJWK, SignJWT, type JWK } from 'jose';
import { answerProbes, load1, machine, median, probe, report } from './lib.js';

const DIST = fileURLToPath(new URL('../packages/latchkey/dist/', import.meta.url));
const latchkey = async () => {
  const { createLatchkey } = (await import(join(DIST, 'app.js'))) as typeof import('../packages/latchkey/dist/app.js');
  const { parseConfig } = (await import(join(DIST, 'config.js'))) as typeof import('../packages/latchkey/dist/config.js');
  return { createLatchkey, parseConfig };
};

const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CLIENTS = Number(process.env.CLIENTS ?? 32);
const ISSUER = 'https://auth.example.com';
const FAST_ARGON2 = { memoryKiB: 8192, iterations: 1, parallelism: 1 };
const ALGS = ['EdDSA', 'ES256', 'RS256'] as const;

const user = { id: 'u_8m3PZTqXuVk2bN4sWcA1Yg', roles: [] as string[] };
const SID = 'Qm9vZ2FsbG9vMTIz';

/** Operations per second of `fn`, one round of about `ms` milliseconds. */
async function rate(fn: () => unknown, ms: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 200; i++) await fn();
    n += 200;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

async function signing() {
  const { createLatchkey, parseConfig } = await latchkey();
  const rows: { alg: string; latchkey: number; jose: number; size: number; sizeRoles: number }[] = [];
  for (const alg of ALGS) {
    const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
    const lk = await createLatchkey(parseConfig({ dataDir, issuer: ISSUER, logLevel: 'silent', tokens: { algorithm: alg } }), { logger: false });
    try {
      const issuer = lk.context.tokens;
      const mintDefault = () => issuer.mintSync({ user, sessionHandle: SID, audience: 'latchkey' });
      const size = mintDefault().token.length;
      const sizeRoles = issuer.mintSync({ user: { ...user, roles: ['admin', 'billing'] }, sessionHandle: SID, audience: 'latchkey' }).token.length;
      // jose with the very same key and claims, for the record of why latchkey signs with node:crypto
      const signer = lk.context.keys.signer();
      const joseKey = await importJWK(signer.key.export({ format: 'jwk' }) as JWK, alg);
      const joseMint = () =>
        new SignJWT({ sid: SID, client_id: 'latchkey', jti: 'x'.repeat(22) })
          .setProtectedHeader({ alg, kid: signer.kid, typ: 'at+jwt' })
          .setIssuer(ISSUER)
          .setSubject(user.id)
          .setAudience('latchkey')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(joseKey);
      await rate(mintDefault, 200);
      await rate(joseMint, 200);
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ours.push(await rate(mintDefault, 1000));
        theirs.push(await rate(joseMint, 1000));
      }
      rows.push({ alg, latchkey: median(ours), jose: median(theirs), size, sizeRoles });
    } finally {
      await lk.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return rows;
}

async function server(port: number, dataDir: string) {
  const { createLatchkey, parseConfig } = await latchkey();
  const config = parseConfig({
    port,
    dataDir,
    issuer: ISSUER,
    logLevel: 'silent',
    passwords: { argon2: FAST_ARGON2 },
    rateLimit: { loginPerIp: 100000, signupPerIp: 100000 },
  });
  const lk = await createLatchkey(config, { logger: false });
  await lk.http.listen({ port, host: '127.0.0.1' });
  answerProbes();
  process.on('SIGTERM', () => process.exit(0));
  process.send?.('ready');
}

const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });

function post(port: number, path: string, body: string, type: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': type, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function refreshThroughput() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--server', String(port), dataDir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  try {
    const email = 'bench@example.com';
    const password = 'correct horse battery staple';
    const creds = JSON.stringify({ email, password });
    const s = await post(port, '/v1/signup', creds, 'application/json');
    if (s.status !== 201) throw new Error(`signup ${s.status}`);
    const tokens: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const r = await post(port, '/v1/tokens', creds, 'application/json');
      tokens.push((JSON.parse(r.body) as { refresh_token: string }).refresh_token);
    }
    const run = async (ms: number) => {
      const cpu0 = (await probe(child)).cpuUs;
      const latencies: number[] = [];
      const end = performance.now() + ms;
      await Promise.all(
        tokens.map(async (_, i) => {
          while (performance.now() < end) {
            const t0 = performance.now();
            const r = await post(port, '/oauth/token', `grant_type=refresh_token&client_id=latchkey&refresh_token=${tokens[i]}`, 'application/x-www-form-urlencoded');
            latencies.push(performance.now() - t0);
            // a failed grant ends the run with no report: every grant in a report answered 200
            if (r.status !== 200) throw new Error(`refresh answered ${r.status}: ${r.body}`);
            tokens[i] = (JSON.parse(r.body) as { refresh_token: string }).refresh_token;
          }
        }),
      );
      const cpu = (await probe(child)).cpuUs - cpu0;
      latencies.sort((a, b) => a - b);
      return {
        cpu: cpu / latencies.length,
        rps: latencies.length / (ms / 1000),
        p50: latencies[Math.floor(latencies.length * 0.5)]!,
        p99: latencies[Math.floor(latencies.length * 0.99)]!,
      };
    };
    await run(1000);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await run(SECONDS * 1000));
    return {
      rps: median(rounds.map((r) => r.rps)),
      p50: median(rounds.map((r) => r.p50)),
      p99: median(rounds.map((r) => r.p99)),
      cpu: median(rounds.map((r) => r.cpu)),
    };
  } finally {
    agent.destroy();
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  execFileSync(process.execPath, [fileURLToPath(import.meta.resolve('typescript/bin/tsc')), '-b', fileURLToPath(new URL('../packages/latchkey', import.meta.url))], { stdio: 'inherit' });
  const loadAtStart = load1();
  const sign = await signing();
  const refresh = await refreshThroughput();
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    '# Access tokens and refresh grants',
    '',
    `Command: \`npm run bench -- tokens\` (SECONDS_PER_RUN=${SECONDS}, ROUNDS=${ROUNDS}, CLIENTS=${CLIENTS})`,
    `Machine: ${machine()}. Load average (1 min) ${loadAtStart} at the start, ${load1()} at the end.`,
    `Date: ${new Date().toISOString()}. Medians over ${ROUNDS} rounds.`,
    '',
    '## Signing (one core, in-process)',
    '',
    `Default claims (iss \`${ISSUER}\`, sub, aud \`latchkey\`, exp, iat, jti, sid, client_id), header {alg, kid, typ: at+jwt}.`,
    '',
    '| alg | latchkey signs/s (node:crypto) | jose SignJWT signs/s | token bytes | bytes with roles ["admin","billing"] |',
    '|---|---:|---:|---:|---:|',
    ...sign.map((r) => `| ${r.alg} | ${f(r.latchkey)} | ${f(r.jose)} | ${r.size} | ${r.sizeRoles} |`),
    '',
    `Budget: the default EdDSA token is **${sign[0]!.size} bytes** (budget <= 420); RS256 with the same claims is ${sign[2]!.size}.`,
    '',
    '## Refresh grant over HTTP',
    '',
    `POST /oauth/token (form-encoded, RFC 6749 §6), ${CLIENTS} clients each looping on its own family with its current token: every request`,
    'is a rotation (SQLite compare-and-swap in one transaction, successor sealed for the grace window) plus a new EdDSA access token.',
    'Server in a child process; the client is a Node http loop with keep-alive in the parent, loopback. Every grant answered',
    '200: the run stops at the first that does not, and writes no report.',
    '',
    '| refresh grants/s | p50 ms | p99 ms | server CPU µs/grant |',
    '|---:|---:|---:|---:|',
    `| ${f(refresh.rps)} | ${refresh.p50.toFixed(2)} | ${refresh.p99.toFixed(2)} | ${refresh.cpu.toFixed(0)} |`,
  ];
  report(new URL('./results/tokens.md', import.meta.url).pathname, lines);
}

if (process.argv[2] === '--server') await server(Number(process.argv[3]), process.argv[4]!);
else await main();
