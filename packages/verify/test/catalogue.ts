/**
 * A catalogue of crafted malicious tokens, reusable against any verifier that
 * trusts a given signing key: this package's tests run it against fresh keys,
 * and the server's tests can run it against the running server's own keys.
 *
 *   import { catalogue, validTokens } from '../../verify/test/catalogue.js';
 *   for (const { name, token, expectedCode } of catalogue(ctx.keys.signer(), issuer, 'orders')) ...
 *
 * Each token differs from a valid one in one way only; most are signed with
 * the real key, so the defect under test is the only reason to refuse them.
 * Expected codes assume the verifier's defaults (maxTokenBytes 4096,
 * maxLifetimeSeconds 3600, clockTolerance <= 60).
 */
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { Algorithm, VerifyErrorCode } from '../src/index.js';

/** A private signing key and how it is published (the server's `Signer` has this shape). */
export interface SigningMaterial {
  kid: string;
  alg: Algorithm;
  key: KeyObject;
}

export interface CatalogueEntry {
  name: string;
  token: string;
  expectedCode: VerifyErrorCode;
}

export interface ValidToken {
  name: string;
  token: string;
  claims: Record<string, unknown>;
}

const b64 = (v: string | Uint8Array): string => Buffer.from(v).toString('base64url');
const json = (v: unknown): string => b64(JSON.stringify(v));

/** Sign `header.payload` (already-encoded segments) with `key` for `alg`, JWS-style. */
export function signInput(alg: Algorithm, key: KeyObject, input: string): Buffer {
  const data = Buffer.from(input);
  if (alg === 'EdDSA') return sign(null, data, key);
  if (alg === 'ES256') return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
  return sign('sha256', data, key);
}

/** A compact JWS of `header` and `claims` signed with `key` (segments given as strings are used as they are). */
export function mint(alg: Algorithm, key: KeyObject, header: object | string, claims: object | string): string {
  const input = `${typeof header === 'string' ? header : json(header)}.${typeof claims === 'string' ? claims : json(claims)}`;
  return `${input}.${b64(signInput(alg, key, input))}`;
}

/** A fresh key pair of the same algorithm (an attacker's). */
export function attackerKey(alg: Algorithm, kid = 'attacker'): SigningMaterial & { publicKey: KeyObject } {
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg, key: pair.privateKey, publicKey: pair.publicKey };
}

/** Claims as the server mints them, `now` in Unix seconds. */
export function claimsFor(issuer: string, audience: string, now: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer,
    sub: 'u_8m3PZTqXuVk2bN4sWcA1Yg',
    aud: audience,
    exp: now + 300,
    iat: now,
    jti: b64(randomBytes(16)),
    sid: 'Qm9vZ2FsbG9vMTIz',
    client_id: 'latchkey',
    ...extra,
  };
}

/** Tokens a strict verifier must accept: the server's shape and the variations RFC 9068 allows. */
export function validTokens(m: SigningMaterial, issuer: string, audience: string, now = Math.floor(Date.now() / 1000)): ValidToken[] {
  const header = { alg: m.alg, kid: m.kid, typ: 'at+jwt' };
  const make = (name: string, extra: Record<string, unknown> = {}, h: object = header): ValidToken => {
    const claims = claimsFor(issuer, audience, now, extra);
    return { name, token: mint(m.alg, m.key, h, claims), claims };
  };
  return [
    make('as the server mints it'),
    make('with roles and scope', { roles: ['admin', 'billing'], scope: 'orders:read orders:write' }),
    make('gateway token, 60 s', { exp: now + 60 }),
    make('aud as an array containing the audience', { aud: ['other', audience] }),
    make('nbf now', { nbf: now }),
    make('typ application/at+jwt', {}, { alg: m.alg, kid: m.kid, typ: 'application/at+jwt' }),
    make('lifetime exactly one hour', { exp: now + 3600 }),
    make('iat a few seconds ahead (clock skew)', { iat: now + 3, exp: now + 303 }),
    make('custom claim', { tenant: { id: 't1', plan: 'pro' } }),
  ];
}

