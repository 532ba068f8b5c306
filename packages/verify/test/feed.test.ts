/**
 * createRevocationFeed against a real HTTP server speaking the feed protocol
 * (docs/revocation.md) with real keys: what each event does to `check`; that
 * no message failing verification is applied or skipped (the feed stalls,
 * unhealthy, and resumes from its last applied position); that only signed,
 * fresh control messages keep it healthy; that reset never erases. The
 * end-to-end suite with latchkey itself is packages/latchkey/test/revocation-verify.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { createRevocationFeed, type AccessTokenClaims, type RevocationFeed, type RevocationFeedOptions, type TokenHeader } from '../src/index.js';
import { credentialEndpoint } from '../src/keys/discovery.js';
import { revocationsOf, SESSION_REVOKED } from '../src/feed/sets.js';
import { mint } from './catalogue.js';
import { jwksOf, newKey, now, sleep, type TestKey } from './helpers.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const CLIENT = { id: 'svc', secret: 'svc-secret' };

let server: Server;
let issuer = '';
const key = newKey('EdDSA');
const attacker = newKey('EdDSA');

/** One subscription as the test server sees it. */
interface Conn {
  n: number;
  nonce: string;
  lastEventId: string | undefined;
  res: ServerResponse;
}
/** What the server publishes: its JWKS (or an HTTP status), and what it writes to each connection. */
let jwks: () => unknown = () => jwksOf(key);
let jwksStatus = 200;
let onFeed: (c: Conn) => void = () => undefined;
let metadata: () => Record<string, unknown> = () => ({ issuer, jwks_uri: `${issuer}/jwks`, revocation_feed_endpoint: `${issuer}/feed` });
const conns: Conn[] = [];

const set = (k: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  mint(k.alg, k.key, { alg: k.alg, kid: k.kid, typ: 'secevent+jwt', ...header }, claims);
const msg = (id: number, data: string) => `id: ${id}\nevent: set\ndata: ${data}\n\n`;
/** A signed control message for connection `c`, as latchkey sends it. */
const ctl = (kind: 'ready' | 'heartbeat' | 'reset', seq: number, c: Conn, extra: Record<string, unknown> = {}, k: TestKey = key) =>
  `event: ${kind}\ndata: ${mint(k.alg, k.key, { alg: k.alg, kid: k.kid, typ: 'latchkey-feed+jwt' }, { iss: issuer, iat: now(), feed: kind, seq, nonce: c.nonce, ...extra })}\n\n`;
const sessionEvent = (seq: number, sid: string, iss = issuer) => ({
  iss,
  iat: now(),
  jti: `${seq}.${Date.now()}`,
  sub_id: { format: 'complex', user: { format: 'iss_sub', iss, sub: 'u1' }, session: { format: 'opaque', id: sid } },
  events: { [`${CAEP}session-revoked`]: { event_timestamp: now() } },
});
/** SET `seq` revoking session `sid`, signed by `k`. */
const revoke = (seq: number, sid: string, k: TestKey = key) => msg(seq, set(k, sessionEvent(seq, sid)));

before(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(metadata()));
    } else if (url.pathname === '/jwks') {
      if (jwksStatus !== 200) {
        res.writeHead(jwksStatus).end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks()));
    } else if (url.pathname === '/feed') {
      const expected = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const c: Conn = { n: conns.length + 1, nonce: url.searchParams.get('nonce') ?? '', lastEventId: req.headers['last-event-id'] as string | undefined, res };
      conns.push(c);
      onFeed(c);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Each test starts from a clean server: good keys, no connections. */
function reset(feedScript: (c: Conn) => void): void {
  jwks = () => jwksOf(key);
  jwksStatus = 200;
  metadata = () => ({ issuer, jwks_uri: `${issuer}/jwks`, revocation_feed_endpoint: `${issuer}/feed` });
  server.closeAllConnections();
  conns.length = 0;
  onFeed = feedScript;
}

const claims = (extra: Partial<AccessTokenClaims>): AccessTokenClaims =>
  ({ iss: issuer, sub: 'u1', aud: 'a', exp: now() + 60, iat: now(), jti: 'j', ...extra }) as AccessTokenClaims;
const header = (kid = key.kid): TokenHeader => ({ alg: 'EdDSA', kid, typ: 'at+jwt' });

const feeds: RevocationFeed[] = [];
function feedWith(extra: Partial<RevocationFeedOptions> = {}): RevocationFeed {
  const feed = createRevocationFeed({ issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret, ...extra });
  feeds.push(feed);
  return feed;
}
afterEach(() => {
  for (const f of feeds.splice(0)) f.close();
});

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(20);
  }
}

