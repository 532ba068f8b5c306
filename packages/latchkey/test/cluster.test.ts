/**
 * Identical nodes with separate, empty data dirs on one PostgreSQL database form one cluster
 * (issue 13 items 5 and 6): started at once, they share one set of secrets and one signing key
 * from the store, so a session cookie, a form token, a known-device cookie and a refresh token of
 * one node work on the others, JWKS is byte-identical from every node, a key created by one signs
 * on the others once they reload, the revocation feed of any node verifies with any node's JWKS,
 * and when several tick past a rotation's due time, exactly one adds the next key.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import pg from 'pg';
import { createLatchkey, type Latchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { DEVICE_COOKIE } from '../src/http/signin.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { ADMIN_KEY, Client, FAST_ARGON2, json, TEST_KEK } from './helpers.js';
import { FEED_CLIENTS, FeedReader, verifyControl, verifySet } from './feed-helpers.js';
import { createDatabase } from './postgres.js';
import { MOBILE_UA, newEmail, PASSWORD, type TokenResponse } from './token-helpers.js';

/** One issuer for the cluster, as behind its load balancer; the nodes listen on ports of their own. */
const ISSUER = 'http://localhost:8080';
const COOKIE = '__Host-latchkey';
const INTERVAL = 3600;
const PRE = 600;
const csrfIn = (body: string) => /name="_csrf" value="([^"]+)"/.exec(body)?.[1];

interface Node {
  lk: Latchkey;
  url: string;
  dataDir: string;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function nodeConfig(url: string, dataDir: string, encryptionKey: string | undefined) {
  return parseConfig({
    dataDir,
    issuer: ISSUER,
    logLevel: 'silent',
    adminKey: ADMIN_KEY,
    store: { kind: 'postgres', url, poolSize: 4 },
    keys: { rotationIntervalSeconds: INTERVAL, prePublishSeconds: PRE, ...(encryptionKey ? { encryptionKey } : {}) },
    passwords: { argon2: FAST_ARGON2 },
    trustProxy: 1,
    rateLimit: { signupPerIp: 100_000, accountFreeFailures: 1 },
    clients: FEED_CLIENTS,
  });
}

/** A node on `url` with an empty data dir of its own, listening on a free loopback port. */
async function startNode(url: string, now: () => number, encryptionKey: string | undefined = TEST_KEK): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-node-'));
  dirs.push(dataDir);
  const lk = await createLatchkey(nodeConfig(url, dataDir, encryptionKey), { logger: false, now });
  await lk.http.listen({ port: 0, host: '127.0.0.1' });
  return { lk, url: `http://127.0.0.1:${(lk.http.server.address() as { port: number }).port}`, dataDir };
}

