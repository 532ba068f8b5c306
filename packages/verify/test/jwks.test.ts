/**
 * The JWKS cache against a real HTTP server on 127.0.0.1: discovery,
 * Cache-Control, ETag, the refetch cooldown for unknown kids, bounded
 * staleness while the endpoint is down, then failing closed.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createRevocationList, createVerifier, type Verifier, type VerifierOptions } from '../src/index.js';
import { attackerKey, claimsFor, mint } from './catalogue.js';
import { KeyServer, newKey, now, rejection, sleep, token, type TestKey } from './helpers.js';

const AUD = 'orders';
const servers: KeyServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
});

async function setup(keys: TestKey[], opts: Partial<VerifierOptions> = {}, configure?: (s: KeyServer) => void): Promise<{ s: KeyServer; v: Verifier }> {
  const s = new KeyServer(...keys);
  configure?.(s);
  servers.push(await s.start());
  return { s, v: createVerifier({ issuer: s.issuer, audience: AUD, ...opts }) };
}

/** A token under a made-up kid, signed by a key nobody published. */
const forged = (issuer: string, i: number) => {
  const k = attackerKey('EdDSA');
  return mint('EdDSA', k.key, { alg: 'EdDSA', kid: `forged-${i}`, typ: 'at+jwt' }, claimsFor(issuer, AUD, now()));
};

describe('discovery (RFC 8414)', () => {
  it('finds jwks_uri from the issuer alone; concurrent first verifications share one fetch', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k]);
    const t = token(k, s.issuer, AUD);
    const all = await Promise.all(Array.from({ length: 50 }, () => v.verify(t)));
    assert.equal(all.length, 50);
    assert.equal(s.metadataRequests, 1);
    assert.equal(s.jwksRequests, 1);
  });

  it('an issuer with a path: metadata at the RFC 8414 location', async () => {
    const k = newKey('ES256');
    const { s, v } = await setup([k], {}, (srv) => (srv.tenant = 'tenant-a'));
    await v.verify(token(k, s.issuer, AUD));
    assert.equal(s.log[0]!.path, '/.well-known/oauth-authorization-server/tenant-a');
  });

  it('refuses metadata that names another issuer (fail closed)', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], {}, (srv) => (srv.metadata = { issuer: 'https://attacker.example' }));
    const err = await rejection(v.verify(token(k, s.issuer, AUD)));
    assert.equal(err.code, 'jwks_unavailable');
    assert.equal(err.status, 503);
    assert.equal(s.jwksRequests, 0);
  });

  it('jwksUri skips discovery', async () => {
    const k = newKey('EdDSA');
    const s = new KeyServer(k);
    servers.push(await s.start());
    const v = createVerifier({ issuer: 'https://auth.example.com', audience: AUD, jwksUri: `${s.issuer}/.well-known/jwks.json` });
    await v.verify(token(k, 'https://auth.example.com', AUD));
    assert.equal(s.metadataRequests, 0);
  });
});

describe('Cache-Control and ETag', () => {
  it('no refetch while fresh; once max-age has passed, one background refetch (answered 304 by ETag)', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'public, max-age=1'));
    const t = token(k, s.issuer, AUD);
    await v.verify(t);
    await v.verify(token(k, s.issuer, AUD));
    assert.equal(s.jwksRequests, 1);
    await sleep(1100);
    // stale: answered at once with the keys it has (a cache hit here), refreshed behind
    await v.verify(t);
    await sleep(100);
    assert.equal(s.jwksRequests, 2);
    assert.deepEqual(s.log.at(-1), { path: '/.well-known/jwks.json', status: 304 });
    await v.verify(token(k, s.issuer, AUD));
  });

  it('a long max-age is honoured: no refetch after a second', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'max-age=60'));
    await v.verify(token(k, s.issuer, AUD));
    await sleep(1100);
    await v.verify(token(k, s.issuer, AUD));
    await sleep(50);
    assert.equal(s.jwksRequests, 1);
  });

  it('no-store does not become a fetch per request: the cooldown is the floor', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.5 } }, (srv) => {
      srv.cacheControl = 'no-store';
      srv.etags = false;
    });
    for (let i = 0; i < 30; i++) await v.verify(token(k, s.issuer, AUD));
    assert.equal(s.jwksRequests, 1);
    await sleep(600);
    for (let i = 0; i < 30; i++) await v.verify(token(k, s.issuer, AUD));
    await sleep(50);
    assert.equal(s.jwksRequests, 2);
  });
});

