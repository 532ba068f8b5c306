/**
 * The verified-token cache and the revocation hook: a hit is the exact token
 * that verified, and every hit re-checks exp, the key and revocation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fingerprint, TokenCache } from '../src/cache.js';
import { createRevocationList, createVerifier, type AccessTokenClaims, type RevocationSource, type TokenHeader } from '../src/index.js';
import { jwksOf, newKey, now, rejection, token } from './helpers.js';

const ISSUER = 'https://auth.example.com';
const AUD = 'orders';

describe('verified-token cache', () => {
  it('answers a token seen before with the same frozen claims', async () => {
    const k = newKey('EdDSA');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k) });
    const t = token(k, ISSUER, AUD, { roles: ['admin'] });
    const first = await v.verify(t);
    const a = await v.verify(Buffer.from(t).toString('latin1')); // an equal string, as from another request
    const b = await v.verify(Buffer.from(t).toString('latin1'));
    assert.notEqual(first, a, 'admitted on its second verification, not its first');
    assert.equal(a, b);
    assert.ok(Object.isFrozen(first));
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.roles));
    assert.throws(() => {
      (a as { sub: string }).sub = 'u_admin';
    }, TypeError);
    assert.throws(() => (a.roles as string[]).push('root'), TypeError);
  });

  it('a tampered token carrying a cached token\'s signature is verified in full and refused', async () => {
    const k = newKey('EdDSA');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k) });
    const t = token(k, ISSUER, AUD);
    await v.verify(t);
    const [h, p, sig] = t.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, roles: ['admin'] })).toString('base64url')}.${sig}`;
    assert.equal((await rejection(v.verify(forged))).code, 'bad_signature');
    assert.equal((await v.verify(t)).roles, undefined, 'the genuine token still verifies');
  });

  it('re-checks exp on every hit', async () => {
    const k = newKey('EdDSA');
    let clock = Date.now();
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), clockTolerance: 0, now: () => clock });
    const t = token(k, ISSUER, AUD, { exp: now() + 1 });
    await v.verify(t);
    await v.verify(t); // cached from here
    assert.equal((v as unknown as { cache: { size: number } }).cache.size, 1);
    clock += 2050;
    assert.equal((await rejection(v.verify(t))).code, 'expired');
  });

  it('consults revocation on every hit', async () => {
    const k = newKey('ES256');
    const revocation = createRevocationList();
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), revocation });
    const t = token(k, ISSUER, AUD, { sid: 'sess-1' });
    const other = token(k, ISSUER, AUD, { sid: 'sess-2' });
    await v.verify(t);
    await v.verify(t);
    revocation.revokeSession('sess-1', now() + 300);
    const err = await rejection(v.verify(t));
    assert.equal(err.code, 'revoked');
    assert.equal(err.detail, 'session');
    await v.verify(other);
  });

  it('an unhealthy revocation source fails closed, cache hits included', async () => {
    const k = newKey('EdDSA');
    const revocation = createRevocationList();
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), revocation });
    const t = token(k, ISSUER, AUD);
    await v.verify(t);
    await v.verify(t); // cached from here
    revocation.healthy = false;
    const err = await rejection(v.verify(t));
    assert.equal(err.code, 'revocation_unavailable');
    assert.equal(err.status, 503);
    assert.equal((await rejection(v.verify(token(k, ISSUER, AUD)))).code, 'revocation_unavailable');
    revocation.healthy = true;
    await v.verify(t);
  });

  it('passes the source the claims and the header', async () => {
    const k = newKey('EdDSA');
    const seen: [AccessTokenClaims, TokenHeader][] = [];
    const source: RevocationSource = {
      healthy: true,
      check(claims, header) {
        seen.push([claims, header]);
        return claims.jti === 'bad' ? 'listed' : undefined;
      },
    };
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), revocation: source });
    const t = token(k, ISSUER, AUD);
    await v.verify(t);
    await v.verify(t);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[1]![1], { alg: 'EdDSA', kid: k.kid, typ: 'at+jwt' });
    assert.equal((await rejection(v.verify(token(k, ISSUER, AUD, { jti: 'bad' })))).detail, 'listed');
  });

  it('works with the cache off', async () => {
    const k = newKey('EdDSA');
    const revocation = createRevocationList();
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), cache: false, revocation });
    const t = token(k, ISSUER, AUD);
    await v.verify(t);
    revocation.revokeKey(k.kid);
    assert.equal((await rejection(v.verify(t))).detail, 'key');
  });

  it('admits a token on its second sight, within the doorkeeper\'s horizon', () => {
    const c = new TokenCache(4);
    assert.equal(c.admit(fingerprint('a.b.AAAAAAAA')), false);
    assert.equal(c.admit(fingerprint('a.b.AAAAAAAA')), true);
    assert.equal(c.admit(fingerprint('a.b.AAAAAAAA')), true);
    // first sights of others push it out: 4 to 8 later, it is a stranger again
    const fps = Array.from({ length: 8 }, (_, i) => fingerprint(`a.b.${'BCDEFGHI'[i]}xxxxx`));
    assert.equal(new Set(fps).size, 8);
    assert.equal(c.admit(fingerprint('a.b.ZZZZZZZZ')), false);
    for (const fp of fps) assert.equal(c.admit(fp), false);
    assert.equal(c.admit(fingerprint('a.b.ZZZZZZZZ')), false, 'forgotten after 2 x maxEntries other first sights');
  });

  it('a token used once never enters the cache; a token used again does', async () => {
    const k = newKey('ES256');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k) });
    const cache = (v as unknown as { cache: TokenCache }).cache;
    for (let i = 0; i < 20; i++) await v.verify(token(k, ISSUER, AUD));
    assert.equal(cache.size, 0);
    const t = token(k, ISSUER, AUD);
    await v.verify(t);
    await v.verify(t);
    assert.equal(cache.size, 1);
  });

  it('is bounded: the oldest entries go first', () => {
    const c = new TokenCache(3);
    const put = (token: string) => c.set({ token, claims: {} as AccessTokenClaims, header: {} as TokenHeader, key: {} as never, expiresAtMs: Date.now() + 60_000 });
    const has = (token: string) => c.get(token, fingerprint(token)) !== undefined;
    const [a, b, cc, d, e, f] = ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => `h.p.${x.repeat(8)}`) as [string, string, string, string, string, string];
    for (const t of [a, b, cc, d]) put(t);
    assert.equal(c.size, 3);
    assert.ok(!has(a) && has(b) && has(d));
    c.delete(cc);
    put(b); // present: no new slot
    put(e); // evicts b, the oldest slot
    put(f); // the slot of c, already gone
    assert.deepEqual([b, cc, d, e, f].map(has), [false, false, true, true, true]);
    for (let i = 0; i < 1000; i++) put(`h.p.${i.toString(36).padStart(6, 'x')}x`);
    assert.equal(c.size, 3);
  });

  it('a hit is the exact token: one with the same fingerprint is a miss', () => {
    const c = new TokenCache(10);
    const tail = 'S'.repeat(43);
    const t = `header.payload.${tail}`;
    const get = (x: string) => c.get(x, fingerprint(x));
    assert.equal(fingerprint(`header.PAYLOAD.${tail}`), fingerprint(t));
    c.set({ token: t, claims: {} as AccessTokenClaims, header: {} as TokenHeader, key: {} as never, expiresAtMs: Date.now() + 60_000 });
    assert.ok(get(t));
    assert.equal(get(`header.PAYLOAD.${tail}`), undefined);
    c.delete(`other.payload.${tail}`);
    assert.ok(get(t), 'deleting another token with that fingerprint leaves the entry');
  });

  it('a flood of distinct valid tokens never grows the cache past its bound', async () => {
    const k = newKey('EdDSA');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), cache: { maxEntries: 50 } });
    const first = token(k, ISSUER, AUD);
    await v.verify(first);
    await v.verify(first);
    for (let i = 0; i < 200; i++) {
      const t = token(k, ISSUER, AUD);
      await v.verify(t);
      await v.verify(t); // seen twice: cached
    }
    // still correct after eviction: the evicted token verifies again from scratch
    assert.equal((await v.verify(first)).aud, AUD);
    const cache = (v as unknown as { cache: TokenCache }).cache;
    assert.ok(cache.size <= 50, `size ${cache.size}`);
  });
});

describe('createRevocationList', () => {
  it('revokes by session, by subject issued before a time, and by key', () => {
    const r = createRevocationList();
    const t = now();
    const c = (extra: Partial<AccessTokenClaims>) => ({ iss: ISSUER, sub: 'u1', aud: AUD, exp: t + 60, iat: t, jti: 'j', client_id: 'c', sid: 's1', ...extra }) as AccessTokenClaims;
    const h = { alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' } as const;
    assert.equal(r.check(c({}), h), undefined);
    r.revokeSession('s1', t + 300);
    assert.equal(r.check(c({}), h), 'session');
    assert.equal(r.check(c({ sid: 's2' }), h), undefined);
    r.revokeSubject('u2', t, t + 300);
    assert.equal(r.check(c({ sid: 's2', sub: 'u2', iat: t - 1 }), h), 'subject');
    assert.equal(r.check(c({ sid: 's2', sub: 'u2', iat: t }), h), undefined, 'tokens issued after the revocation are fine');
    r.revokeKey('k2');
    assert.equal(r.check(c({ sid: 's2' }), { ...h, kid: 'k2' }), 'key');
    assert.equal(r.size, 3);
  });

  it('prunes entries once no token they match can still be valid', () => {
    const r = createRevocationList();
    const t = now();
    r.revokeSession('gone', t - 10);
    r.revokeSubject('gone', t - 100, t - 10);
    r.revokeSession('kept', t + 300);
    r.revokeKey('k');
    r.prune(t);
    assert.equal(r.size, 2);
    r.prune(t + 301);
    assert.equal(r.size, 1, 'keys are revoked for good');
  });
});
