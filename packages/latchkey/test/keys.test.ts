/**
 * Signing keys: private halves at rest in the store, scheduled rotation with pre-publication,
 * and the `latchkey keys` CLI acting on a running server from another process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { createLatchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { openPrivateKey } from '../src/keys/material.js';
import type { KeyRetiredEvent } from '../src/keys/service.js';
import { Database } from '../src/store/sqlite/driver.js';
import { FAST_ARGON2, json, startServer, type TestServer } from './helpers.js';
import { form, INTROSPECTOR, loginTokens, signup, type TokenResponse } from './token-helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;
const run = promisify(execFile);

/** `out`: stdout and stderr (warnings such as the plaintext-secrets one go to stderr); `stdout` alone for --json. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; stdout: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'keys', ...args], { env: { ...process.env, ...env } });
    return { code: 0, out: stdout + stderr, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr, stdout: e.stdout };
  }
}

const jwksOf = async (srv: TestServer) => json<JSONWebKeySet>(await fetch(`${srv.url}/.well-known/jwks.json`));
const kids = async (srv: TestServer) => (await jwksOf(srv)).keys.map((k) => k.kid!);
const kidOf = (token: string) => decodeProtectedHeader(token).kid!;

async function eventually(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting: ${what}`);
}

describe('private keys at rest', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const config = (dataDir: string, encryptionKey?: string) =>
    parseConfig({ dataDir, logLevel: 'silent', passwords: { argon2: FAST_ARGON2 }, keys: encryptionKey ? { encryptionKey } : {} });
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'latchkey-keys-'));
    dirs.push(d);
    return d;
  };
  /** The signing_keys rows of the SQLite store of `dataDir`, private halves included. */
  const rows = (dataDir: string) => {
    const db = new Database(join(dataDir, 'latchkey.sqlite'), { readonly: true });
    try {
      return db.prepare('SELECT kid, alg, private_key FROM signing_keys ORDER BY activates_at').all() as { kid: string; alg: 'EdDSA'; private_key: string | null }[];
    } finally {
      db.close();
    }
  };

  it('live in the store with their key, not in the data dir: the stored private half is the key that signs', async () => {
    const dataDir = fresh();
    const lk = await createLatchkey(config(dataDir), { logger: false });
    const signer = lk.context.keys.signer();
    await lk.close();
    assert.equal(existsSync(join(dataDir, 'keys')), false);
    const [row] = rows(dataDir);
    assert.equal(row!.kid, signer.kid);
    const opened = openPrivateKey(row!.private_key!, row!.kid, row!.alg, undefined, 'in the store');
    assert.ok(opened.key.equals(signer.key));
  });

  it('are AES-256-GCM sealed with the configured key, and refused without it or with another', async () => {
    const dataDir = fresh();
    const key = randomBytes(32).toString('base64');
    const lk = await createLatchkey(config(dataDir, key), { logger: false });
    const kid = lk.context.keys.signer().kid;
    await lk.close();
    const text = rows(dataDir)[0]!.private_key!;
    const stored = JSON.parse(text) as Record<string, unknown>;
    assert.equal(stored.enc, 'A256GCM');
    assert.equal(stored.jwk, undefined);
    assert.doesNotMatch(text, /"d"/);
    // the same key reopens it and signs with the same kid
    const again = await createLatchkey(config(dataDir, key), { logger: false });
    assert.equal(again.context.keys.signer().kid, kid);
    await again.close();
    await assert.rejects(createLatchkey(config(dataDir), { logger: false }), /encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY/);
    // nor does the CLI add a plain key beside encrypted ones
    const plain = await cli(['rotate', '--data-dir', dataDir], { LATCHKEY_KEY_ENCRYPTION_KEY: '' });
    assert.equal(plain.code, 1, plain.out);
    assert.match(plain.out, /encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY/);
    assert.deepEqual(rows(dataDir).map((r) => r.kid), [kid]);
    const sealed = await cli(['rotate', '--data-dir', dataDir], { LATCHKEY_KEY_ENCRYPTION_KEY: key });
    assert.equal(sealed.code, 0, sealed.out);
    assert.equal(rows(dataDir).length, 2);
    assert.ok(rows(dataDir).every((r) => (JSON.parse(r.private_key!) as { enc?: string }).enc === 'A256GCM'));
    await assert.rejects(createLatchkey(config(dataDir, randomBytes(32).toString('base64')), { logger: false }), /does not decrypt|cannot decrypt/);
  });

  it('the encryption key comes from LATCHKEY_KEY_ENCRYPTION_KEY and must be 32 bytes', async () => {
    const { loadConfig } = await import('../src/config.js');
    const key = randomBytes(32).toString('base64url');
    assert.equal(loadConfig({}, { LATCHKEY_KEY_ENCRYPTION_KEY: key }).keys.encryptionKey, key);
    assert.throws(() => loadConfig({}, { LATCHKEY_KEY_ENCRYPTION_KEY: 'short' }), /keys\.encryptionKey/);
  });
});

