/**
 * createRevocationFeed against a real HTTP server speaking the feed protocol
 * (docs/revocation.md) with real keys: what each event does to `check`, and
 * that no SET that fails verification is ever applied. The end-to-end suite
 * with latchkey itself is packages/latchkey/test/revocation-verify.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createRevocationFeed, type AccessTokenClaims, type RevocationFeed, type TokenHeader } from '../src/index.js';
import { mint } from './catalogue.js';
import { jwksOf, newKey, now, type TestKey } from './helpers.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const CLIENT = { id: 'svc', secret: 'svc-secret' };

let server: Server;
let issuer = '';
const key = newKey('EdDSA');
const attacker = newKey('EdDSA');
let script: string[] = [];

function sse(messages: string[]): string {
  return messages.join('');
}
const set = (k: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  mint(k.alg, k.key, { alg: k.alg, kid: k.kid, typ: 'secevent+jwt', ...header }, claims);
const msg = (id: number, data: string) => `id: ${id}\nevent: set\ndata: ${data}\n\n`;
const sessionEvent = (sid: string, iss = issuer) => ({
  iss,
  iat: now(),
  jti: sid,
  sub_id: { format: 'complex', user: { format: 'iss_sub', iss, sub: 'u1' }, session: { format: 'opaque', id: sid } },
  events: { [`${CAEP}session-revoked`]: { event_timestamp: now() } },
});

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/.well-known/oauth-authorization-server') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, revocation_feed_endpoint: `${issuer}/feed` }));
    } else if (req.url === '/jwks') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwksOf(key)));
    } else if (req.url === '/feed') {
      const expected = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse(script));
      res.write('event: ready\ndata: {}\n\n');
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const claims = (extra: Partial<AccessTokenClaims>): AccessTokenClaims =>
  ({ iss: issuer, sub: 'u1', aud: 'a', exp: now() + 60, iat: now(), jti: 'j', ...extra }) as AccessTokenClaims;
const header = (kid = key.kid): TokenHeader => ({ alg: 'EdDSA', kid, typ: 'at+jwt' });

async function follow(): Promise<RevocationFeed> {
  const feed = createRevocationFeed({ issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret });
  await feed.ready(5000);
  // ready is sent after the script; SETs are applied in order before it
  return feed;
}

describe('createRevocationFeed', () => {
  it('applies verified events: a session, a user cutoff, a claims change, a key', async () => {
    const t = now();
    script = [
      msg(1, set(key, sessionEvent('sid-1'))),
      msg(2, set(key, {
        iss: issuer, iat: t, jti: '2',
        sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-disabled' },
        events: { [`${CAEP}session-revoked`]: { event_timestamp: t, tokens_issued_before: t + 1 } },
      })),
      msg(3, set(key, {
        iss: issuer, iat: t, jti: '3',
        sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-roles' },
        events: { [`${CAEP}token-claims-change`]: { event_timestamp: t, claims: { roles: ['x'] }, tokens_issued_before: t + 1 } },
      })),
      msg(4, set(key, {
        iss: issuer, iat: t, jti: '4',
        sub_id: { format: 'opaque', id: 'old-kid' },
        events: { 'urn:latchkey:event-type:signing-key-revoked': { event_timestamp: t } },
      })),
      msg(5, set(key, {
        iss: issuer, iat: t, jti: '5',
        sub_id: { format: 'iss_sub', iss: issuer, sub: 'u-pw' },
        events: { [`${CAEP}credential-change`]: { event_timestamp: t, credential_type: 'password', change_type: 'update' } },
      })),
    ];
    const feed = await follow();
    try {
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
    } finally {
      feed.close();
    }
  });

  it('never applies a SET that fails verification', async () => {
    const forged = (sid: string) => sessionEvent(sid);
    const unsignedNone = `${Buffer.from(JSON.stringify({ alg: 'none', kid: key.kid, typ: 'secevent+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(forged('none'))).toString('base64url')}.`;
    script = [
      msg(1, set(key, forged('good'))),
      msg(2, set({ ...attacker, kid: key.kid }, forged('wrong-key'))),
      msg(3, unsignedNone),
      msg(4, set(key, forged('typ'), { typ: 'JWT' })),
      msg(5, set(key, forged('at-jwt'), { typ: 'at+jwt' })),
      msg(6, set(key, sessionEvent('iss', 'https://evil.example'))),
      msg(7, set(attacker, forged('unknown-kid'))),
      msg(8, set(key, forged('jwk-header'), { jwk: attacker.jwk })),
      msg(9, 'not-a-jws'),
    ];
    const feed = await follow();
    try {
      assert.equal(feed.check(claims({ sid: 'good' }), header()), 'session');
      for (const sid of ['wrong-key', 'none', 'typ', 'at-jwt', 'iss', 'unknown-kid', 'jwk-header', 'not-a-jws']) {
        assert.equal(feed.check(claims({ sid }), header()), undefined, sid);
      }
      assert.equal(feed.rejected, 8);
      assert.equal(feed.position, 9, 'the stream moves on');
    } finally {
      feed.close();
    }
  });

  it('keeps an entry only until every token it refers to has expired', async () => {
    script = [msg(1, set(key, { ...sessionEvent('short'), events: { [`${CAEP}session-revoked`]: { event_timestamp: now() - 100 } } }))];
    const feed = createRevocationFeed({ issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret, maxLifetimeSeconds: 60, clockTolerance: 10 });
    try {
      await feed.ready(5000);
      // event 100 s ago + 60 s lifetime + 10 s tolerance: every token of it has expired; pruned
      await new Promise((r) => setTimeout(r, 1300));
      assert.equal(feed.size, 0);
    } finally {
      feed.close();
    }
  });

  it('is unhealthy until ready, and refuses wrong credentials clearly', async () => {
    const feed = createRevocationFeed({ issuer, clientId: CLIENT.id, clientSecret: 'wrong' });
    try {
      assert.equal(feed.healthy, false);
      await assert.rejects(feed.ready(3000), /HTTP 401/);
    } finally {
      feed.close();
    }
  });

  it('validates its options', () => {
    assert.throws(() => createRevocationFeed({ issuer: 'ftp://x', clientId: 'a', clientSecret: 'b' }), /issuer/);
    assert.throws(() => createRevocationFeed({ issuer, clientId: '', clientSecret: 'b' }), /clientId/);
    assert.throws(() => createRevocationFeed({ issuer, clientId: 'a', clientSecret: 'b', maxStalenessMs: 5 }), /maxStalenessMs/);
  });
});
