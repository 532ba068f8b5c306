/**
 * The catalogue of malicious tokens against every algorithm and both crypto
 * backends (node:crypto and Web Crypto), with static keys and with keys from a
 * real JWKS server; every valid token accepted.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createVerifier, VerifyError, type Verifier } from '../src/index.js';
import { createVerifierWithBackend } from '../src/verifier.js';
import { catalogue, validTokens } from './catalogue.js';
import { ALGS, jwksOf, KeyServer, newKey, now, rejection, token, type TestKey } from './helpers.js';

const ISSUER = 'https://auth.example.com';
const AUD = 'orders';

for (const alg of ALGS) {
  for (const backend of ['node', 'web'] as const) {
    describe(`${alg} on ${backend === 'node' ? 'node:crypto' : 'Web Crypto'}, static JWKS`, () => {
      const key = newKey(alg);
      const decoy = newKey(alg === 'EdDSA' ? 'ES256' : 'EdDSA');
      const verifier = createVerifierWithBackend({ issuer: ISSUER, audience: AUD, jwks: jwksOf(decoy, key) }, backend);

      it('accepts every valid token, with its claims', async () => {
        for (const v of validTokens(key, ISSUER, AUD)) {
          const claims = await verifier.verify(v.token).catch((err: VerifyError) => assert.fail(`${v.name}: refused with ${err.code}`));
          assert.deepEqual(claims, v.claims, v.name);
        }
      });

      it('refuses every token of the catalogue with its code', async () => {
        const entries = catalogue(key, ISSUER, AUD);
        assert.ok(entries.length > 100, `catalogue has ${entries.length} entries`);
        const wrong: string[] = [];
        for (const e of entries) {
          const err = await verifier.verify(e.token).then(
            () => undefined,
            (x: unknown) => x,
          );
          if (!(err instanceof VerifyError)) wrong.push(`${e.name}: ${err === undefined ? 'ACCEPTED' : String(err)}`);
          else if (err.code !== e.expectedCode) wrong.push(`${e.name}: ${err.code}, expected ${e.expectedCode}`);
        }
        assert.deepEqual(wrong, []);
      });

      it('refuses each catalogue token again when asked twice (no cache poisoning)', async () => {
        for (const e of catalogue(key, ISSUER, AUD).slice(0, 40)) {
          await verifier.verify(e.token).catch(() => undefined);
          assert.equal((await rejection(verifier.verify(e.token))).code, e.expectedCode, e.name);
        }
      });
    });
  }
}

for (const alg of ALGS) {
  describe(`${alg}, keys discovered from a real metadata + JWKS server`, () => {
    const key = newKey(alg);
    const server = new KeyServer(key, newKey('ES256'));
    let verifier: Verifier;
    before(async () => {
      await server.start();
      verifier = createVerifier({ issuer: server.issuer, audience: AUD });
    });
    after(() => server.close());

    it('accepts every valid token and refuses the catalogue, fetching keys once and refetching at most once', async () => {
      for (const v of validTokens(key, server.issuer, AUD)) await verifier.verify(v.token);
      const wrong: string[] = [];
      for (const e of catalogue(key, server.issuer, AUD)) {
        const err = await verifier.verify(e.token).then(() => undefined, (x: unknown) => x);
        if (!(err instanceof VerifyError) || err.code !== e.expectedCode) wrong.push(`${e.name}: ${err instanceof VerifyError ? err.code : 'ACCEPTED'}`);
      }
      assert.deepEqual(wrong, []);
      assert.equal(server.metadataRequests, 1);
      // the first load; forged kids asked for more, but the 30 s cooldown allows none
      assert.equal(server.jwksRequests, 1);
    });
  });
}

describe('the algorithm comes from the key', () => {
  it('refuses an EdDSA token when only ES256 is accepted, and skips keys of other algorithms', async () => {
    const ed = newKey('EdDSA');
    const es = newKey('ES256');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(ed, es), algorithms: ['ES256'] });
    assert.equal((await rejection(v.verify(token(ed, ISSUER, AUD)))).code, 'bad_algorithm');
    assert.equal((await v.verify(token(es, ISSUER, AUD))).aud, AUD);
  });

  it('never uses a JWK whose alg contradicts its type, a symmetric key, a private key, a weak RSA key or a duplicate kid', async () => {
    const ed = newKey('EdDSA');
    const rs = newKey('RS256');
    const es = newKey('ES256');
    const es2 = newKey('ES256');
    const { generateKeyPairSync } = await import('node:crypto');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const jwks = {
      keys: [
        { ...ed.jwk, alg: 'HS256' },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac', alg: 'HS256' },
        { ...rs.jwk, d: 'AAAA' },
        { ...weak, kid: 'weak', alg: 'RS256' },
        { ...es.jwk, use: 'enc' },
        es2.jwk,
        { ...es2.jwk, x: es.jwk.x, y: es.jwk.y },
      ],
    };
    assert.throws(() => createVerifier({ issuer: ISSUER, audience: AUD, jwks }), /no usable key/);
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: { keys: [...jwks.keys, newKey('EdDSA').jwk] } });
    for (const k of [ed, rs, es, es2]) assert.equal((await rejection(v.verify(token(k, ISSUER, AUD)))).code, 'unknown_key', k.alg);
  });

  it('RS256 with 2048-, 3072- and 4096-bit keys in one process: every signature size verifies, a tampered one is refused', async () => {
    const rsa = (bits: number, kid: string): TestKey => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      return { kid, alg: 'RS256', key: privateKey, publicKey, jwk: { ...(publicKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg: 'RS256', use: 'sig' } };
    };
    const keys = [newKey('RS256'), rsa(4096, 'rsa-4096'), rsa(3072, 'rsa-3072')];
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(...keys), cache: false });
    // larger signatures after smaller ones and back: the node backend's scratch area grows in between
    for (const k of [...keys, ...keys]) {
      const t = token(k, ISSUER, AUD);
      assert.equal((await v.verify(t)).aud, AUD);
      const sig = t.slice(t.lastIndexOf('.') + 1);
      const flipped = t.slice(0, -sig.length) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
      assert.equal((await rejection(v.verify(flipped))).code, 'bad_signature');
    }
  });

  it('recognises the last header only when it is the same text: kids of one length, headers that share a prefix', async () => {
    // the verifier answers a header equal to the last one without parsing it again; anything else is parsed
    const a = newKey('ES256');
    const b = { ...newKey('ES256') };
    b.kid = a.kid.slice(0, -1) + (a.kid.endsWith('A') ? 'B' : 'A'); // same length, last character differs
    b.jwk = { ...b.jwk, kid: b.kid };
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(a, b), cache: false });
    const ta = token(a, ISSUER, AUD);
    const tb = token(b, ISSUER, AUD);
    assert.equal(ta.indexOf('.'), tb.indexOf('.'));
    assert.notEqual(ta.slice(0, ta.indexOf('.')), tb.slice(0, tb.indexOf('.')));
    for (const t of [ta, tb, tb, ta, ta, tb]) assert.equal((await v.verify(t)).aud, AUD);
    // b's header on a's signed content, right after a's token: the kid is b's, so a's signature does not verify
    const swapped = tb.slice(0, tb.indexOf('.')) + ta.slice(ta.indexOf('.'));
    await v.verify(ta);
    assert.equal((await rejection(v.verify(swapped))).code, 'bad_signature');
    // the last header followed by more header characters is another header (longer), refused on its own merits
    await v.verify(ta);
    const longer = ta.slice(0, ta.indexOf('.')) + 'AA' + ta.slice(ta.indexOf('.'));
    assert.equal((await rejection(v.verify(longer))).code, 'malformed');
  });

  it('infers the algorithm of a JWK without alg from its type and curve', async () => {
    for (const alg of ALGS) {
      const k = newKey(alg);
      const { alg: _omit, ...jwk } = k.jwk;
      const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: { keys: [jwk] } });
      assert.equal((await v.verify(token(k, ISSUER, AUD))).iss, ISSUER, alg);
    }
  });
});

describe('options', () => {
  const jwks = jwksOf(newKey('EdDSA'));
  it('refuses none, HMAC and unknown algorithms, and out-of-range numbers, naming the option', () => {
    for (const algorithms of [['none'], ['HS256'], ['EdDSA', 'HS256'], ['PS256'], []]) {
      assert.throws(() => createVerifier({ issuer: ISSUER, audience: AUD, jwks, algorithms: algorithms as never }), /algorithms/);
    }
    assert.throws(() => createVerifier({ issuer: ISSUER, audience: AUD, jwks, clockTolerance: 3600 }), /clockTolerance/);
    assert.throws(() => createVerifier({ issuer: ISSUER, audience: AUD, jwks, maxTokenBytes: 1e9 }), /maxTokenBytes/);
    assert.throws(() => createVerifier({ issuer: ISSUER, audience: '', jwks }), /audience/);
    assert.throws(() => createVerifier({ issuer: '', audience: AUD, jwks }), /issuer/);
    assert.throws(() => createVerifier({ issuer: 'not a url', audience: AUD }), /issuer/);
    assert.throws(() => createVerifier({ issuer: ISSUER, audience: AUD, jwks, jwksUri: 'https://x.example/jwks' }), /exclusive/);
  });

  it('clockTolerance bounds the skew on exp, nbf and iat', async () => {
    const k = newKey('EdDSA');
    const strict = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), clockTolerance: 0, cache: false });
    const lenient = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), clockTolerance: 30, cache: false });
    const t = now();
    const expired = token(k, ISSUER, AUD, { iat: t - 320, exp: t - 20 });
    const early = token(k, ISSUER, AUD, { nbf: t + 20 });
    const future = token(k, ISSUER, AUD, { iat: t + 20, exp: t + 320 });
    assert.equal((await rejection(strict.verify(expired))).code, 'expired');
    assert.equal((await rejection(strict.verify(early))).code, 'not_yet_valid');
    assert.equal((await rejection(strict.verify(future))).code, 'not_yet_valid');
    for (const tok of [expired, early, future]) await lenient.verify(tok);
  });

  it('maxLifetimeSeconds and maxTokenBytes are honoured as configured', async () => {
    const k = newKey('EdDSA');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), maxLifetimeSeconds: 60, maxTokenBytes: 300 });
    assert.equal((await rejection(v.verify(token(k, ISSUER, AUD)))).code, 'too_large');
    const small = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k), maxLifetimeSeconds: 60 });
    assert.equal((await rejection(small.verify(token(k, ISSUER, AUD)))).code, 'lifetime_too_long');
    await small.verify(token(k, ISSUER, AUD, { exp: now() + 60 }));
  });

  it('accepts any of several audiences, exactly', async () => {
    const k = newKey('ES256');
    const v = createVerifier({ issuer: ISSUER, audience: ['orders', 'billing'], jwks: jwksOf(k) });
    await v.verify(token(k, ISSUER, 'billing'));
    await v.verify(token(k, ISSUER, 'orders'));
    assert.equal((await rejection(v.verify(token(k, ISSUER, 'order')))).code, 'wrong_audience');
  });

  it('refuses what is not a string', async () => {
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks });
    for (const t of [undefined, null, 42, {}, ['a.b.c']]) assert.equal((await rejection(v.verify(t as never))).code, 'malformed');
  });

  it('a VerifyError carries a stable code, an HTTP status and a fixed message', async () => {
    const k = newKey('EdDSA');
    const v = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(k) });
    const err = await rejection(v.verify(token(k, ISSUER, 'nope')));
    assert.ok(err instanceof VerifyError);
    assert.equal(err.code, 'wrong_audience');
    assert.equal(err.status, 401);
    assert.equal(err.message, 'token audience not accepted');
    assert.equal(err.name, 'VerifyError');
  });
});
