/**
 * Revocation end to end: latchkey's feed and @latchkey/verify's subscriber.
 * After each kind of revocation, a subscribed verifier refuses the affected
 * tokens within a second and keeps accepting the others; a disconnected one
 * catches up; a fresh one starts from the snapshot; one cut off past its bound
 * fails closed (or introspects); bad credentials are refused.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, connect, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRevocationFeed, createVerifier, VerifyError, type RevocationFeed, type Verifier } from '@latchkey/verify';
import { decodeJwt } from 'jose';
import { ADMIN_KEY, Client, freePort, json, startServer, type TestServer } from './helpers.js';
import { basic, FEED_CLIENT, FEED_CLIENTS } from './feed-helpers.js';
import { form, loginTokens, newEmail, signup, PASSWORD } from './token-helpers.js';

let srv: TestServer;
let upstream: Server;
const feeds: RevocationFeed[] = [];

before(async () => {
  // an upstream behind the gateway that answers with the bearer token it was sent
  upstream = createHttpServer((req, res) => res.end((req.headers.authorization ?? '').slice(7)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = await freePort();
  srv = await startServer({
    port,
    issuer: `http://localhost:${port}`,
    clients: FEED_CLIENTS,
    refresh: { graceSeconds: 0 },
    revocation: { heartbeatSeconds: 1 },
    gateway: {
      routes: [{ prefix: '/api/orders', upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, audience: 'latchkey' }],
    },
  });
});
after(async () => {
  for (const f of feeds) f.close();
  await srv.close();
  await new Promise((r) => upstream.close(r));
});

function feedFor(extra: Partial<Parameters<typeof createRevocationFeed>[0]> = {}): RevocationFeed {
  const f = createRevocationFeed({ issuer: srv.config.issuer, clientId: FEED_CLIENT.id, clientSecret: FEED_CLIENT.secret, maxLifetimeSeconds: 900, ...extra });
  feeds.push(f);
  return f;
}
const verifierFor = (feed: RevocationFeed, fetchFn: typeof fetch = fetch): Verifier =>
  createVerifier({ issuer: srv.config.issuer, audience: 'latchkey', jwksUri: `${srv.url}/.well-known/jwks.json`, revocation: feed, fetch: fetchFn });

const admin = (method: string, path: string, body?: unknown) =>
  fetch(`${srv.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function code(v: Verifier, token: string): Promise<string> {
  try {
    await v.verify(token);
    return 'ok';
  } catch (err) {
    if (err instanceof VerifyError) return err.code;
    throw err;
  }
}

/**
 * Wait until `v` refuses `token` as revoked (it must never refuse it for another reason meanwhile).
 * The deadline is generous: how fast the feed propagates is measured by bench/revocation.ts, not
 * asserted here, where it would depend on the machine's load.
 */
