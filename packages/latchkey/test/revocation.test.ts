/**
 * The revocation feed, server side, read as any SSE client would: who may
 * subscribe, the SET each kind of revocation publishes, snapshot, resumption,
 * reset, and events written by another process.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { RevocationFeed } from '../src/revocation/feed.js';
import { setClaims, signSet } from '../src/revocation/sets.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { SIDS_PER_EVENT } from '../src/revocation/user-events.js';
import { revocationRetention } from '../src/tokens/services.js';
import { ADMIN_KEY, Client, json, startServer, type TestServer } from './helpers.js';
import { basic, CAEP, FEED_CLIENTS, FeedReader, INTROSPECT_ONLY, verifyControl, verifySet, type SseMessage } from './feed-helpers.js';
import { form, loginTokens, newEmail, signup } from './token-helpers.js';

let srv: TestServer;
const readers: FeedReader[] = [];

before(async () => {
  srv = await startServer({ clients: FEED_CLIENTS, refresh: { graceSeconds: 0 }, revocation: { heartbeatSeconds: 1 } });
});
after(async () => {
  for (const r of readers) r.close();
  await srv.close();
});

async function open(headers: Record<string, string> = {}, query = ''): Promise<FeedReader> {
  const r = await FeedReader.open(srv.url, headers, query);
  readers.push(r);
  return r;
}

const admin = (method: string, path: string, body?: unknown) =>
  fetch(`${srv.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

/** A live reader past its snapshot: returns it and the index new messages start at. */
async function liveReader(): Promise<{ r: FeedReader; from: number }> {
  const r = await open();
  await r.next((m) => m.event === 'ready');
  return { r, from: r.messages.length };
}

/** A SET about a user as a whole (no session). */
function isUserEvent(p: ReturnType<typeof decodeJwt>, userId: string): boolean {
  const id = p.sub_id as { format: string; sub?: string };
  return id.format === 'iss_sub' && id.sub === userId;
}

async function nextSet(r: FeedReader, from: number, pred: (p: ReturnType<typeof decodeJwt>) => boolean): Promise<SseMessage> {
  return r.next((m) => m.event === 'set' && pred(decodeJwt(m.data)), from);
}