describe('createRevocationFeed', () => {
  it('applies verified events: a session, a user cutoff, a claims change, a key', async () => {
    const t = now();
    reset((c) => {
      c.res.write(
        revoke(1, 'sid-1') +
          msg(2, set(key, {
            iss: issuer, iat: t, jti: '2.0',
            sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-disabled' },
            events: { [`${CAEP}session-revoked`]: { event_timestamp: t, tokens_issued_before: t + 1 } },
          })) +
          msg(3, set(key, {
            iss: issuer, iat: t, jti: '3.0',
            sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-roles' },
            events: { [`${CAEP}token-claims-change`]: { event_timestamp: t, claims: { roles: ['x'] }, tokens_issued_before: t + 1 } },
          })) +
          msg(4, set(key, {
            iss: issuer, iat: t, jti: '4.0',
            sub_id: { format: 'opaque', id: 'old-kid' },
            events: { 'urn:latchkey:event-type:signing-key-revoked': { event_timestamp: t } },
          })) +
          msg(5, set(key, {
            iss: issuer, iat: t, jti: '5.0',
            sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-pw' },
            events: { [`${CAEP}credential-change`]: { event_timestamp: t, credential_type: 'password', change_type: 'update' } },
          })) +
          ctl('ready', 5, c),
      );
    });
    const feed = feedWith();
    await feed.ready(5000);
    assert.equal(feed.healthy, true);
    assert.equal(feed.position, 5);
    assert.equal(feed.rejected, 0);
    assert.equal(feed.check(claims({ sid: 'sid-1' }), header()), 'session');
    assert.equal(feed.check(claims({ sid: 'sid-2' }), header()), undefined);
    assert.equal(feed.check(claims({ sub: 'u-disabled', iat: t }), header()), 'subject');
    assert.equal(feed.check(claims({ sub: 'u-disabled', iat: t + 1 }), header()), undefined, 'minted after the cutoff');
    assert.equal(feed.check(claims({ sub: 'u-roles', iat: t }), header()), 'subject');
    assert.equal(feed.check(claims({}), header('old-kid')), 'key');
    assert.equal(feed.check(claims({ sub: 'u-pw', iat: t }), header()), undefined, 'credential-change alone revokes nothing');
  });

  // each of these stands where event 2 should be: it is refused, never skipped
  const unsignedNone = (seq: number) =>
    `${Buffer.from(JSON.stringify({ alg: 'none', kid: key.kid, typ: 'secevent+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(sessionEvent(seq, 'none'))).toString('base64url')}.`;
  const invalid: [string, string][] = [
    ['signed by another key under our kid', msg(2, set({ ...attacker, kid: key.kid }, sessionEvent(2, 'x')))],
    ['alg none', msg(2, unsignedNone(2))],
    ['typ JWT', msg(2, set(key, sessionEvent(2, 'x'), { typ: 'JWT' }))],
    ['typ at+jwt', msg(2, set(key, sessionEvent(2, 'x'), { typ: 'at+jwt' }))],
    ['another issuer', msg(2, set(key, sessionEvent(2, 'x', 'https://evil.example')))],
    ['a jwk header', msg(2, set(key, sessionEvent(2, 'x'), { jwk: attacker.jwk }))],
    ['not a JWS', msg(2, 'not-a-jws')],
    ['event 1 replayed as event 2', msg(2, set(key, sessionEvent(1, 'x')))],
  ];
  for (const [name, bad] of invalid) {
    it(`an invalid SET (${name}) is refused, not skipped: unhealthy, and it resumes from the last applied event`, async () => {
      let fixed = false;
      reset((c) => {
        if (c.n === 1 || !fixed) c.res.write(revoke(1, 'sid-1') + (fixed ? revoke(2, 'sid-2') : bad) + revoke(3, 'sid-3') + ctl('ready', 3, c));
        else c.res.write(revoke(2, 'sid-2') + revoke(3, 'sid-3') + ctl('ready', 3, c));
      });
      const feed = feedWith();
      await until('the bad event refused', () => feed.rejected > 0);
      assert.equal(feed.position, 1, 'not past the refused event');
      assert.equal(feed.healthy, false);
      assert.equal(feed.check(claims({ sid: 'sid-1' }), header()), 'session');
      assert.equal(feed.check(claims({ sid: 'sid-3' }), header()), undefined, 'nothing after it on that connection is believed');
      await until('a reconnect', () => conns.length >= 2);
      assert.equal(conns[1]!.lastEventId, '1', 'resumes from the last applied event');
      fixed = true;
      await until('recovered', () => feed.healthy, 10_000);
      assert.equal(feed.position, 3);
      assert.equal(feed.check(claims({ sid: 'sid-2' }), header()), 'session');
      assert.equal(feed.check(claims({ sid: 'sid-3' }), header()), 'session');
      assert.equal(feed.stalled, false);
    });
  }

  it('a SET signed by a key it has not fetched yet (within the JWKS cooldown) is applied after a refetch, never skipped', async () => {
    const next = newKey('EdDSA');
    reset((c) => {
      if (c.n === 1) c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c));
      else if (c.lastEventId === '1') c.res.write(revoke(2, 'sid-2', next) + ctl('ready', 2, c));
      else c.res.write(ctl('ready', 2, c));
    });
    const feed = feedWith();
    await feed.ready(5000);
    // the issuer starts signing with a key published after our fetch, inside our refetch cooldown
    jwks = () => jwksOf(key, next);
    conns[0]!.res.write(revoke(2, 'sid-2', next));
    await until('applied', () => feed.check(claims({ sid: 'sid-2' }), header()) === 'session', 8000);
    assert.equal(feed.position, 2);
    assert.equal(feed.rejected, 0, 'not taken for a forgery');
    // a reconnect carried position 1, so the event was asked for again rather than skipped
    assert.ok(conns.some((c) => c.lastEventId === '1'));
    await until('healthy again', () => feed.healthy);
  });

  it('while the JWKS is unreachable, an event with an unknown key leaves the feed unhealthy at its position until keys return', async () => {
    const next = newKey('EdDSA');
    reset((c) => {
      if (c.n === 1) c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c));
      else if (c.lastEventId === '1') c.res.write(revoke(2, 'sid-2', next) + ctl('ready', 2, c));
      else c.res.write(ctl('ready', 2, c));
    });
    const feed = feedWith();
    await feed.ready(5000);
    jwksStatus = 503;
    conns[0]!.res.write(revoke(2, 'sid-2', next));
    await until('stalled', () => feed.stalled);
    assert.equal(feed.healthy, false);
    assert.equal(feed.position, 1);
    await sleep(1500);
    assert.equal(feed.healthy, false, 'still unhealthy while the key cannot be fetched');
    assert.equal(feed.position, 1, 'still not past it');
    assert.equal(feed.rejected, 0);
    jwks = () => jwksOf(key, next);
    jwksStatus = 200;
    await until('applied', () => feed.check(claims({ sid: 'sid-2' }), header()) === 'session', 10_000);
    await until('healthy', () => feed.healthy);
    assert.equal(feed.position, 2);
  });

  it('is healthy only after a reconnect’s ready: catch-up events alone do not make it so', async () => {
    let releaseReady: (() => void) | undefined;
    reset((c) => {
      if (c.n === 1) {
        c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c));
        return;
      }
      c.res.write(revoke(2, 'sid-2'));
      releaseReady = () => c.res.write(ctl('ready', 2, c));
    });
    const feed = feedWith({ maxStalenessMs: 400 });
    await feed.ready(5000);
    // the first connection falls silent: past the bound, unhealthy, and it reconnects
    await until('unhealthy', () => !feed.healthy);
    await until('the catch-up applied', () => feed.check(claims({ sid: 'sid-2' }), header()) === 'session');
    assert.equal(feed.connected, true);
    assert.equal(feed.healthy, false, 'connected and catching up, but no ready yet');
    releaseReady!();
    await until('healthy after ready', () => feed.healthy);
  });

  it('unsigned heartbeats do not keep it healthy', async () => {
    let beat: NodeJS.Timeout | undefined;
    reset((c) => {
      c.res.write(ctl('ready', 0, c));
      beat = setInterval(() => c.res.write(`event: heartbeat\ndata: {"seq":0,"time":${now()}}\n\n`), 100);
      c.res.on('close', () => clearInterval(beat));
    });
    const feed = feedWith({ maxStalenessMs: 500 });
    try {
      await feed.ready(5000);
      // past maxStalenessMs with only unsigned heartbeats: unhealthy, and the heartbeats refused
      await until('unhealthy, the unsigned heartbeats refused', () => !feed.healthy && feed.rejected > 0);
    } finally {
      clearInterval(beat);
    }
  });

  it('signed heartbeats keep it healthy (with our nonce or none); one with another connection’s nonce, another key, or an old time is refused', async () => {
    const variants: [string, (c: Conn) => string][] = [
      ['another nonce', (c) => ctl('heartbeat', 0, { ...c, nonce: 'AAAAAAAAAAAAAAAAAAAAAA' })],
      ['another key', (c) => ctl('heartbeat', 0, c, {}, { ...attacker, kid: key.kid })],
      ['an old time', (c) => ctl('heartbeat', 0, c, { iat: now() - 600 })],
    ];
    for (const [name, forge] of variants) {
      let beat: NodeJS.Timeout | undefined;
      let good = true;
      reset((c) => {
        c.res.write(ctl('ready', 0, c));
        // latchkey's heartbeats carry no nonce (one signature for every subscriber); ours is accepted too
        let i = 0;
        beat = setInterval(() => c.res.write(good ? ctl('heartbeat', 0, c, i++ % 2 ? { nonce: undefined } : {}) : forge(c)), 100);
        c.res.on('close', () => clearInterval(beat));
      });
      // healthy past maxStaleness only through the heartbeats; a bound far above their 100 ms
      // interval so a loaded machine's stalled event loop does not read as silence
      const feed = feedWith({ maxStalenessMs: 2000 });
      try {
        await feed.ready(5000);
        await sleep(2500);
        assert.equal(feed.healthy, true, `${name}: genuine heartbeats keep it healthy`);
        good = false;
        await until(`${name}: refused`, () => feed.rejected > 0 && !feed.healthy);
      } finally {
        clearInterval(beat);
        feed.close();
      }
    }
  });

  it('a ready for another connection (its nonce, or none) is refused: the feed does not become healthy on it', async () => {
    for (const nonce of ['AAAAAAAAAAAAAAAAAAAAAA', undefined]) {
      reset((c) => c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c, { nonce })));
      const feed = feedWith();
      await until('refused', () => feed.rejected > 0);
      assert.equal(feed.healthy, false);
      await assert.rejects(feed.ready(300));
      feed.close();
    }
  });

  it('a heartbeat announcing a later position than ours reconnects from ours (a gap)', async () => {
    reset((c) => {
      if (c.n === 1) c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c) + ctl('heartbeat', 3, c));
      else c.res.write(revoke(2, 'sid-2') + revoke(3, 'sid-3') + ctl('ready', 3, c));
    });
    const feed = feedWith();
    await until('caught up', () => feed.position === 3);
    assert.equal(conns[1]!.lastEventId, '1');
    assert.equal(feed.check(claims({ sid: 'sid-2' }), header()), 'session');
  });

  it('reset erases nothing: the new snapshot is merged into what was learnt', async () => {
    reset((c) => {
      if (c.n === 1) {
        c.res.write(revoke(1, 'sid-old') + ctl('ready', 1, c));
        setTimeout(() => c.res.end(), 50);
      } else c.res.write(ctl('reset', 0, c) + revoke(1, 'sid-new') + ctl('ready', 1, c));
    });
    const feed = feedWith();
    await until('the second snapshot', () => feed.check(claims({ sid: 'sid-new' }), header()) === 'session');
    assert.equal(feed.check(claims({ sid: 'sid-old' }), header()), 'session');
    await until('healthy', () => feed.healthy);
  });

  it('an unsigned reset is refused and erases nothing', async () => {
    reset((c) => {
      if (c.n === 1) c.res.write(revoke(1, 'sid-1') + ctl('ready', 1, c) + 'event: reset\ndata: {"seq":0}\n\n');
      else c.res.write(ctl('ready', 1, c));
    });
    const feed = feedWith();
    await until('refused', () => feed.rejected > 0);
    assert.equal(feed.check(claims({ sid: 'sid-1' }), header()), 'session');
    assert.equal(feed.position, 1);
  });

  it('never sends its credentials to a plain-http, non-loopback endpoint named by the metadata', async () => {
    const asked: string[] = [];
    reset(() => undefined);
    metadata = () => ({ issuer, jwks_uri: `${issuer}/jwks`, revocation_feed_endpoint: 'http://feed.example.com/events', introspection_endpoint: 'http://feed.example.com/introspect' });
    const feed = feedWith({
      fallback: 'introspect',
      fetch: (input, init) => {
        asked.push(input);
        return fetch(input, init);
      },
    });
    await assert.rejects(feed.ready(1500), /must use https/);
    await assert.rejects(feed.introspect!('x.y.z'), /must use https/);
    assert.ok(asked.every((u) => !u.includes('feed.example.com')), asked.join(' '));
    assert.equal(feed.healthy, false);
  });

  it('holds an endpoint that gets the credentials to https: http only on loopback, and from metadata only for an http issuer', () => {
    assert.equal(credentialEndpoint('https://auth.example.com/feed', 'x'), 'https://auth.example.com/feed');
    for (const ok of ['http://127.0.0.1:8080/feed', 'http://localhost/feed', 'http://[::1]/feed']) {
      assert.equal(credentialEndpoint(ok, 'x'), new URL(ok).href, ok);
      assert.equal(credentialEndpoint(ok, 'x', { issuer: 'http://localhost:3000' }), new URL(ok).href, ok);
      assert.throws(() => credentialEndpoint(ok, 'x', { issuer: 'https://auth.example.com' }), /must use https/, ok);
    }
    for (const bad of ['http://auth.example.com/feed', 'http://10.0.0.1/feed', 'http://127.0.0.1.nip.io/feed', 'ftp://127.0.0.1/feed', 'not a url']) {
      assert.throws(() => credentialEndpoint(bad, 'x'), /must use https|not a URL/, bad);
    }
  });

  it('keeps an entry only until every token it refers to has expired', async () => {
    reset((c) =>
      c.res.write(
        msg(1, set(key, { ...sessionEvent(1, 'short'), events: { [`${CAEP}session-revoked`]: { event_timestamp: now() - 100 } } })) + ctl('ready', 1, c),
      ),
    );
    const feed = feedWith({ maxLifetimeSeconds: 60, clockTolerance: 10 });
    await feed.ready(5000);
    // event 100 s ago + 60 s lifetime + 10 s tolerance: every token of it has expired; pruned
    await until('pruned', () => feed.size === 0);
  });

  it('is unhealthy until ready, and refuses wrong credentials clearly', async () => {
    reset(() => undefined);
    const feed = feedWith({ clientSecret: 'wrong' });
    assert.equal(feed.healthy, false);
    await assert.rejects(feed.ready(3000), /HTTP 401/);
  });

  it('validates its options', () => {
    assert.throws(() => createRevocationFeed({ issuer: 'ftp://x', clientId: 'a', clientSecret: 'b' }), /issuer/);
    assert.throws(() => createRevocationFeed({ issuer, clientId: '', clientSecret: 'b' }), /clientId/);
    assert.throws(() => createRevocationFeed({ issuer, clientId: 'a', clientSecret: 'b', maxStalenessMs: 5 }), /maxStalenessMs/);
    assert.throws(() => createRevocationFeed({ issuer, clientId: 'a', clientSecret: 'b', feedUri: 'http://10.1.2.3/feed' }), /feedUri must use https/);
    assert.throws(
      () => createRevocationFeed({ issuer, clientId: 'a', clientSecret: 'b', introspectionEndpoint: 'http://auth.example.com/oauth/introspect' }),
      /introspectionEndpoint must use https/,
    );
  });
});