describe('unknown kids', () => {
  it('forged kids cause at most one refetch per cooldown, however many arrive', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.5 } });
    await v.verify(token(k, s.issuer, AUD));
    const forgeries = Array.from({ length: 200 }, (_, i) => forged(s.issuer, i));
    // within the cooldown of the first load: refused without a fetch
    for (const f of forgeries.slice(0, 20)) assert.equal((await rejection(v.verify(f))).code, 'unknown_key');
    assert.equal(s.jwksRequests, 1);
    await sleep(550);
    const codes = await Promise.all(forgeries.map((f) => rejection(v.verify(f)).then((e) => e.code)));
    assert.ok(codes.every((c) => c === 'unknown_key'));
    for (const f of forgeries.slice(0, 50)) assert.equal((await rejection(v.verify(f))).code, 'unknown_key');
    assert.equal(s.jwksRequests, 2, 'the first load and one refetch');
    await sleep(550);
    for (const f of forgeries.slice(0, 50)) await rejection(v.verify(f));
    assert.equal(s.jwksRequests, 3);
  });

  it('a key published after the last fetch is found by that one refetch', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.2 } });
    await v.verify(token(k, s.issuer, AUD));
    await sleep(250);
    const next = newKey('ES256');
    s.keys.push(next);
    const claims = await v.verify(token(next, s.issuer, AUD));
    assert.equal(claims.aud, AUD);
    assert.equal(s.jwksRequests, 2);
  });

  it('after a key is revoked, the next unknown kid refetches within the cooldown, once per revoked key', async () => {
    // an emergency rotation: the issuer retires its key and signs with a new one at once
    const old = newKey('EdDSA');
    const revocation = createRevocationList();
    const { s, v } = await setup([old], { jwksCache: { cooldown: 30 }, revocation });
    await v.verify(token(old, s.issuer, AUD));
    assert.equal(s.jwksRequests, 1);
    const next = newKey('EdDSA');
    s.keys = [old, next]; // the retired key may still be listed for a while: the revocation refuses its tokens
    // no revocation yet: within the cooldown the new kid is unknown, and nothing is fetched
    assert.equal((await rejection(v.verify(token(next, s.issuer, AUD)))).code, 'unknown_key');
    assert.equal(s.jwksRequests, 1);
    revocation.revokeKey(old.kid);
    assert.equal((await v.verify(token(next, s.issuer, AUD))).aud, AUD);
    assert.equal(s.jwksRequests, 2);
    assert.equal((await rejection(v.verify(token(old, s.issuer, AUD)))).code, 'revoked');
    // forged kids after that get no more fetches, nor does revoking the same key again
    for (let i = 0; i < 20; i++) assert.equal((await rejection(v.verify(forged(s.issuer, i)))).code, 'unknown_key');
    revocation.revokeKey(old.kid);
    assert.equal((await rejection(v.verify(forged(s.issuer, 99)))).code, 'unknown_key');
    assert.equal(s.jwksRequests, 2);
    // another revoked key: one more fetch
    revocation.revokeKey('another-kid');
    assert.equal((await rejection(v.verify(forged(s.issuer, 100)))).code, 'unknown_key');
    assert.equal((await rejection(v.verify(forged(s.issuer, 101)))).code, 'unknown_key');
    assert.equal(s.jwksRequests, 3);
  });

  it('a key removed from the JWKS stops verifying, also for tokens already in the cache', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'max-age=1'));
    const t = token(k, s.issuer, AUD);
    await v.verify(t);
    await v.verify(t); // cached from its second verification
    assert.equal((v as unknown as { cache: { size: number } }).cache.size, 1);
    s.keys = [newKey('EdDSA')];
    await sleep(1100);
    await v.verify(t).catch(() => undefined); // stale: this one may still pass while the refresh runs
    await sleep(100);
    assert.equal((await rejection(v.verify(t))).code, 'unknown_key');
  });
});

describe('JWKS endpoint down', () => {
  for (const mode of ['error', 'reset'] as const) {
    it(`(${mode === 'error' ? 'HTTP 500' : 'connection reset'}) last-known keys work for maxStale past freshness, then verification fails closed, then recovers`, async () => {
      const k = newKey('EdDSA');
      const { s, v } = await setup([k], { jwksCache: { cooldown: 0.2, maxStale: 1.5 } }, (srv) => (srv.cacheControl = 'max-age=1'));
      const cached = token(k, s.issuer, AUD);
      await v.verify(cached);
      await v.verify(cached); // cached from its second verification
      const loadedAt = Date.now();
      s.mode = mode;
      await sleep(1200);
      // stale and the endpoint failing: still accepted, cached or not
      await v.verify(cached);
      await v.verify(token(k, s.issuer, AUD));
      await sleep(loadedAt + 2700 - Date.now());
      // past freshness (1 s) + maxStale (1.5 s): fail closed, for cached tokens too
      const err = await rejection(v.verify(cached));
      assert.equal(err.code, 'jwks_unavailable');
      assert.equal(err.status, 503);
      assert.equal((await rejection(v.verify(token(k, s.issuer, AUD)))).code, 'jwks_unavailable');
      const tries = s.jwksRequests;
      assert.ok(tries >= 2 && tries <= 12, `refetch attempts bounded by the cooldown: ${tries}`);
      s.mode = 'up';
      await sleep(250);
      assert.equal((await v.verify(cached)).aud, AUD);
    });
  }

  it('the first fetch failing fails closed, and is retried only after the cooldown', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksUri: undefined, jwksCache: { cooldown: 0.3 } }, (srv) => (srv.mode = 'error'));
    const t = token(k, s.issuer, AUD);
    for (let i = 0; i < 20; i++) assert.equal((await rejection(v.verify(t))).code, 'jwks_unavailable');
    assert.equal(s.log.length, 1);
    s.mode = 'up';
    assert.equal((await rejection(v.verify(t))).code, 'jwks_unavailable', 'still cooling down');
    await sleep(350);
    await v.verify(t);
  });

  it('a hanging endpoint times out', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { timeout: 0.3 } }, (srv) => (srv.mode = 'hang'));
    const started = Date.now();
    assert.equal((await rejection(v.verify(token(k, s.issuer, AUD)))).code, 'jwks_unavailable');
    assert.ok(Date.now() - started < 2000);
  });

  it('redirects are not followed', async () => {
    const k = newKey('EdDSA');
    const { s } = await setup([k]);
    s.mode = 'redirect';
    const v = createVerifier({ issuer: s.issuer, audience: AUD, jwksUri: `${s.issuer}/.well-known/jwks.json` });
    assert.equal((await rejection(v.verify(token(k, s.issuer, AUD)))).code, 'jwks_unavailable');
    assert.ok(!s.log.some((l) => l.path === '/other-jwks.json'));
  });

  it('an oversized JWKS is refused', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], {}, (srv) => (srv.mode = 'huge'));
    assert.equal((await rejection(v.verify(token(k, s.issuer, AUD)))).code, 'jwks_unavailable');
  });
});