describe('who may follow the feed', () => {
  it('refuses a caller without credentials: 401 problem+json with a Basic challenge', async () => {
    const res = await fetch(`${srv.url}/v1/revocations/events`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="latchkey"/);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
  });

  it('refuses a wrong secret and an unknown client with 401', async () => {
    for (const c of [{ id: 'feed-reader', secret: 'wrong-secret-wrong-secret-wrong-secret' }, { id: 'nobody', secret: 'x' }]) {
      const res = await fetch(`${srv.url}/v1/revocations/events`, { headers: { authorization: basic(c) } });
      assert.equal(res.status, 401, c.id);
    }
    const garbage = await fetch(`${srv.url}/v1/revocations/events`, { headers: { authorization: 'Basic !!!' } });
    assert.equal(garbage.status, 401);
  });

  it('refuses a registered client not allowed to follow it with 403', async () => {
    const res = await fetch(`${srv.url}/v1/revocations/events`, { headers: { authorization: basic(INTROSPECT_ONLY) } });
    assert.equal(res.status, 403);
  });

  it('refuses a position that is not one with 400, and takes a good one', async () => {
    for (const bad of ['-1', '1e3', 'abc', '9'.repeat(20)]) {
      const r = await open({ 'last-event-id': bad });
      assert.equal(r.response.status, 400, bad);
    }
    const ok = await open({}, '?after=0');
    assert.equal(ok.response.status, 200);
    assert.match(ok.response.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(ok.response.headers.get('cache-control'), 'no-store');
  });

  it('is named in the RFC 8414 metadata', async () => {
    const meta = await json<{ revocation_feed_endpoint: string }>(await fetch(`${srv.url}/.well-known/oauth-authorization-server`));
    assert.equal(meta.revocation_feed_endpoint, `${srv.config.issuer}/v1/revocations/events`);
  });
});

describe('what each kind of revocation publishes', () => {
  it('logout: a signed CAEP session-revoked SET naming the session and its user', async () => {
    const { r, from } = await liveReader();
    const { browser, userId } = await signup(srv);
    const me = await json<{ session: { handle: string } }>(await browser.get('/v1/session'));
    assert.equal((await browser.post('/v1/logout')).status, 204);
    const m = await nextSet(r, from, (p) => (p.sub_id as { session?: { id: string } }).session?.id === me.session.handle);
    const set = await verifySet(srv.url, srv.config.issuer, m.data);
    assert.deepEqual(set.sub_id, {
      format: 'complex',
      user: { format: 'iss_sub', iss: srv.config.issuer, sub: userId },
      session: { format: 'opaque', id: me.session.handle },
    });
    const ev = set.events[`${CAEP}session-revoked`]!;
    assert.equal(typeof ev.event_timestamp, 'number');
    assert.equal(set.exp, undefined, 'a SET has no exp (RFC 8417)');
    assert.ok(Number(m.id) > 0, 'the message id is its feed position');
  });

  it('a SET never passes as an access token: its typ is secevent+jwt', async () => {
    const { r, from } = await liveReader();
    const { browser } = await signup(srv);
    await browser.post('/v1/logout');
    const m = await r.next((x) => x.event === 'set', from);
    const header = JSON.parse(Buffer.from(m.data.split('.')[0]!, 'base64url').toString()) as { typ: string };
    assert.equal(header.typ, 'secevent+jwt');
    await assert.rejects(srv.lk.context.tokens.verify(m.data));
  });

  it('disable: one session-revoked for the user with tokens_issued_before; later tokens are minted at or after it', async () => {
    const { r, from } = await liveReader();
    const { userId, email } = await signup(srv);
    await loginTokens(srv, email);
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/disable`)).status, 200);
    const m = await nextSet(r, from, (p) => (p.sub_id as { sub?: string }).sub === userId);
    const set = await verifySet(srv.url, srv.config.issuer, m.data);
    assert.deepEqual(set.sub_id, { format: 'iss_sub', iss: srv.config.issuer, sub: userId });
    const ev = set.events[`${CAEP}session-revoked`]!;
    const cutoff = ev.tokens_issued_before as number;
    assert.ok(cutoff > (ev.event_timestamp as number) - 1 && cutoff <= Math.floor(Date.now() / 1000) + 1);
    // the per-session events are not needed: the user-wide one covers them
    assert.equal(r.sets(from).filter((x) => (decodeJwt(x.data).sub_id as { user?: { sub: string } }).user?.sub === userId).length, 0);
    assert.equal((await admin('POST', `/v1/admin/users/${userId}/enable`)).status, 200);
    const again = await loginTokens(srv, email);
    assert.ok(decodeJwt(again.access_token).iat! >= cutoff, 'a token after the change is not caught by the cutoff');
  });

  it('roles changed: token-claims-change with the new roles; the next token carries them, minted at or after the cutoff', async () => {
    const { r, from } = await liveReader();
    const { userId, email } = await signup(srv);
    const t = await loginTokens(srv, email);
    assert.equal((await admin('PUT', `/v1/admin/users/${userId}/roles`, { roles: ['admin'] })).status, 200);
    const m = await nextSet(r, from, (p) => (p.sub_id as { sub?: string }).sub === userId);
    const set = await verifySet(srv.url, srv.config.issuer, m.data);
    const ev = set.events[`${CAEP}token-claims-change`]!;
    assert.deepEqual(ev.claims, { roles: ['admin'] });
    const cutoff = ev.tokens_issued_before as number;
    assert.ok(decodeJwt(t.access_token).iat! < cutoff, 'the old token is caught');
    const res = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: 'latchkey' });
    assert.equal(res.status, 200);
    const fresh = decodeJwt((await json<{ access_token: string }>(res)).access_token);
    assert.deepEqual(fresh.roles, ['admin']);
    assert.ok(fresh.iat! >= cutoff, 'the fresh token is not');
  });

  it('password change: credential-change and one session-revoked for the user with a cutoff, however many sessions; the new session’s tokens are minted after it', async () => {
    const { r, from } = await liveReader();
    const email = newEmail();
    const { browser: phone, userId } = await signup(srv, email);
    const laptop = new Client(srv.url);
    assert.equal((await laptop.login(email)).status, 200);
    for (let i = 0; i < 3; i++) await loginTokens(srv, email);
    const phoneSid = (await json<{ session: { handle: string } }>(await phone.get('/v1/session'))).session.handle;
    const before = await srv.lk.store.lastRevocationSeq();
    const res = await laptop.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'a brand new secret' });
    assert.equal(res.status, 200);
    await r.next((m) => m.event === 'set' && `${CAEP}credential-change` in (decodeJwt(m.data).events as object), from);
    const userEvent = await nextSet(r, from, (p) => isUserEvent(p, userId) && `${CAEP}session-revoked` in (p.events as object));
    const body = (await verifySet(srv.url, srv.config.issuer, userEvent.data)).events[`${CAEP}session-revoked`]!;
    const cutoff = body.tokens_issued_before as number;
    assert.equal((body.reason_admin as { en: string }).en, 'password changed');
    // every ended session named by sid, the laptop's (renewed, so ended by its own event) not among them
    assert.equal((body.sids as string[]).length, 4);
    assert.ok((body.sids as string[]).includes(phoneSid));
    // 5 sessions ended (phone, 3 token clients, and the laptop's renewed one): credential-change, the user
    // event, and one session-revoked for the laptop's old ID (ended by the renewal, as any login ends the
    // session the browser presented), not one per session
    const events = (await srv.lk.store.listRevocations(before, 100, Math.floor(Date.now() / 1000))).filter((e) => e.userId === userId);
    assert.deepEqual(events.map((e) => e.kind).sort(), ['credential', 'session', 'user']);
    assert.ok(!r.sets(from).some((m) => (decodeJwt(m.data).sub_id as { session?: { id: string } }).session?.id === phoneSid));
    // the session the user goes on with: its tokens are minted at or after the cutoff
    const t = decodeJwt(
      (await json<{ access_token: string }>(
        await fetch(`${srv.url}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'a brand new secret' }) }),
      )).access_token,
    );
    assert.ok(t.iat! >= cutoff);
  });

  it('sign out everywhere: one user-wide event however many sessions it ends, none when it ends none', async () => {
    const { r, from } = await liveReader();
    const email = newEmail();
    const { browser, userId } = await signup(srv, email);
    for (let i = 0; i < 6; i++) await loginTokens(srv, email);
    const before = await srv.lk.store.lastRevocationSeq();
    const handles = (await srv.lk.store.listSessions(userId)).map((s) => srv.lk.context.sessions.handle(s));
    const keptHandle = (await json<{ session: { handle: string } }>(await browser.get('/v1/session'))).session.handle;
    const res = await json<{ revoked: number }>(await browser.post('/v1/sessions/revoke-others'));
    assert.equal(res.revoked, 6);
    const m = await nextSet(r, from, (p) => isUserEvent(p, userId));
    const body = (await verifySet(srv.url, srv.config.issuer, m.data)).events[`${CAEP}session-revoked`]!;
    assert.equal(typeof body.tokens_issued_before, 'number');
    // the sessions it ended, by sid (the kept one is not among them)
    assert.deepEqual([...(body.sids as string[])].sort(), handles.filter((h) => h !== keptHandle).sort());
    assert.equal((body.reason_admin as { en: string }).en, 'signed out everywhere');
    const events = await srv.lk.store.listRevocations(before, 100, Math.floor(Date.now() / 1000));
    assert.deepEqual(events.filter((e) => e.userId === userId).map((e) => e.kind), ['user']);
    // nothing left to end: no event at all
    const again = await srv.lk.store.lastRevocationSeq();
    assert.equal((await json<{ revoked: number }>(await browser.post('/v1/sessions/revoke-others'))).revoked, 0);
    assert.equal(await srv.lk.store.lastRevocationSeq(), again);
  });

  it('refresh token replayed after rotation: session-revoked for the family, saying why', async () => {
    const { r, from } = await liveReader();
    const { email } = await signup(srv);
    const t = await loginTokens(srv, email);
    const sid = decodeJwt(t.access_token).sid as string;
    const grant = { grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: 'latchkey' };
    assert.equal((await form(srv, '/oauth/token', grant)).status, 200);
    assert.equal((await form(srv, '/oauth/token', grant)).status, 400, 'the replay is refused');
    const m = await nextSet(r, from, (p) => (p.sub_id as { session?: { id: string } }).session?.id === sid);
    const ev = (await verifySet(srv.url, srv.config.issuer, m.data)).events[`${CAEP}session-revoked`]!;
    assert.deepEqual(ev.reason_admin, { en: 'refresh token reuse detected' });
    assert.equal(ev.initiating_entity, 'policy');
  });

  it('a signing key retired by another process (the CLI): published by the feed’s poll, signed by another key', async () => {
    const { r, from } = await liveReader();
    const kid = srv.lk.context.keys.signer().kid;
    // a second connection to the same file, as `latchkey keys retire` has
    const other = new SqliteStore({ filename: join(srv.config.dataDir, 'latchkey.sqlite') });
    await other.migrate();
    other.setRevocationPolicy({ retainSeconds: revocationRetention(srv.config), now: Date.now });
    await other.retireSigningKey(kid, Math.floor(Date.now() / 1000));
    await other.close();
    // nothing in this process woke the feed: only its poll of the store can find the event
    const m = await nextSet(r, from, (p) => (p.sub_id as { id?: string }).id === kid);
    assert.ok('urn:latchkey:event-type:signing-key-revoked' in (decodeJwt(m.data).events as object));
    // the server has noticed the retirement and moved on to a new key by the time it can sign; retired
    // behind its back with no replacement (not as `keys retire` does it), it has none to sign with until
    // its next round creates one
    const signerKid = () => {
      try {
        return srv.lk.context.keys.signer().kid;
      } catch {
        return undefined;
      }
    };
    const deadline = Date.now() + 10_000;
    while ((signerKid() ?? kid) === kid && Date.now() < deadline) await new Promise((x) => setTimeout(x, 100));
    const next = signerKid();
    assert.ok(next !== undefined && next !== kid, `signs with ${next}`);
  });

  it('two user-wide changes in the same second: the second cutoff is past the first, so tokens minted between them are revoked too', async () => {
    const store = new SqliteStore({ filename: join(srv.config.dataDir, 'latchkey.sqlite') });
    await store.migrate();
    const frozen = Math.floor(Date.now() / 1000) * 1000 + 100;
    store.setRevocationPolicy({ retainSeconds: revocationRetention(srv.config), now: () => frozen });
    try {
      const { userId } = await signup(srv);
      const from = await store.lastRevocationSeq();
      assert.equal(await store.setUserRoles(userId, ['admin']), true);
      const first = (await store.getUserById(userId))!.tokensNotBefore!;
      // a token minted now carries iat = first (the issuer never signs earlier): the next change must cover it
      assert.equal(await store.setUserRoles(userId, []), true);
      const second = (await store.getUserById(userId))!.tokensNotBefore!;
      assert.ok(second > first, `${second} > ${first}`);
      const events = (await store.listRevocations(from, 10, Math.floor(frozen / 1000))).filter((e) => e.userId === userId);
      assert.deepEqual(events.map((e) => e.tokensIssuedBefore), [first, second]);
    } finally {
      await store.close();
    }
  });

  it('a change that fails writes no event (same transaction)', async () => {
    const before = await srv.lk.store.lastRevocationSeq();
    assert.equal((await admin('PUT', '/v1/admin/users/usr_nobody/roles', { roles: ['x'] })).status, 404);
    assert.equal((await admin('POST', '/v1/admin/users/usr_nobody/disable')).status, 404);
    assert.equal(await srv.lk.store.lastRevocationSeq(), before);
  });
});