describe('revocationsOf: a user-wide session-revoked event', () => {
  const iss = 'https://issuer.example';
  const ev = (body: Record<string, unknown>) => ({
    iss,
    iat: 100,
    sub_id: { format: 'iss_sub', iss, sub: 'usr_1' },
    events: { [SESSION_REVOKED]: { event_timestamp: 100, tokens_issued_before: 101, ...body } },
  });
  it('revokes the sessions it names by sid, besides the cutoff', () => {
    assert.deepEqual(revocationsOf(ev({ sids: ['sidA', 'sidB'] }), iss), [
      { kind: 'subject', sub: 'usr_1', issuedBefore: 101, at: 100 },
      { kind: 'session', sid: 'sidA', at: 101 },
      { kind: 'session', sid: 'sidB', at: 101 },
    ]);
  });
  it('without sids (an earlier latchkey), by the cutoff alone; entries that are not sids are ignored', () => {
    assert.deepEqual(revocationsOf(ev({}), iss), [{ kind: 'subject', sub: 'usr_1', issuedBefore: 101, at: 100 }]);
    assert.deepEqual(revocationsOf(ev({ sids: [7, '', null, 'x'.repeat(300), 'ok'] }), iss), [
      { kind: 'subject', sub: 'usr_1', issuedBefore: 101, at: 100 },
      { kind: 'session', sid: 'ok', at: 101 },
    ]);
  });
});