const jwksBody = async (n: Node) => {
  const res = await fetch(`${n.url}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  return { body: await res.text(), etag: res.headers.get('etag') };
};

async function tokenLogin(n: Node, email: string): Promise<TokenResponse> {
  const res = await fetch(`${n.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': MOBILE_UA },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(res.status, 200);
  return json<TokenResponse>(res);
}

const refreshOn = (n: Node, refreshToken: string) =>
  fetch(`${n.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'latchkey' }),
  });

describe('three nodes with separate, empty data dirs on one PostgreSQL database', () => {
  let url: string;
  let clock = Date.now();
  const now = () => clock;
  let nodes: Node[] = [];
  let n1: Node;
  let n2: Node;
  let n3: Node;

  before(async () => {
    url = await createDatabase();
    // the schema first (else they take turns migrating under its lock): then at once, on an empty
    // database, each one finds no secrets and no key
    const schema = new PostgresStore({ url, poolSize: 1 });
    await schema.migrate();
    await schema.close();
    nodes = await Promise.all([0, 1, 2].map(() => startNode(url, now)));
    [n1, n2, n3] = nodes as [Node, Node, Node];
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.lk.close()));
  });

  it('started at once: one set of secrets and one signing key in the store, the same signer everywhere, nothing in their data dirs', async () => {
    const atRest = await n1.lk.store.readAtRest();
    assert.deepEqual(Object.keys(atRest.secrets).sort(), ['csrf.key', 'device.key', 'refresh.key']);
    const keys = await n1.lk.store.listSigningKeys();
    assert.equal(keys.length, 1, `one first key, not one per node: ${keys.map((k) => k.kid).join(', ')}`);
    for (const n of nodes) {
      assert.equal(n.lk.context.keys.signer().kid, keys[0]!.kid);
      assert.deepEqual(readdirSync(n.dataDir), [], n.dataDir);
    }
  });

  it('JWKS is byte-identical from every node', async () => {
    const [a, b, c] = await Promise.all(nodes.map(jwksBody));
    assert.equal(b!.body, a!.body);
    assert.equal(c!.body, a!.body);
    assert.equal(b!.etag, a!.etag);
  });

  it('a session cookie from node 1 works on node 2, and node 2 accepts node 1’s form token, not another (csrf.key)', async () => {
    const browser = new Client(n1.url);
    assert.equal((await browser.signup(newEmail('csrf'), PASSWORD)).status, 201);
    const onN2 = new Client(n2.url);
    onN2.cookies.set(COOKIE, browser.cookies.get(COOKIE)!);
    assert.equal((await onN2.get('/v1/session')).status, 200);
    const page = await browser.get('/account');
    assert.equal(page.status, 200);
    const token = csrfIn(await page.text())!;
    const post = (csrf: string) =>
      onN2.request('POST', '/account/sessions/signout-others', new URLSearchParams({ _csrf: csrf }).toString(), {
        'content-type': 'application/x-www-form-urlencoded',
      });
    const forged = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    assert.equal((await post(forged)).status, 403);
    const res = await post(token);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/account?notice=others');
  });

  it('a known-device cookie from node 1 exempts its browser from the account’s backoff on node 2 (device.key)', async () => {
    const email = newEmail('device');
    const owner = new Client(n1.url);
    assert.equal((await owner.signup(email, PASSWORD)).status, 201);
    assert.ok(owner.cookies.has(DEVICE_COOKIE));
    // failures from elsewhere close the account's gate, on every node (the counters are in the database)
    for (const ip of ['198.18.9.1', '198.18.9.2']) {
      await new Client(n1.url).post('/v1/login', { email, password: 'wrong password guess' }, { 'x-forwarded-for': ip });
    }
    const stranger = await new Client(n2.url).post('/v1/login', { email, password: PASSWORD }, { 'x-forwarded-for': '198.18.9.3' });
    assert.equal(stranger.status, 429, 'a browser node 2 does not know waits');
    const known = new Client(n2.url);
    known.cookies.set(DEVICE_COOKIE, owner.cookies.get(DEVICE_COOKIE)!);
    const res = await known.post('/v1/login', { email, password: PASSWORD }, { 'x-forwarded-for': '198.18.9.4' });
    assert.equal(res.status, 200, 'node 2 verifies node 1’s device cookie');
  });

  it('a refresh token issued by node 1 rotates on node 2; replayed on node 3 within the grace window it gets the same successor (refresh.key)', async () => {
    const email = newEmail('refresh');
    assert.equal((await new Client(n1.url).signup(email, PASSWORD)).status, 201);
    const issued = await tokenLogin(n1, email);
    const first = await refreshOn(n2, issued.refresh_token!);
    assert.equal(first.status, 200);
    const rotated = await json<TokenResponse>(first);
    const again = await refreshOn(n3, issued.refresh_token!);
    assert.equal(again.status, 200);
    assert.equal((await json<TokenResponse>(again)).refresh_token, rotated.refresh_token);
  });

  it('a key created on node 2 signs on node 1 after its reload (its private half from the store); its tokens verify with every node’s JWKS', async () => {
    const email = newEmail('rotate');
    assert.equal((await new Client(n1.url).signup(email, PASSWORD)).status, 201);
    const before = n1.lk.context.keys.signer().kid;
    // a later second than the first key's start (the nodes' clock is this test's)
    clock += 10_000;
    const { key, created } = await n2.lk.context.keys.rotate({ immediately: true });
    assert.ok(created);
    assert.notEqual(key.kid, before);
    await Promise.all([n1, n3].map((n) => n.lk.context.keys.reload()));
    const fromN1 = await tokenLogin(n1, email);
    assert.equal(decodeProtectedHeader(fromN1.access_token).kid, key.kid, 'node 1 signs with node 2’s key');
    const fromN2 = await tokenLogin(n2, email);
    const bodies = await Promise.all(nodes.map(jwksBody));
    for (const b of bodies) assert.equal(b.body, bodies[0]!.body, 'the same JWKS from every node after the reload');
    assert.ok((JSON.parse(bodies[0]!.body) as JSONWebKeySet).keys.some((k) => k.kid === key.kid));
    for (const n of nodes) {
      const set = createLocalJWKSet(JSON.parse((await jwksBody(n)).body) as JSONWebKeySet);
      for (const t of [fromN1, fromN2]) await jwtVerify(t.access_token, set, { issuer: ISSUER, currentDate: new Date(clock) });
    }
  });

  it('node 2’s revocation feed signs with the shared keys: its messages and SETs verify with node 1’s JWKS', async () => {
    const email = newEmail('feed');
    const browser = new Client(n1.url);
    assert.equal((await browser.signup(email, PASSWORD)).status, 201);
    const laptop = new Client(n1.url, 'Mozilla/5.0 (Macintosh) Safari/605.1.15');
    assert.equal((await laptop.login(email, PASSWORD)).status, 200);
    const feed = await FeedReader.open(n2.url, {}, '?nonce=cluster-test-nonce_1');
    try {
      const ready = await feed.next((m) => m.event === 'ready');
      assert.equal((await verifyControl(n1.url, ISSUER, ready.data)).feed, 'ready');
      const from = feed.messages.length;
      const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await browser.get('/v1/sessions'));
      const handle = list.sessions.find((s) => !s.current)!.handle;
      assert.equal((await browser.delete(`/v1/sessions/${handle}`)).status, 204);
      const set = await feed.next((m) => m.event === 'set', from);
      const payload = await verifySet(n1.url, ISSUER, set.data);
      assert.equal((payload.sub_id as { session?: { id: string } }).session?.id, handle);
    } finally {
      feed.close();
    }
  });

  it('all three ticking past the rotation’s due time at once: exactly one adds the next key, and every node serves it', async () => {
    const keysBefore = await n1.lk.store.listSigningKeys();
    const active = n1.lk.context.keys.list().find((k) => k.state === 'active')!;
    // the first second of the pre-publication window
    clock = (active.activatesAt + INTERVAL - PRE) * 1000;
    // the nodes' own timers tick too: every round from any of them races these
    await Promise.all(nodes.map((n) => n.lk.context.keys.tick()));
    await Promise.all(nodes.map((n) => n.lk.context.keys.tick()));
    const keysAfter = await n1.lk.store.listSigningKeys();
    const added = keysAfter.filter((k) => !keysBefore.some((b) => b.kid === k.kid));
    assert.equal(added.length, 1, `added ${added.map((k) => k.kid).join(', ')}`);
    assert.equal(added[0]!.activatesAt, active.activatesAt + INTERVAL);
    const scheduled = (await n1.lk.context.audit.list({ type: 'key_rotated' })).filter((e) => e.detail.why === 'scheduled');
    assert.equal(scheduled.length, 1, 'one node rotated');
    const bodies = await Promise.all(nodes.map(jwksBody));
    for (const b of bodies) assert.equal(b.body, bodies[0]!.body);
    assert.ok((JSON.parse(bodies[0]!.body) as JSONWebKeySet).keys.some((k) => k.kid === added[0]!.kid));
    for (const n of nodes) assert.equal(n.lk.context.keys.list().find((k) => k.kid === added[0]!.kid)?.state, 'pending');
  });

  it('a node with another key-encryption key refuses to join, naming the secret that does not open', async () => {
    const other = Buffer.alloc(32, 9).toString('base64');
    await assert.rejects(startNode(url, now, other), {
      code: 'ERR_STORED_SECRET',
      message: /^the secret csrf\.key in the store does not decrypt: wrong LATCHKEY_KEY_ENCRYPTION_KEY\?/,
    });
  });
});

describe('PostgreSQL without a key-encryption key', () => {
  it('refuses to start, naming keys.encryptionKey, with nothing written to the database or the data dir', async () => {
    const url = await createDatabase();
    const dataDir = join(mkdtempSync(join(tmpdir(), 'latchkey-node-')), 'data');
    dirs.push(dataDir);
    await assert.rejects(createLatchkey(nodeConfig(url, dataDir, undefined), { logger: false }), {
      code: 'ERR_CONFIG',
      message: /^invalid config: keys\.encryptionKey: required with the PostgreSQL store .*openssl rand -base64 32/,
    });
    assert.equal(existsSync(dataDir), false);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'");
      assert.equal(r.rows[0]!.n, 0);
    } finally {
      await c.end();
    }
  });
});