describe('scheduled rotation (in-process, injected clock)', () => {
  const INTERVAL = 3600;
  const PRE = 600;
  let clock = Date.now();
  let srv: TestServer;
  const retired: KeyRetiredEvent[] = [];
  before(async () => {
    srv = await startServer({ keys: { rotationIntervalSeconds: INTERVAL, prePublishSeconds: PRE } }, { now: () => clock });
    srv.lk.context.keys.onRetired((e) => retired.push(e));
  });
  after(() => srv.close());

  const advance = async (seconds: number) => {
    clock += seconds * 1000;
    // the first call may join a timer round that began before the clock moved; the second starts after
    await srv.lk.context.keys.tick();
    await srv.lk.context.keys.tick();
  };
  const verifyAt = async (token: string) => {
    // a verifier that fetches JWKS now, with its clock at ours
    const set = createLocalJWKSet(await jwksOf(srv));
    return jwtVerify(token, set, { algorithms: ['EdDSA'], issuer: srv.config.issuer, currentDate: new Date(clock) });
  };

  it('publishes the next key before it signs, keeps the old one until its last token expired', async () => {
    const { email } = await signup(srv);
    const first = await loginTokens(srv, email);
    const a = kidOf(first.access_token);
    assert.deepEqual(await kids(srv), [a]);

    await advance(INTERVAL - PRE - 10);
    assert.deepEqual(await kids(srv), [a], 'not yet due');
    await advance(20);
    const published = await kids(srv);
    assert.equal(published.length, 2, 'the next key is published');
    const b = published.find((k) => k !== a)!;
    await advance(PRE - 30);
    const beforeSwitch = await loginTokens(srv, email);
    assert.equal(kidOf(beforeSwitch.access_token), a, 'the pending key does not sign yet');

    await advance(30);
    const afterSwitch = await loginTokens(srv, email);
    assert.equal(kidOf(afterSwitch.access_token), b, 'the new key signs once its time came');
    // a token signed before the rotation still verifies: its key is still published
    assert.deepEqual((await kids(srv)).sort(), [a, b].sort());
    await verifyAt(beforeSwitch.access_token);
    await verifyAt(afterSwitch.access_token);

    // until the old key's last token has expired (300 s) plus leeway
    await advance(300);
    assert.ok((await kids(srv)).includes(a));
    await advance(61);
    assert.deepEqual(await kids(srv), [b]);
    assert.deepEqual(retired.map((e) => [e.kid, e.reason]), [[a, 'expired']]);
    // a key that left JWKS never signs again: its private half left the store
    assert.equal(await srv.lk.store.getPrivateKey(a), undefined);
    assert.ok(await srv.lk.store.getPrivateKey(b));
    const views = srv.lk.context.keys.list();
    assert.equal(views.find((k) => k.kid === a)!.state, 'retired');
    assert.equal(views.find((k) => k.kid === b)!.state, 'active');
  });
});