/**
 * The malicious tokens, each with the code a strict verifier must refuse it
 * with. `m` is the key the verifier trusts; `now` is Unix seconds.
 */
export function catalogue(m: SigningMaterial, issuer: string, audience: string, now = Math.floor(Date.now() / 1000)): CatalogueEntry[] {
  const out: CatalogueEntry[] = [];
  const add = (name: string, token: string, expectedCode: VerifyErrorCode) => out.push({ name, token, expectedCode });
  const header = { alg: m.alg, kid: m.kid, typ: 'at+jwt' };
  const claims = claimsFor(issuer, audience, now);
  const real = (h: object | string, c: object | string = claims) => mint(m.alg, m.key, h, c);
  const good = real(header);
  const [gh, gp, gs] = good.split('.') as [string, string, string];
  const evil = attackerKey(m.alg);
  const publicKey = createPublicKey(m.key);
  const publicJwk = publicKey.export({ format: 'jwk' });
  const evilJwk = evil.publicKey.export({ format: 'jwk' });

  // --- alg "none", in its casings: no signature, or the real one left in place
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    add(`alg ${alg}, empty signature`, `${json({ alg, kid: m.kid, typ: 'at+jwt' })}.${gp}.`, 'bad_algorithm');
  }
  add('alg none, real signature kept', `${json({ alg: 'none', kid: m.kid, typ: 'at+jwt' })}.${gp}.${gs}`, 'bad_algorithm');
  add('alg missing', real({ kid: m.kid, typ: 'at+jwt' }), 'bad_algorithm');
  add('alg null', real({ alg: null, kid: m.kid, typ: 'at+jwt' }), 'bad_algorithm');
  add('alg as an array', real({ alg: [m.alg], kid: m.kid, typ: 'at+jwt' }), 'bad_algorithm');

  // --- HS/RS confusion: HMAC keyed with the public key in every form a confused verifier might use
  const secrets: [string, Buffer][] = [
    ['SPKI PEM', Buffer.from(publicKey.export({ format: 'pem', type: 'spki' }) as string)],
    ['SPKI DER', publicKey.export({ format: 'der', type: 'spki' }) as Buffer],
    ['JWK JSON', Buffer.from(JSON.stringify(publicJwk))],
    ['x / n member', Buffer.from((publicJwk.x ?? publicJwk.n)!, 'base64url')],
  ];
  for (const [form, secret] of secrets) {
    for (const [alg, hash] of [['HS256', 'sha256'], ['HS512', 'sha512']] as const) {
      const input = `${json({ alg, kid: m.kid, typ: 'at+jwt' })}.${gp}`;
      add(`${alg} signed with the public key (${form})`, `${input}.${b64(createHmac(hash, secret).update(input).digest())}`, 'bad_algorithm');
    }
  }
  // another asymmetric algorithm than the key's, signed by an attacker's key of that algorithm, under the real kid
  const other: Algorithm = m.alg === 'EdDSA' ? 'ES256' : 'EdDSA';
  add(`alg ${other} under the ${m.alg} key's kid`, mint(other, attackerKey(other).key, { alg: other, kid: m.kid, typ: 'at+jwt' }, claims), 'bad_algorithm');
  add('alg PS256 (not accepted)', `${json({ alg: 'PS256', kid: m.kid, typ: 'at+jwt' })}.${gp}.${gs}`, 'bad_algorithm');
  add('alg ES256K (not accepted)', `${json({ alg: 'ES256K', kid: m.kid, typ: 'at+jwt' })}.${gp}.${gs}`, 'bad_algorithm');

  // --- kid: traversal, injection, prototype names, absent; the token signed by an attacker
  const evilWith = (kid: unknown) => mint(m.alg, evil.key, { alg: m.alg, kid, typ: 'at+jwt' }, claims);
  for (const kid of ['../../../../../../dev/null', '/etc/passwd', '..\\..\\keys\\' + m.kid, `${m.kid}/../${m.kid}`, 'file:///dev/null']) {
    add(`kid traversal ${JSON.stringify(kid)}`, evilWith(kid), 'unknown_key');
  }
  for (const kid of ["' OR '1'='1", `${m.kid}' --`, `x"; DROP TABLE keys; --`, '$(id)', '${jndi:ldap://x}', `${m.kid}\u0000`, `${m.kid}\n`, ' ', '']) {
    add(`kid injection ${JSON.stringify(kid)}`, evilWith(kid), 'unknown_key');
  }
  for (const kid of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) add(`kid ${kid}`, evilWith(kid), 'unknown_key');
  add('kid a number', evilWith(1), 'unknown_key');
  add('kid an object', evilWith({ $ne: null }), 'unknown_key');
  add('kid missing', mint(m.alg, evil.key, { alg: m.alg, typ: 'at+jwt' }, claims), 'unknown_key');
  add('kid unknown (well-formed)', evilWith('k' + b64(randomBytes(6))), 'unknown_key');
  add('kid 200 characters', evilWith('a'.repeat(200)), 'unknown_key');
  add('real kid, attacker signature', evilWith(m.kid), 'bad_signature');

  // --- headers that would let the token pick its key, and crit
  add('embedded jwk (attacker key)', mint(m.alg, evil.key, { alg: m.alg, kid: 'attacker', typ: 'at+jwt', jwk: evilJwk }, claims), 'bad_header');
  add('embedded jwk under the real kid', mint(m.alg, evil.key, { alg: m.alg, kid: m.kid, typ: 'at+jwt', jwk: evilJwk }, claims), 'bad_header');
  add('embedded jwk, real signature', real({ ...header, jwk: publicJwk }), 'bad_header');
  add('jku to an attacker JWKS', mint(m.alg, evil.key, { ...header, kid: 'attacker', jku: 'https://attacker.example/jwks.json' }, claims), 'bad_header');
  add('jku, real signature', real({ ...header, jku: `${issuer}/.well-known/jwks.json` }), 'bad_header');
  add('x5u', real({ ...header, x5u: 'https://attacker.example/cert.pem' }), 'bad_header');
  add('x5c', real({ ...header, x5c: ['MIIBszCCAVmgAwIBAgIUAA=='] }), 'bad_header');
  add('x5t', real({ ...header, x5t: 'AAAA' }), 'bad_header');
  add('crit with an unknown extension', real({ ...header, crit: ['exp'], exp: now + 60 }), 'bad_header');
  add('crit empty', real({ ...header, crit: [] }), 'bad_header');
  add('b64 false (RFC 7797)', real({ ...header, b64: false, crit: ['b64'] }), 'bad_header');
  add('cty JWT (nested token)', real({ ...header, cty: 'JWT' }), 'bad_header');
  add('enc (a JWE header)', real({ ...header, enc: 'A256GCM' }), 'bad_header');
  add('__proto__ header member', real(b64(`{"alg":"${m.alg}","kid":"${m.kid}","typ":"at+jwt","__proto__":{"alg":"none"}}`)), 'bad_header');

  // --- signatures: zero, stripped, swapped, wrong encoding
  const zeroLen = m.alg === 'RS256' ? (publicJwk.n ? Buffer.from(publicJwk.n, 'base64url').length : 256) : 64;
  add('all-zero signature', `${gh}.${gp}.${b64(Buffer.alloc(zeroLen))}`, 'bad_signature');
  // "psychic signatures" (CVE-2022-21449): r = s = 0, and r = s = n (the P-256 group order)
  const n = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');
  const es = `${json({ alg: 'ES256', kid: m.kid, typ: 'at+jwt' })}.${gp}`;
  const esCode: VerifyErrorCode = m.alg === 'ES256' ? 'bad_signature' : 'bad_algorithm';
  add('ECDSA zero signature (r = s = 0)', `${es}.${b64(Buffer.alloc(64))}`, esCode);
  add('ECDSA r = s = n', `${es}.${b64(Buffer.concat([n, n]))}`, esCode);
  add('ECDSA r = 0, s = 1', `${es}.${b64(Buffer.concat([Buffer.alloc(32), Buffer.alloc(31), Buffer.from([1])]))}`, esCode);
  if (m.alg === 'ES256') {
    // the same signature in DER instead of JWS's raw r||s: not what JWS specifies
    const der = sign('sha256', Buffer.from(`${gh}.${gp}`), m.key);
    add('ES256 signature in DER encoding', `${gh}.${gp}.${b64(der)}`, 'bad_signature');
  }
  add('signature stripped (trailing dot kept)', `${gh}.${gp}.`, 'bad_signature');
  add('signature stripped (two segments)', `${gh}.${gp}`, 'malformed');
  const other1 = real(header, claimsFor(issuer, audience, now, { sub: 'u_someone_else' }));
  add('signature swapped from another valid token', `${gh}.${gp}.${other1.split('.')[2]}`, 'bad_signature');
  add('signature truncated by one byte', `${gh}.${gp}.${b64(Buffer.from(gs, 'base64url').subarray(1))}`, 'bad_signature');
  add('signature with one bit flipped', `${gh}.${gp}.${b64(flip(Buffer.from(gs, 'base64url'), 7))}`, 'bad_signature');
  add('signature doubled', `${gh}.${gp}.${b64(Buffer.concat([Buffer.from(gs, 'base64url'), Buffer.from(gs, 'base64url')]))}`, 'bad_signature');

  // --- tampering after signing
  add('payload tampered: sub changed', `${gh}.${json({ ...claims, sub: 'u_admin' })}.${gs}`, 'bad_signature');
  add('payload tampered: roles added', `${gh}.${json({ ...claims, roles: ['admin'] })}.${gs}`, 'bad_signature');
  add('payload tampered: exp extended', `${gh}.${json({ ...claims, exp: now + 86400 })}.${gs}`, 'bad_signature');
  add('header tampered: typ spelled differently', `${json({ alg: m.alg, kid: m.kid, typ: 'AT+JWT' })}.${gp}.${gs}`, 'bad_signature');

  // --- claims
  add('expired an hour ago', real(header, { ...claims, iat: now - 3900, exp: now - 3600 }), 'expired');
  add('expired 2 minutes ago (beyond the skew)', real(header, { ...claims, iat: now - 420, exp: now - 120 }), 'expired');
  add('nbf an hour ahead', real(header, { ...claims, nbf: now + 3600, exp: now + 3900 }), 'not_yet_valid');
  add('iat an hour ahead', real(header, { ...claims, iat: now + 3600, exp: now + 3900 }), 'not_yet_valid');
  add('14-day lifetime', real(header, { ...claims, exp: now + 14 * 86400 }), 'lifetime_too_long');
  add('lifetime of an hour and a second', real(header, { ...claims, exp: now + 3601 }), 'lifetime_too_long');
  add('wrong issuer', real(header, { ...claims, iss: 'https://attacker.example' }), 'wrong_issuer');
  add('issuer with a trailing slash', real(header, { ...claims, iss: issuer + '/' }), 'wrong_issuer');
  add('issuer in other case', real(header, { ...claims, iss: issuer.toUpperCase() }), 'wrong_issuer');
  add('issuer as a prefix', real(header, { ...claims, iss: issuer.slice(0, -1) }), 'wrong_issuer');
  add('wrong audience', real(header, { ...claims, aud: 'someone-else' }), 'wrong_audience');
  add('audience with a suffix', real(header, { ...claims, aud: audience + 'x' }), 'wrong_audience');
  add('audience in other case', real(header, { ...claims, aud: audience.toUpperCase() === audience ? audience + 'X' : audience.toUpperCase() }), 'wrong_audience');
  add('audience array without it', real(header, { ...claims, aud: ['a', 'b'] }), 'wrong_audience');
  add('audience array empty', real(header, { ...claims, aud: [] }), 'wrong_audience');
  add('typ JWT', real({ ...header, typ: 'JWT' }), 'wrong_type');
  add('typ missing', real({ alg: m.alg, kid: m.kid }), 'wrong_type');
  add('typ at+jwt with a space', real({ ...header, typ: 'at+jwt ' }), 'wrong_type');
  add('typ application/jwt', real({ ...header, typ: 'application/jwt' }), 'wrong_type');
  add('typ dpop+jwt', real({ ...header, typ: 'dpop+jwt' }), 'wrong_type');
  for (const claim of ['exp', 'iat', 'iss', 'aud', 'sub', 'jti', 'client_id']) {
    const c = { ...claims };
    delete c[claim];
    add(`${claim} missing`, real(header, c), 'missing_claim');
  }
  add('exp a string', real(header, { ...claims, exp: String(now + 300) }), 'malformed');
  add('exp null', real(header, { ...claims, exp: null }), 'malformed');
  add('sub a number', real(header, { ...claims, sub: 42 }), 'malformed');
  add('roles a string', real(header, { ...claims, roles: 'admin' }), 'malformed');
  add('scope an array', real(header, { ...claims, scope: ['admin'] }), 'malformed');
  add('nbf a string', real(header, { ...claims, nbf: 'now' }), 'malformed');

  // --- size: refused before parsing
  add('oversized: 5,000 bytes, validly signed', real(header, { ...claims, pad: 'x'.repeat(5000) }), 'too_large');
  add('oversized: 1 MiB of garbage', 'a'.repeat(1 << 20), 'too_large');

  // --- shape and encoding
  add('empty string', '', 'malformed');
  add('one segment', gh, 'malformed');
  add('four segments', `${good}.${gs}`, 'malformed');
  add('five segments (JWE shape)', `${gh}.${gp}.${gs}.${gs}.${gs}`, 'malformed');
  add('empty header segment', `.${gp}.${gs}`, 'malformed');
  add('empty payload segment', `${gh}..${gs}`, 'malformed');
  add('padding characters', `${gh}.${gp}.${gs}==`, 'malformed');
  add('base64 (not url) alphabet', `${gh}.${gp}.${gs.replace(/-/g, '+').replace(/_/g, '/')}${/[-_]/.test(gs) ? '' : '+'}`, 'malformed');
  add('whitespace inside', `${gh}. ${gp}.${gs}`, 'malformed');
  add('leading "Bearer "', `Bearer ${good}`, 'malformed');
  add('non-ASCII character', `${gh}.${gp}.${gs}\u00e9`, 'malformed');
  add('non-canonical base64url signature (trailing bits)', `${gh}.${gp}.${nonCanonical(gs)}`, 'malformed');
  add('non-canonical base64url payload (trailing bits)', `${gh}.${nonCanonical(gp)}.${gs}`, 'malformed');
  add('header not JSON', real(b64('{alg:EdDSA')), 'malformed');
  add('header a JSON array', real(json([m.alg, m.kid])), 'malformed');
  add('header JSON null', real(json(null)), 'malformed');
  add('header not UTF-8', real(b64(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), 'malformed');
  add('payload not JSON (signed)', real(header, b64('not json')), 'malformed');
  add('payload a JSON array (signed)', real(header, json([claims])), 'malformed');
  add('payload not UTF-8 (signed)', real(header, b64(Buffer.concat([Buffer.from(JSON.stringify(claims).slice(0, -1)), Buffer.from(',"x":"\xff"}', 'latin1')]))), 'malformed');
  add('JSON with a BOM (signed)', real(header, b64('\ufeff' + JSON.stringify(claims))), 'malformed');
  return out;
}

function flip(buf: Buffer, bit: number): Buffer {
  const b = Buffer.from(buf);
  b[b.length >> 1]! ^= 1 << bit;
  return b;
}

/** The same bytes spelled with non-zero unused bits in the last character (when there are any). */
function nonCanonical(s: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const rest = s.length % 4;
  if (rest === 0) return s + 'A'; // length % 4 == 1 is never canonical
  const i = alphabet.indexOf(s[s.length - 1]!);
  return s.slice(0, -1) + alphabet[i | 1];
}