async function refusedWithin(v: Verifier, token: string, ms = 10_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    const c = await code(v, token);
    if (c === 'revoked') return Date.now() - start;
    assert.equal(c, 'ok', 'refused for another reason');
    if (Date.now() - start > ms) assert.fail(`still accepted after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a subscribed verifier, after each kind of revocation', () => {
  let feed: RevocationFeed;
  let v: Verifier;
  let bystander: string;
  let jwksFetches = 0;
  const keyFetches = () => jwksFetches;
  before(async () => {
    feed = feedFor();
    v = verifierFor(feed, (input, init) => {
      jwksFetches++;
      return fetch(input, init);
    });
    await feed.ready();
    const { email } = await signup(srv);
    bystander = (await loginTokens(srv, email)).access_token;
  });
  const bystanderStillOk = async () => assert.equal(await code(v, bystander), 'ok');

  it('a session revoked (RFC 7009 on its refresh token): its tokens refused, others accepted', async () => {
    const { email } = await signup(srv);
    const a = await loginTokens(srv, email);
    const b = await loginTokens(srv, email);
    assert.equal(await code(v, a.access_token), 'ok');
    assert.equal((await form(srv, '/oauth/revoke', { token: a.refresh_token!, client_id: 'latchkey' })).status, 200);
    await refusedWithin(v, a.access_token);
    assert.equal(await code(v, b.access_token), 'ok', 'the same user’s other session is untouched');
    await bystanderStillOk();
  });

  it('a refresh family killed by reuse detection', async () => {
    const { email } = await signup(srv);
    const t = await loginTokens(srv, email);
    const grant = { grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: 'latchkey' };
    const rotated = await json<{ access_token: string }>(await form(srv, '/oauth/token', grant));
    assert.equal((await form(srv, '/oauth/token', grant)).status, 400);
    await refusedWithin(v, t.access_token);
    await refusedWithin(v, rotated.access_token);
    await bystanderStillOk();
  });

  it('every session of a user (sign out everywhere, by an admin)', async () => {
    const { email, userId } = await signup(srv);
    const a = await loginTokens(srv, email);
    const b = await loginTokens(srv, email);
    assert.equal((await admin('DELETE', `/v1/admin/users/${userId}/sessions`)).status, 200);
    await refusedWithin(v, a.access_token);
    await refusedWithin(v, b.access_token);
    await bystanderStillOk();
  });

  it('sign out everywhere by the user: the other sessions’ tokens refused; the session kept gets a fresh token from the gateway that passes', async () => {
    const email = newEmail();
    const browser = new Client(srv.url);
    assert.equal((await browser.signup(email)).status, 201);
    const phone = await loginTokens(srv, email);
    const tablet = await loginTokens(srv, email);
    const kept = await (await browser.get('/api/orders/x')).text();
    assert.equal(await code(v, kept), 'ok');
    assert.equal((await json<{ revoked: number }>(await browser.post('/v1/sessions/revoke-others'))).revoked, 2);
    await refusedWithin(v, phone.access_token);
    await refusedWithin(v, tablet.access_token);
    // the kept session's next request is minted after the user's cutoff: accepted at once
    const next = await (await browser.get('/api/orders/x')).text();
    assert.notEqual(next, kept);
    assert.equal(await code(v, next), 'ok');
    assert.equal((await browser.get('/v1/session')).status, 200, 'still signed in');
    await bystanderStillOk();
  });

  it('a password change: the other sessions’ tokens refused, the new session’s accepted', async () => {
    const email = newEmail();
    const { browser } = await signup(srv, email);
    const phone = await loginTokens(srv, email);
    const res = await browser.post('/v1/password', { currentPassword: PASSWORD, newPassword: 'a brand new secret' });
    assert.equal(res.status, 200);
    await refusedWithin(v, phone.access_token);
    const fresh = await json<{ access_token: string }>(
      await fetch(`${srv.url}/v1/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: 'a brand new secret' }),
      }),
    );
    assert.equal(await code(v, fresh.access_token), 'ok');
  });

  it('a user disabled: every token of theirs, whatever the session', async () => {
    const { email, userId } = await signup(srv);
    const a = await loginTokens(srv, email);
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/disable`)).status, 200);
    await refusedWithin(v, a.access_token);
    await bystanderStillOk();
    // enabled again, a new login's token passes: the cutoff is behind it
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/enable`)).status, 200);
    assert.equal(await code(v, (await loginTokens(srv, email)).access_token), 'ok');
  });

  it('roles changed: tokens with the old claims refused; the gateway and the refresh grant mint passing ones at once', async () => {
    const email = newEmail();
    const browser = new Client(srv.url);
    assert.equal((await browser.signup(email)).status, 201);
    const userId = (await json<{ user: { id: string } }>(await browser.get('/v1/session'))).user.id;
    const t = await loginTokens(srv, email);
    const viaGateway = await (await browser.get('/api/orders/x')).text();
    assert.equal(await code(v, viaGateway), 'ok');
    assert.equal((await admin('PUT', `/v1/admin/users/${userId}/roles`, { roles: ['support'] })).status, 200);
    await refusedWithin(v, t.access_token);
    await refusedWithin(v, viaGateway);
    // the very next gateway request carries a fresh token with the new roles, and it passes
    const next = await (await browser.get('/api/orders/x')).text();
    assert.notEqual(next, viaGateway);
    assert.deepEqual(decodeJwt(next).roles, ['support']);
    assert.equal(await code(v, next), 'ok');
    const refreshed = await json<{ access_token: string }>(
      await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: 'latchkey' }),
    );
    assert.equal(await code(v, refreshed.access_token), 'ok');
    await bystanderStillOk();
  });

  it('a signing key retired: every token it signed refused, tokens of the next key accepted', async () => {
    const { email } = await signup(srv);
    const before = await loginTokens(srv, email);
    const kid = srv.lk.context.keys.signer().kid;
    await srv.lk.context.keys.retire(kid);
    await refusedWithin(v, bystander);
    await refusedWithin(v, before.access_token);
    const after = await loginTokens(srv, email);
    assert.notEqual(JSON.parse(Buffer.from(after.access_token.split('.')[0]!, 'base64url').toString()).kid, kid);
    // the replacement key was made just now, not pre-published, and this verifier's JWKS refetch is within its
    // 30 s cooldown: the key event lets it fetch the new key at once (once), as a fresh verifier would
    const fetchesBefore = keyFetches();
    assert.equal(await code(v, after.access_token), 'ok');
    assert.equal(keyFetches() - fetchesBefore, 1);
    assert.equal(await code(verifierFor(feed), after.access_token), 'ok');
  });
});