describe('latchkey keys (CLI against a running server)', () => {
  let srv: TestServer;
  const retired: KeyRetiredEvent[] = [];
  before(async () => {
    srv = await startServer({ clients: [{ ...INTROSPECTOR }] });
    srv.lk.context.keys.onRetired((e) => retired.push(e));
  });
  after(() => srv.close());
  const dataDir = () => ['--data-dir', srv.config.dataDir];

  async function introspect(token: string) {
    const basic = Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString('base64');
    return json<{ active: boolean }>(await form(srv, '/oauth/introspect', { token }, { authorization: `Basic ${basic}` }));
  }

  it('list shows the active key', async () => {
    const [kid] = await kids(srv);
    const { code, out } = await cli(['list', ...dataDir()]);
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`^${kid}\\s+EdDSA\\s+active`, 'm'));
    const listed = JSON.parse((await cli(['list', '--json', ...dataDir()])).stdout) as { kid: string; state: string }[];
    assert.deepEqual(listed.map((k) => [k.kid, k.state]), [[kid, 'active']]);
  });

  it('rotate publishes a pending key the server picks up; rotate --now makes it sign; old tokens still verify', async () => {
    const { email } = await signup(srv);
    const old = await loginTokens(srv, email);
    const a = kidOf(old.access_token);
    const r = await cli(['rotate', ...dataDir()]);
    assert.equal(r.code, 0, r.out);
    const b = /created (\S+)/.exec(r.out)![1]!;
    await eventually(async () => (await kids(srv)).includes(b), 'the server publishes the pending key');
    assert.equal(kidOf((await loginTokens(srv, email)).access_token), a, 'pending: not signing yet');
    // asking again changes nothing
    const again = await cli(['rotate', ...dataDir()]);
    assert.match(again.out, new RegExp(`${b} is already scheduled`));

    assert.equal((await cli(['rotate', '--now', ...dataDir()])).code, 0);
    await eventually(async () => kidOf((await loginTokens(srv, email)).access_token) === b, 'the server signs with the new key');
    const set = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    await jwtVerify(old.access_token, set, { algorithms: ['EdDSA'] });
    assert.equal((await introspect(old.access_token)).active, true);
  });

  it('retire: the key’s tokens stop verifying while the session and its refresh token live on', async () => {
    const { email, browser } = await signup(srv);
    const tokens: TokenResponse = await loginTokens(srv, email);
    const compromised = kidOf(tokens.access_token);
    const set = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    await jwtVerify(tokens.access_token, set, { algorithms: ['EdDSA'] });

    const r = await cli(['retire', compromised, ...dataDir()]);
    assert.equal(r.code, 0, r.out);
    await eventually(async () => !(await kids(srv)).includes(compromised), 'JWKS stops listing the retired key');

    // a verifier that refreshes JWKS (a new one here; jose's cache refetches on an unknown kid or after cacheMaxAge)
    const fresh = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    await assert.rejects(jwtVerify(tokens.access_token, fresh, { algorithms: ['EdDSA'] }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    assert.equal((await introspect(tokens.access_token)).active, false);

    // the client just refreshes: same session, a token from another key
    const res = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
    assert.equal(res.status, 200);
    const next = await json<TokenResponse>(res);
    assert.notEqual(kidOf(next.access_token), compromised);
    const { payload } = await jwtVerify(next.access_token, fresh, { algorithms: ['EdDSA'] });
    assert.equal(payload.sid, JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()).sid);
    const list = await json<{ sessions: { handle: string }[] }>(await browser.get('/v1/sessions'));
    assert.ok(list.sessions.some((s) => s.handle === payload.sid), 'the session is still listed');

    assert.ok(retired.some((e) => e.kid === compromised && e.reason === 'retired'), 'the server reported the retirement');
    assert.equal(await srv.lk.store.getPrivateKey(compromised), undefined, 'private key deleted');
    const audit = await srv.lk.context.audit.list({ type: 'key_retired' });
    assert.ok(audit.some((e) => e.detail.kid === compromised));
  });

  it('retire of an unknown kid fails with exit 1; no subcommand is a usage error', async () => {
    const r = await cli(['retire', 'nosuchkid', ...dataDir()]);
    assert.equal(r.code, 1);
    assert.match(r.out, /no key nosuchkid/);
    // kids are base64url and may begin with '-': read as the kid, not as an option
    for (const args of [['retire', '-Gkpq_Nx', ...dataDir()], ['retire', ...dataDir(), '--', '-Gkpq_Nx']]) {
      const d = await cli(args);
      assert.equal(d.code, 1, d.out);
      assert.match(d.out, /no key -Gkpq_Nx/);
    }
    assert.equal((await cli([...dataDir()])).code, 2);
  });
});
