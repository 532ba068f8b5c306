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

/**
 * The verifier's clock, moved by the tests: cooldowns, freshness and staleness are judged by it,
 * so no assertion depends on how fast the machine runs. Starts at the real time (the test tokens'
 * iat and exp are real), and only ever moves forward by a few seconds.
 */
class Clock {
  t = Date.now();
  readonly now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

async function setup(
  keys: TestKey[],
  opts: Partial<VerifierOptions> = {},
  configure?: (s: KeyServer) => void,
): Promise<{ s: KeyServer; v: Verifier; clock: Clock; loads: () => number }> {
  const s = new KeyServer(...keys);
  configure?.(s);
  servers.push(await s.start());
  const clock = new Clock();
  const v = createVerifier({ issuer: s.issuer, audience: AUD, now: clock.now, ...opts });
  // fetches started (counted when started, before any answer): "none started" is then exact
  const loads = () => (v as unknown as { keys: { loads: number } }).keys.loads;
  return { s, v, clock, loads };
}

/** Wait (real time, generous) for something the verifier does in the background, e.g. a refetch answered. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
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
    const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'public, max-age=1'));
    const t = token(k, s.issuer, AUD);
    await v.verify(t);
    await v.verify(token(k, s.issuer, AUD));
    assert.equal(loads(), 1);
    clock.advance(1100);
    // stale: answered at once with the keys it has (a cache hit here), refreshed behind
    await v.verify(t);
    assert.equal(loads(), 2);
    await until(() => s.jwksRequests === 2, 'the background refetch');
    assert.deepEqual(s.log.at(-1), { path: '/.well-known/jwks.json', status: 304 });
    await v.verify(token(k, s.issuer, AUD));
  });

  it('a long max-age is honoured: no refetch after a second', async () => {
    const k = newKey('EdDSA');
    const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'max-age=60'));
    await v.verify(token(k, s.issuer, AUD));
    clock.advance(1100);
    await v.verify(token(k, s.issuer, AUD));
    clock.advance(58_000);
    await v.verify(token(k, s.issuer, AUD));
    assert.equal(loads(), 1, 'no fetch started');
    assert.equal(s.jwksRequests, 1);
  });

  it('no-store does not become a fetch per request: the cooldown is the floor', async () => {
    const k = newKey('EdDSA');
    const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.5 } }, (srv) => {
      srv.cacheControl = 'no-store';
      srv.etags = false;
    });
    for (let i = 0; i < 30; i++) await v.verify(token(k, s.issuer, AUD));
    clock.advance(499);
    for (let i = 0; i < 30; i++) await v.verify(token(k, s.issuer, AUD));
    assert.equal(loads(), 1);
    assert.equal(s.jwksRequests, 1);
    clock.advance(101);
    for (let i = 0; i < 30; i++) await v.verify(token(k, s.issuer, AUD));
    assert.equal(loads(), 2, 'one refetch per cooldown, however many verifications');
    await until(() => s.jwksRequests === 2, 'the refetch');
  });
});

describe('unknown kids', () => {
  it('forged kids cause at most one refetch per cooldown, however many arrive', async () => {
    const k = newKey('EdDSA');
    const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.5 } });
    await v.verify(token(k, s.issuer, AUD));
    const forgeries = Array.from({ length: 200 }, (_, i) => forged(s.issuer, i));
    // within the cooldown of the first load (up to its last ms): refused without a fetch
    for (const f of forgeries.slice(0, 20)) assert.equal((await rejection(v.verify(f))).code, 'unknown_key');
    clock.advance(499);
    for (const f of forgeries.slice(20, 40)) assert.equal((await rejection(v.verify(f))).code, 'unknown_key');
    assert.equal(loads(), 1);
    assert.equal(s.jwksRequests, 1);
    clock.advance(51);
    const codes = await Promise.all(forgeries.map((f) => rejection(v.verify(f)).then((e) => e.code)));
    assert.ok(codes.every((c) => c === 'unknown_key'));
    for (const f of forgeries.slice(0, 50)) assert.equal((await rejection(v.verify(f))).code, 'unknown_key');
    assert.equal(loads(), 2);
    assert.equal(s.jwksRequests, 2, 'the first load and one refetch');
    clock.advance(550);
    for (const f of forgeries.slice(0, 50)) await rejection(v.verify(f));
    assert.equal(loads(), 3);
    assert.equal(s.jwksRequests, 3);
  });

  it('a key published after the last fetch is found by that one refetch', async () => {
    const k = newKey('EdDSA');
    const { s, v, clock } = await setup([k], { jwksCache: { cooldown: 0.2 } });
    await v.verify(token(k, s.issuer, AUD));
    clock.advance(250);
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
    const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.1 } }, (srv) => (srv.cacheControl = 'max-age=1'));
    const t = token(k, s.issuer, AUD);
    await v.verify(t);
    await v.verify(t); // cached from its second verification
    assert.equal((v as unknown as { cache: { size: number } }).cache.size, 1);
    s.keys = [newKey('EdDSA')];
    clock.advance(1100);
    await v.verify(t); // stale: answered from the cache while the refresh runs behind
    assert.equal(loads(), 2);
    // once the refresh has the new set, the cached token is refused: its key left
    await until(async () => (await v.verify(t).then(() => 'ok', (e: { code?: string }) => e.code)) === 'unknown_key', 'the cached token refused');
    assert.equal(loads(), 2, 'no further fetch (the clock did not move)');
  });
});

describe('JWKS endpoint down', () => {
  for (const mode of ['error', 'reset'] as const) {
    it(`(${mode === 'error' ? 'HTTP 500' : 'connection reset'}) last-known keys work for maxStale past freshness, then verification fails closed, then recovers`, async () => {
      const k = newKey('EdDSA');
      const { s, v, clock, loads } = await setup([k], { jwksCache: { cooldown: 0.2, maxStale: 1.5 } }, (srv) => (srv.cacheControl = 'max-age=1'));
      const cached = token(k, s.issuer, AUD);
      await v.verify(cached);
      await v.verify(cached); // cached from its second verification
      s.mode = mode;
      clock.advance(1200);
      // stale and the endpoint failing: still accepted, cached or not, while one refetch is tried behind
      await v.verify(cached);
      await v.verify(token(k, s.issuer, AUD));
      assert.equal(loads(), 2);
      await until(() => s.jwksRequests === 2, 'the failed refetch');
      for (let i = 0; i < 20; i++) await v.verify(token(k, s.issuer, AUD));
      assert.equal(loads(), 2, 'no retry within the cooldown');
      clock.advance(1299);
      // 2499 ms after the load: still within freshness (1 s) + maxStale (1.5 s)
      await v.verify(cached);
      clock.advance(201);
      // past it: fail closed, for cached tokens too
      const err = await rejection(v.verify(cached));
      assert.equal(err.code, 'jwks_unavailable');
      assert.equal(err.status, 503);
      assert.equal((await rejection(v.verify(token(k, s.issuer, AUD)))).code, 'jwks_unavailable');
      // one attempt per cooldown, however many verifications failed
      const tries = loads();
      for (let i = 0; i < 20; i++) await rejection(v.verify(token(k, s.issuer, AUD)));
      assert.equal(loads(), tries);
      s.mode = 'up';
      clock.advance(200);
      assert.equal((await v.verify(cached)).aud, AUD);
    });
  }

  it('the first fetch failing fails closed, and is retried only after the cooldown', async () => {
    const k = newKey('EdDSA');
    const { s, v, clock } = await setup([k], { jwksUri: undefined, jwksCache: { cooldown: 0.3 } }, (srv) => (srv.mode = 'error'));
    const t = token(k, s.issuer, AUD);
    for (let i = 0; i < 20; i++) assert.equal((await rejection(v.verify(t))).code, 'jwks_unavailable');
    assert.equal(s.log.length, 1);
    s.mode = 'up';
    clock.advance(299);
    assert.equal((await rejection(v.verify(t))).code, 'jwks_unavailable', 'still cooling down');
    assert.equal(s.log.length, 1);
    clock.advance(1);
    await v.verify(t);
  });

  it('a hanging endpoint times out', async () => {
    const k = newKey('EdDSA');
    const { s, v } = await setup([k], { jwksCache: { timeout: 0.3 } }, (srv) => (srv.mode = 'hang'));
    // the endpoint never answers: without the timeout this would wait for the test's own timeout
    const err = await rejection(v.verify(token(k, s.issuer, AUD)));
    assert.equal(err.code, 'jwks_unavailable');
    assert.match(err.detail ?? err.message, /timed out/);
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
