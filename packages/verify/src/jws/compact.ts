/**
 * Compact JWS parsing: shape, canonical base64url, and the protected header.
 * Everything here runs before a key is looked up, so it is strict and cheap.
 */
import type { Backend } from '../crypto/backend.js';
import { VerifyError } from '../errors.js';
import { KID } from '../keys/jwk.js';
import type { Algorithm, TokenHeader } from '../types.js';
import { isBase64url, isCanonical } from './base64url.js';

/** Three base64url segments; the signature may be empty here so that a stripped one reads as bad_signature. */
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface Segments {
  header: string;
  payload: string;
  signature: string;
  /** Index of the second dot: the signing input is token.slice(0, dot2). */
  dot2: number;
}

/**
 * Check a token's compact form (three base64url segments, the last two
 * canonical; the header's own spelling is checked when it is parsed) without
 * cutting it up; returns the index of the second dot, given the first
 * (token.indexOf('.')). Throws `malformed`.
 */
export function checkCompact(token: string, dot1: number): number {
  if (!COMPACT.test(token)) throw new VerifyError('malformed', 'not a compact JWS');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (!isCanonical(token, dot1 + 1, dot2) || !isCanonical(token, dot2 + 1)) throw new VerifyError('malformed', 'non-canonical base64url');
  return dot2;
}

/** Split a token into its three segments, or throw `malformed`. */
export function split(token: string): Segments {
  const dot1 = token.indexOf('.');
  const dot2 = checkCompact(token, dot1);
  return { header: token.slice(0, dot1), payload: token.slice(dot1 + 1, dot2), signature: token.slice(dot2 + 1), dot2 };
}

/** RFC 9068 §4: "at+jwt", or the full media type; media types compare case-insensitively. */
function isAccessTokenType(typ: string): boolean {
  const t = typ.toLowerCase();
  return t === 'at+jwt' || t === 'application/at+jwt';
}

/**
 * Decode and check a protected header. Only alg, kid and typ are accepted:
 * `crit` names extensions this verifier does not implement, and `jku`, `x5u`,
 * `jwk`, `x5c` would let the token choose its own key. Order of checks (and
 * so which code a bad header gets): members, alg, typ, kid.
 */
export function parseHeader(
  segment: string,
  backend: Backend,
  accepted: ReadonlySet<Algorithm>,
  isType: (typ: string) => boolean = isAccessTokenType,
): TokenHeader {
  if (!isBase64url(segment)) throw new VerifyError('malformed', 'non-canonical base64url');
  const text = backend.text(segment);
  if (text === undefined) throw new VerifyError('malformed', 'header not UTF-8');
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch {
    throw new VerifyError('malformed', 'header not JSON');
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw new VerifyError('malformed', 'header not an object');
  const o = h as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (name !== 'alg' && name !== 'kid' && name !== 'typ') throw new VerifyError('bad_header', `header member ${name.slice(0, 32)}`);
  }
  const { alg, kid, typ } = o;
  if (typeof alg !== 'string' || !accepted.has(alg as Algorithm)) throw new VerifyError('bad_algorithm', `alg ${String(alg).slice(0, 32)}`);
  if (typeof typ !== 'string' || !isType(typ)) throw new VerifyError('wrong_type', `typ ${String(typ).slice(0, 32)}`);
  if (typeof kid !== 'string' || !KID.test(kid)) throw new VerifyError('unknown_key', 'kid absent or not a plain name');
  return Object.freeze({ alg: alg as Algorithm, kid, typ });
}
