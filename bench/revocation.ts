/**
 * Issue 6 benchmark: how long from a revoke call to every subscribed verifier
 * refusing the token, with 1, 10 and 100 verifiers following the feed; and
 * the memory a verifier holds for 100,000 revoked sessions.
 *
 *   npm run bench -- revocation
 *   ROUNDS=20 npm run bench -- revocation
 *
 * latchkey runs in a child process (its own core); the verifiers, each with
 * its own feed connection (createRevocationFeed + createVerifier), all run in
 * this process, so with 100 of them one core verifies 100 SET signatures per
 * revocation: a worst case for the last subscriber.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLatchkey } from '../packages/latchkey/src/app.js';
import { parseConfig } from '../packages/latchkey/src/config.js';
import { createRevocationFeed, createRevocationList, createVerifier, VerifyError, type RevocationFeed } from '../packages/verify/src/index.js';
import { load1, machine, median, report } from './lib.js';

const ROUNDS = Number(process.env.ROUNDS ?? 50);
const SUBSCRIBERS = [1, 10, 100];
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef0123456789';
const CLIENT = { id: 'bench-feed', secret: 'bench-feed-secret-0123456789abcdef012345' };
const PASSWORD = 'correct horse battery staple';

async function server(port: number, dataDir: string) {
  const config = parseConfig({
    port,
    dataDir,
    issuer: `http://127.0.0.1:${port}`,
    logLevel: 'silent',
    adminKey: ADMIN_KEY,
    passwords: { argon2: { memoryKiB: 8192, iterations: 1, parallelism: 1 } },
    clients: [{ ...CLIENT, introspect: false, revocationFeed: true }],
    revocation: { heartbeatSeconds: 2, maxSubscribers: 1000 },
  });
  const lk = await createLatchkey(config, { logger: false });
  await lk.http.listen({ port, host: '127.0.0.1' });
  process.send?.('ready');
}

function child(args: string[]): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    c.once('message', () => resolve(c));
    c.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function propagation(base: string, issuer: string, n: number) {
  const applied = new Map<string, number[]>();
  const feeds: RevocationFeed[] = [];
  for (let i = 0; i < n; i++) {
    const feed = createRevocationFeed({
      issuer,
      clientId: CLIENT.id,
      clientSecret: CLIENT.secret,
      onEvent: (e) => {
        const t = performance.now();
        for (const r of e.revocations) if (r.kind === 'session') (applied.get(r.sid) ?? applied.set(r.sid, []).get(r.sid)!).push(t);
      },
    });
    feeds.push(feed);
  }
  await Promise.all(feeds.map((f) => f.ready(30_000)));
  const verifiers = feeds.map((f) => createVerifier({ issuer, audience: 'latchkey', revocation: f }));
  const afterReturn: number[] = [];
  const fromStart: number[] = [];
  let checked = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const login = await fetch(`${base}/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com', password: PASSWORD }),
    });
    const { access_token: token } = (await login.json()) as { access_token: string };
    const sid = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;
    for (const v of verifiers) await v.verify(token);
    const t0 = performance.now();
    const res = await fetch(`${base}/v1/admin/sessions/${sid}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const t1 = performance.now();
    if (res.status !== 204) throw new Error(`revoke: HTTP ${res.status}`);
    const deadline = t1 + 10_000;
    while ((applied.get(sid)?.length ?? 0) < n && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    const times = applied.get(sid) ?? [];
    if (times.length < n) throw new Error(`only ${times.length} of ${n} subscribers heard of the revocation within 10 s`);
    const last = Math.max(...times);
    afterReturn.push(Math.max(0, last - t1));
    fromStart.push(last - t0);
    // and they do refuse it
    for (const v of verifiers) {
      const err = await v.verify(token).then(() => undefined, (e: unknown) => e);
      if (!(err instanceof VerifyError) || err.code !== 'revoked') throw new Error('a subscriber still accepted a revoked token');
      checked++;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const f of feeds) f.close();
  return { afterReturn, fromStart, checked };
}

function memory(): { bytes: number; entries: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const until = Date.now() / 1000 + 3600;
  gc();
  const before = process.memoryUsage().heapUsed;
  const list = createRevocationList();
  for (let i = 0; i < 100_000; i++) {
    // sids as latchkey makes them: 12 random bytes, base64url (16 characters)
    list.revokeSession(randomBytes(12).toString('base64url'), until);
  }
  gc();
  const bytes = process.memoryUsage().heapUsed - before;
  return { bytes, entries: list.size };
}

async function main() {
  const port = 31000 + Math.floor(Math.random() * 10000);
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-rev-'));
  const srv = await child(['--server', String(port), dataDir]);
  const base = `http://127.0.0.1:${port}`;
  try {
    const signup = await fetch(`${base}/v1/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com', password: PASSWORD }),
    });
    if (signup.status !== 201) throw new Error(`signup: HTTP ${signup.status}`);
    const rows: string[] = [];
    for (const n of SUBSCRIBERS) {
      const r = await propagation(base, base, n);
      rows.push(
        `| ${n} | ${ROUNDS} | ${median(r.afterReturn).toFixed(1)} | ${pct(r.afterReturn, 99).toFixed(1)} | ${median(r.fromStart).toFixed(1)} | ${pct(r.fromStart, 99).toFixed(1)} | ${r.checked} |`,
      );
      console.log(rows.at(-1));
    }
    const mem = memory();
    report(new URL('./results/revocation.md', import.meta.url).pathname, [
      '# Revocation propagation to stateless verifiers',
      '',
      `Command: \`npm run bench -- revocation\` (ROUNDS=${ROUNDS}).`,
      `Machine: ${machine()}. Date: ${new Date().toISOString()}. Load average (1 min) at the end: ${load1()}.`,
      'latchkey in a child process; N verifiers in this process, each `createVerifier` with its own',
      '`createRevocationFeed` connection (SSE, every SET signature-checked, EdDSA). Each round: a token-client',
      'login, every verifier accepts its token, then `DELETE /v1/admin/sessions/:sid`; the delay is until the',
      'last verifier has applied the event (from then on `check` refuses the token), and every verifier is then',
      'asked to verify the token and must refuse it with `revoked` (counted in the last column).',
      '',
      '| verifiers | rounds | after the revoke call returned: p50 ms | p99 ms | from the revoke call start: p50 ms | p99 ms | refusals checked |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      '"After the call returned" is 0 when every verifier already refused before the HTTP response reached the caller',
      '(the event is pushed when the transaction commits, before the response is written).',
      '',
      '## Verifier memory',
      '',
      `100,000 revoked sessions in the verifier's revocation list: ${(mem.bytes / 1048576).toFixed(1)} MiB of heap,`,
      `**${Math.round(mem.bytes / mem.entries)} bytes per revoked session** (${mem.entries} entries; sid strings of 16 characters`,
      'and their keep-until times in a Map). Entries leave when every token they refer to has expired.',
    ]);
  } finally {
    srv.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const [mode, a, b] = process.argv.slice(2);
if (mode === '--server') await server(Number(a), b!);
else await main();