/** A TCP relay to the server that a test can cut and restore, as a network partition would. */
class Relay {
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}
  async up(): Promise<void> {
    this.server = createServer((client) => {
      const upstreamSocket = connect(this.target, '127.0.0.1');
      for (const s of [client, upstreamSocket]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstreamSocket).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }
  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

describe('when the feed is out of reach', () => {
  it('a verifier disconnected during a revocation catches up when it reconnects', async () => {
    const relay = new Relay(await freePort(), srv.config.port);
    await relay.up();
    const feed = feedFor({ feedUri: `http://127.0.0.1:${relay.port}/v1/revocations/events`, maxStalenessMs: 60_000 });
    const v = verifierFor(feed);
    await feed.ready();
    const { email } = await signup(srv);
    const t = await loginTokens(srv, email);
    assert.equal(await code(v, t.access_token), 'ok');
    await relay.down();
    assert.equal((await form(srv, '/oauth/revoke', { token: t.refresh_token!, client_id: 'latchkey' })).status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await code(v, t.access_token), 'ok', 'cut off, it has not heard yet');
    await relay.up();
    await refusedWithin(v, t.access_token, 8000);
    await relay.down();
  });

  it('a fresh verifier gets the snapshot: tokens revoked before it started are refused from the start', async () => {
    const { email } = await signup(srv);
    const t = await loginTokens(srv, email);
    assert.equal((await form(srv, '/oauth/revoke', { token: t.refresh_token!, client_id: 'latchkey' })).status, 200);
    const feed = feedFor();
    const v = verifierFor(feed);
    await feed.ready();
    assert.equal(await code(v, t.access_token), 'revoked');
    assert.ok(feed.size > 0);
  });

  it('cut off past its bound, it fails closed; back in reach, it recovers', async () => {
    const relay = new Relay(await freePort(), srv.config.port);
    await relay.up();
    const feed = feedFor({ feedUri: `http://127.0.0.1:${relay.port}/v1/revocations/events`, maxStalenessMs: 1500 });
    const v = verifierFor(feed);
    await feed.ready();
    const { email } = await signup(srv);
    const t = await loginTokens(srv, email);
    assert.equal(await code(v, t.access_token), 'ok');
    await relay.down();
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(feed.healthy, false);
    assert.equal(await code(v, t.access_token), 'revocation_unavailable');
    await relay.up();
    const deadline = Date.now() + 8000;
    while (!feed.healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await code(v, t.access_token), 'ok');
    await relay.down();
  });

  it('with fallback "introspect", cut off, it asks the introspection endpoint per token', async () => {
    const relay = new Relay(await freePort(), srv.config.port);
    await relay.up();
    const feed = feedFor({
      feedUri: `http://127.0.0.1:${relay.port}/v1/revocations/events`,
      maxStalenessMs: 1000,
      fallback: 'introspect',
      introspectionEndpoint: `${srv.url}/oauth/introspect`,
    });
    const v = verifierFor(feed);
    await feed.ready();
    const { email } = await signup(srv);
    const live = await loginTokens(srv, email);
    const dead = await loginTokens(srv, email);
    await relay.down();
    assert.equal((await form(srv, '/oauth/revoke', { token: dead.refresh_token!, client_id: 'latchkey' })).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(feed.healthy, false);
    assert.equal(await code(v, live.access_token), 'ok');
    assert.equal(await code(v, dead.access_token), 'revoked');
  });

  it('introspection agrees with the feed: a token from before a role change or a disable is inactive, a newer one active', async () => {
    const introspect = async (token: string) =>
      (await json<{ active: boolean }>(await form(srv, '/oauth/introspect', { token }, { authorization: basic(FEED_CLIENT) }))).active;
    const { email, userId } = await signup(srv);
    const before = await loginTokens(srv, email);
    assert.equal(await introspect(before.access_token), true);
    assert.equal((await admin('PUT', `/v1/admin/users/${userId}/roles`, { roles: ['support'] })).status, 200);
    assert.equal(await introspect(before.access_token), false, 'minted before the role change');
    // the same session's next token (refresh grant) is minted after the cutoff and passes
    const refreshed = await json<{ access_token: string; refresh_token: string }>(
      await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: before.refresh_token!, client_id: 'latchkey' }),
    );
    assert.equal(await introspect(refreshed.access_token), true);
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/disable`)).status, 200);
    assert.equal(await introspect(refreshed.access_token), false, 'user disabled');
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/enable`)).status, 200);
    assert.equal(await introspect(refreshed.access_token), false, 'enabled again, the old token stays refused (its session ended too)');

    // and so a verifier cut off from the feed, asking introspection, refuses what the feed revoked
    const relay = new Relay(await freePort(), srv.config.port);
    await relay.up();
    const feed = feedFor({
      feedUri: `http://127.0.0.1:${relay.port}/v1/revocations/events`,
      maxStalenessMs: 1000,
      fallback: 'introspect',
      introspectionEndpoint: `${srv.url}/oauth/introspect`,
    });
    const v = verifierFor(feed);
    await feed.ready();
    const fresh = await loginTokens(srv, email);
    assert.equal(await code(v, fresh.access_token), 'ok');
    await relay.down();
    assert.equal((await admin('PUT', `/v1/admin/users/${userId}/roles`, { roles: ['x'] })).status, 200);
    while (feed.healthy) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await code(v, fresh.access_token), 'revoked', 'introspected: minted before the role change');
  });

  it('the feed refuses a subscriber without valid credentials', async () => {
    const feed = feedFor({ clientSecret: 'not-the-secret-not-the-secret-not-the' });
    await assert.rejects(feed.ready(3000), /HTTP 401/);
    assert.equal(feed.healthy, false);
    const v = verifierFor(feed);
    const { email } = await signup(srv);
    assert.equal(await code(v, (await loginTokens(srv, email)).access_token), 'revocation_unavailable');
  });
});