describe('snapshot, resumption, reset, heartbeat', () => {
  it('a fresh subscriber gets every retained event, then ready; a resumed one only what came after', async () => {
    const { browser } = await signup(srv);
    await browser.post('/v1/logout');
    const last = await srv.lk.store.lastRevocationSeq();
    const fresh = await open();
    const ready = await fresh.next((m) => m.event === 'ready');
    const ids = fresh.sets().map((m) => Number(m.id));
    const retained = await srv.lk.store.listRevocations(0, 100000, Math.floor(Date.now() / 1000));
    assert.deepEqual(ids, retained.map((e) => e.seq), 'the snapshot is every retained event, in order');
    assert.equal(ids.at(-1), last);
    const readyClaims = await verifyControl(srv.url, srv.config.issuer, ready.data);
    assert.equal(readyClaims.feed, 'ready');
    assert.equal(readyClaims.seq, last);

    const mid = ids[Math.floor(ids.length / 2)]!;
    const resumed = await open({ 'last-event-id': String(mid) });
    await resumed.next((m) => m.event === 'ready');
    assert.deepEqual(resumed.sets().map((m) => Number(m.id)), ids.filter((i) => i > mid));

    const caughtUp = await open({ 'last-event-id': String(last) });
    await caughtUp.next((m) => m.event === 'ready');
    assert.equal(caughtUp.sets().length, 0);
  });

  it('a disconnected subscriber loses nothing: it resumes from its last id', async () => {
    const { r } = await liveReader();
    const lastSeen = r.sets().at(-1)?.id ?? '0';
    r.close();
    const { browser } = await signup(srv);
    const sid = (await json<{ session: { handle: string } }>(await browser.get('/v1/session'))).session.handle;
    await browser.post('/v1/logout');
    const back = await open({ 'last-event-id': lastSeen });
    await nextSet(back, 0, (p) => (p.sub_id as { session?: { id: string } }).session?.id === sid);
  });

  it('a position ahead of the feed (another store) gets reset, then the snapshot', async () => {
    const r = await open({ 'last-event-id': '999999999' });
    const reset = await r.next((m) => m.event === 'reset');
    await r.next((m) => m.event === 'ready');
    assert.ok(r.messages.indexOf(reset) < r.messages.findIndex((m) => m.event === 'set'));
  });

  it('sends signed heartbeats while idle, carrying the position and time; ready carries the subscriber’s nonce', async () => {
    const nonce = 'n0nce-of-this-connection_1';
    const r = await open({}, `?nonce=${nonce}`);
    const ready = await verifyControl(srv.url, srv.config.issuer, (await r.next((m) => m.event === 'ready')).data);
    assert.equal(ready.nonce, nonce);
    const hb = await r.next((m) => m.event === 'heartbeat', 0, 2500);
    const body = await verifyControl(srv.url, srv.config.issuer, hb.data);
    assert.equal(body.feed, 'heartbeat');
    assert.equal(body.nonce, undefined, 'one signature per beat, shared by every subscriber');
    assert.equal(body.seq, await srv.lk.store.lastRevocationSeq());
    assert.ok(Math.abs(body.iat! - Date.now() / 1000) < 5);
  });

  it('refuses a nonce that is not 16 to 64 base64url characters with 400', async () => {
    for (const bad of ['short', 'x'.repeat(65), 'has+plus/and=padding0000']) {
      const r = await open({}, `?nonce=${encodeURIComponent(bad)}`);
      assert.equal(r.response.status, 400, bad);
      assert.equal((await r.response.json()).code, 'invalid_request');
    }
  });

  it('a reset is signed too, with the subscriber’s nonce', async () => {
    const nonce = 'another-nonce-0123456789';
    const r = await open({ 'last-event-id': '999999999' }, `?nonce=${nonce}`);
    const reset = await verifyControl(srv.url, srv.config.issuer, (await r.next((m) => m.event === 'reset')).data);
    assert.equal(reset.feed, 'reset');
    assert.equal(reset.nonce, nonce);
  });

  it('an event that fails to sign is not skipped: live subscribers get it once signing works, heartbeats show the gap meanwhile, the failure is counted', async () => {
    const feed = srv.lk.revocations;
    const { r, from } = await liveReader();
    const failuresBefore = feed.failures;
    const { browser: b1 } = await signup(srv);
    const { browser: b2 } = await signup(srv);
    const sid2 = (await json<{ session: { handle: string } }>(await b2.get('/v1/session'))).session.handle;
    // a fault in signing SETs only (heartbeats keep flowing): the second logout's event cannot be signed for a while
    const original = (feed as unknown as { sign: (e: { sid: string | null }) => string }).sign.bind(feed);
    let broken = true;
    (feed as unknown as { sign: (e: { sid: string | null }) => string }).sign = (e) => {
      if (broken && e.sid === sid2) throw new Error('signing failed (injected)');
      return original(e);
    };
    try {
      await b1.post('/v1/logout');
      await b2.post('/v1/logout');
      const head = await srv.lk.store.lastRevocationSeq();
      // a heartbeat names the newest event, ahead of what this subscriber was sent: a gap it can see
      const hb = await r.next((m) => m.event === 'heartbeat', r.messages.length, 2500);
      assert.equal((await verifyControl(srv.url, srv.config.issuer, hb.data)).seq, head);
      assert.ok(r.sets(from).every((m) => Number(m.id) < head), 'the unsigned event was not sent');
      assert.ok(feed.failures > failuresBefore, 'counted');
      // retried by the feed itself (no new write needed)
      broken = false;
      const got = await nextSet(r, from, (p) => (p.sub_id as { session?: { id: string } }).session?.id === sid2);
      assert.equal(Number(got.id), head);
    } finally {
      (feed as unknown as { sign: unknown }).sign = original;
    }
  });

  it('a heartbeat never announces less than the subscriber was sent (events its catch-up read before the poll did)', async () => {
    const { browser } = await signup(srv);
    await browser.post('/v1/logout');
    // a feed whose poll has not run (not started): its catch-up reads events the poll has not seen
    const feed = new RevocationFeed(srv.lk.store, srv.lk.context.keys, { issuer: srv.config.issuer, heartbeatSeconds: 1, maxSubscribers: 10 });
    const sent: { event: string; data: string }[] = [];
    await feed.subscribe({ send: (m) => (sent.push(m), true), close: () => undefined }, undefined, 'a-nonce-of-sixteen-chars');
    const ready = await verifyControl(srv.url, srv.config.issuer, sent.find((m) => m.event === 'ready')!.data);
    assert.equal(ready.seq, await srv.lk.store.lastRevocationSeq());
    (feed as unknown as { heartbeat(): void }).heartbeat();
    const hb = await verifyControl(srv.url, srv.config.issuer, sent.find((m) => m.event === 'heartbeat')!.data);
    assert.ok(hb.seq >= ready.seq, `heartbeat ${hb.seq} >= ready ${ready.seq}`);
    feed.stop();
  });

  it('events are pruned once their tokens have expired', async () => {
    const t = Math.floor(Date.now() / 1000);
    const kept = await srv.lk.store.listRevocations(0, 100000, t);
    assert.ok(kept.length > 0);
    const retain = srv.config.tokens.accessTokenLifetimeSeconds + 60;
    assert.ok(kept.every((e) => e.until <= Math.floor(e.at / 1000) + retain + 1));
    assert.equal(await srv.lk.store.pruneRevocations(t), 0, 'nothing live is pruned');
    assert.equal(await srv.lk.store.pruneRevocations(t + retain + 2), kept.length);
    assert.equal((await srv.lk.store.listRevocations(0, 10, t)).length, 0);
  });
});

it('a user-wide event naming the most sessions one row holds stays within the 8 KiB a verifier accepts, even signed with RS256-4096', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const sids = Array.from({ length: SIDS_PER_EVENT }, () => randomBytes(12).toString('base64url'));
  const issuer = 'https://auth.example.com/some/long/path/for/the/issuer';
  const claims = setClaims(issuer, {
    seq: 999_999_999,
    at: 1_795_400_000_123,
    kind: 'user',
    userId: `usr_${randomBytes(16).toString('base64url')}`,
    sid: null,
    kid: null,
    tokensIssuedBefore: 1_795_400_001,
    until: 1_795_403_700,
    detail: { initiator: 'admin', reason: 'signed_out_everywhere', sids },
  });
  const set = signSet({ kid: randomBytes(16).toString('base64url'), alg: 'RS256', key: privateKey }, claims);
  assert.ok(set.length <= 8192, `${set.length} bytes`);
});
