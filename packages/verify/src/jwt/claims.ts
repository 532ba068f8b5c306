/**
 * Claim checks shared by every backend (RFC 9068 §4, RFC 7519 §4.1). They run
 * only after the signature verified: a forged token learns nothing from them.
 */
import { VerifyError } from '../errors.js';
import type { AccessTokenClaims } from '../types.js';

export interface ClaimRules {
  issuer: string;
  audiences: ReadonlySet<string>;
  /** Seconds. */
  clockTolerance: number;
  /** Seconds: the longest exp - iat accepted. */
  maxLifetimeSeconds: number;
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Parse the payload JSON and check it; returns frozen claims or throws a VerifyError. */
export function checkClaims(text: string, rules: ClaimRules, nowMs: number): AccessTokenClaims {
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch {
    throw new VerifyError('malformed', 'payload not JSON');
  }
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new VerifyError('malformed', 'payload not an object');
  // named reads: one property load each (a loop over the names would be a megamorphic keyed load per name)
  const { iss, sub, aud, exp, iat, nbf, jti, client_id, sid, scope, roles } = c as Record<string, unknown>;
  if (iss === undefined) throw new VerifyError('missing_claim', 'iss');
  if (sub === undefined) throw new VerifyError('missing_claim', 'sub');
  if (aud === undefined) throw new VerifyError('missing_claim', 'aud');
  if (exp === undefined) throw new VerifyError('missing_claim', 'exp');
  if (iat === undefined) throw new VerifyError('missing_claim', 'iat');
  if (jti === undefined) throw new VerifyError('missing_claim', 'jti');
  if (client_id === undefined) throw new VerifyError('missing_claim', 'client_id');
  if (
    typeof iss !== 'string' ||
    typeof sub !== 'string' ||
    typeof jti !== 'string' ||
    typeof client_id !== 'string' ||
    !(typeof aud === 'string' || isStrings(aud)) ||
    !isTime(exp) ||
    !isTime(iat) ||
    (nbf !== undefined && !isTime(nbf)) ||
    (sid !== undefined && typeof sid !== 'string') ||
    (scope !== undefined && typeof scope !== 'string') ||
    (roles !== undefined && !isStrings(roles))
  ) {
    throw new VerifyError('malformed', 'claim of the wrong type');
  }
  if (iss !== rules.issuer) throw new VerifyError('wrong_issuer');
  if (typeof aud === 'string' ? !rules.audiences.has(aud) : !aud.some((a) => rules.audiences.has(a))) {
    throw new VerifyError('wrong_audience');
  }
  const now = nowMs / 1000;
  const skew = rules.clockTolerance;
  if (exp <= now - skew) throw new VerifyError('expired');
  if (nbf !== undefined && nbf > now + skew) throw new VerifyError('not_yet_valid', 'nbf');
  if (iat > now + skew) throw new VerifyError('not_yet_valid', 'iat');
  if (exp - iat > rules.maxLifetimeSeconds) throw new VerifyError('lifetime_too_long');
  return deepFreeze(c) as AccessTokenClaims;
}

/**
 * Claims are shared by every hit of the verified-token cache: no caller may
 * change them for the next. Walks own properties with for-in (JSON.parse
 * objects have no inherited enumerable ones unless Object.prototype was
 * polluted: hasOwn keeps such a value out) rather than Object.values, which
 * allocates an array per object.
 */
function deepFreeze(v: object): object {
  const o = v as Record<string, unknown>;
  for (const k in o) {
    const x = o[k];
    if (typeof x === 'object' && x !== null && !Object.isFrozen(x) && Object.hasOwn(o, k)) deepFreeze(x);
  }
  return Object.freeze(v);
}