/**
 * The race a user-wide cutoff alone leaves open: a gateway request (or a refresh grant, or another
 * node) read a session just before "sign out everywhere", a password change or a disable ended it, and
 * mints its token in a later second, so the token's iat is at or after the user's cutoff. The test
 * plays that interleaving with the gateway's own code: the session is authenticated first, the change
 * commits, the server's clock (injected) moves a second on, then GatewayTokens.tokenFor mints from the
 * session read before. No timing is raced: the clock is the test's.
 */
describe('a token minted for a session after a user-wide change ended it', () => {
  let s: TestServer;
  let upstream2: Server;
  let offset = 0;
  let feed: RevocationFeed;
  let v: Verifier;
  before(async () => {
    upstream2 = createHttpServer((req, res) => res.end((req.headers.authorization ?? '').slice(7)));
    await new Promise<void>((r) => upstream2.listen(0, '127.0.0.1', r));
    s = await startServer(
      {
        clients: FEED_CLIENTS,
        revocation: { heartbeatSeconds: 1 },
        gateway: {
          routes: [{ prefix: '/api/orders', upstream: `http://127.0.0.1:${(upstream2.address() as { port: number }).port}`, audience: 'latchkey' }],
        },
      },
      { now: () => Date.now() + offset },
    );
    feed = createRevocationFeed({ issuer: s.config.issuer, clientId: FEED_CLIENT.id, clientSecret: FEED_CLIENT.secret, maxLifetimeSeconds: 900 });
    v = createVerifier({ issuer: s.config.issuer, audience: 'latchkey', jwksUri: `${s.url}/.well-known/jwks.json`, revocation: feed });
    await feed.ready();
  });
  after(async () => {
    feed.close();
    await s.close();
    await new Promise((r) => upstream2.close(r));
  });

  const route = () => s.config.gateway.routes[0]!;
  const cookie = (c: Client) => c.cookies.get(s.config.sessions.cookieName)!;
  /** Two browsers of one new user, each with a gateway token that passes. */
  async function twoBrowsers() {
    const email = newEmail();
    const other = new Client(s.url);
    assert.equal((await other.signup(email)).status, 201);
    const mine = new Client(s.url);
    assert.equal((await mine.login(email)).status, 200);
    const userId = (await json<{ user: { id: string } }>(await mine.get('/v1/session'))).user.id;
    const otherToken = await (await other.get('/api/orders/x')).text();
    assert.equal(await code(v, otherToken), 'ok');
    return { email, userId, other, mine, otherToken };
  }
  /** What a request in flight holds: the session as read before the change. */
  async function readBefore(c: Client) {
    const auth = await s.lk.context.sessions.authenticate(cookie(c), '127.0.0.1');
    assert.ok(auth, 'the session is live when read');
    return auth;
  }
  /** The server's clock moves a second on, then the in-flight request mints from what it read. */
  async function mintLater(auth: NonNullable<Awaited<ReturnType<typeof readBefore>>>, userId: string) {
    offset += 1000;
    const token = await s.lk.gateway.tokenFor(auth.user, auth.handle, route());
    const cutoff = (await s.lk.store.getUserById(userId))!.tokensNotBefore!;
    assert.ok(decodeJwt(token).iat! >= cutoff, 'minted at or after the user cutoff: the cutoff alone lets it through');
    return token;
  }

  it('sign out everywhere: refused by its sid; the session kept still gets tokens that pass', async () => {
    const { userId, other, mine, otherToken } = await twoBrowsers();
    const inFlight = await readBefore(other);
    assert.equal((await json<{ revoked: number }>(await mine.post('/v1/sessions/revoke-others'))).revoked, 1);
    await refusedWithin(v, otherToken);
    const raced = await mintLater(inFlight, userId);
    assert.equal(await code(v, raced), 'revoked');
    const kept = await (await mine.get('/api/orders/x')).text();
    assert.equal(decodeJwt(kept).sid, (await readBefore(mine)).handle);
    assert.equal(await code(v, kept), 'ok');
  });

  it('a password change: refused by its sid; the renewed session gets tokens that pass', async () => {
    const { userId, other, mine, otherToken } = await twoBrowsers();
    const inFlight = await readBefore(other);
    assert.equal((await mine.post('/v1/password', { currentPassword: PASSWORD, newPassword: 'a brand new secret' })).status, 200);
    await refusedWithin(v, otherToken);
    const raced = await mintLater(inFlight, userId);
    assert.equal(await code(v, raced), 'revoked');
    const renewed = await (await mine.get('/api/orders/x')).text();
    assert.equal(await code(v, renewed), 'ok');
  });

  it('a user disabled: refused by its sid; enabled again, a new sign-in’s tokens pass', async () => {
    const { email, userId, other, otherToken } = await twoBrowsers();
    const inFlight = await readBefore(other);
    const res = await fetch(`${s.url}/v1/admin/users/${userId}/disable`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 200);
    await refusedWithin(v, otherToken);
    const raced = await mintLater(inFlight, userId);
    assert.equal(await code(v, raced), 'revoked');
    const enable = await fetch(`${s.url}/v1/admin/users/${userId}/enable`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(enable.status, 200);
    const again = new Client(s.url);
    assert.equal((await again.login(email)).status, 200);
    assert.equal(await code(v, await (await again.get('/api/orders/x')).text()), 'ok');
  });
});
