/**
 * One error type with a stable `code` callers switch on, and the HTTP answer
 * each code maps to (RFC 6750). Messages are fixed per code: they never echo
 * token contents or internals.
 */

/** Every reason `verify` refuses a token. */
export type VerifyErrorCode =
  /** No bearer token in the request (adapters only). */
  | 'missing_token'
  /** Longer than `maxTokenBytes`: refused before any parsing. */
  | 'too_large'
  /** Not a compact JWS, not canonical base64url, not JSON, or a claim of the wrong type. */
  | 'malformed'
  /** A header member other than alg, kid and typ (crit, jku, jwk, x5u, x5c, ...). */
  | 'bad_header'
  /** `alg` is not one this verifier accepts (`none`, HS*, ...) or not the key's algorithm. */
  | 'bad_algorithm'
  /** `typ` is not `at+jwt` (RFC 9068). */
  | 'wrong_type'
  /** No published key has this `kid` (after at most one refetch per cooldown). */
  | 'unknown_key'
  /** The signature does not verify with the key. */
  | 'bad_signature'
  /** A claim RFC 9068 requires is absent. */
  | 'missing_claim'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  /** `nbf` or `iat` is in the future, beyond the clock tolerance. */
  | 'not_yet_valid'
  /** `exp - iat` exceeds `maxLifetimeSeconds`. */
  | 'lifetime_too_long'
  /** The revocation source says this session, subject or key is revoked. */
  | 'revoked'
  /** The revocation source is unhealthy: refused rather than risk a revoked token (fail closed). */
  | 'revocation_unavailable'
  /** No usable signing keys: the JWKS could not be fetched and the last-known keys are too old. */
  | 'jwks_unavailable'
  /** Valid token without a scope or role the route requires (adapters only). */
  | 'insufficient_scope';

const DESCRIPTIONS: Record<VerifyErrorCode, string> = {
  missing_token: 'bearer token required',
  too_large: 'token too large',
  malformed: 'token malformed',
  bad_header: 'token header not accepted',
  bad_algorithm: 'token algorithm not accepted',
  wrong_type: 'token type must be at+jwt',
  unknown_key: 'token signing key unknown',
  bad_signature: 'token signature invalid',
  missing_claim: 'token lacks a required claim',
  wrong_issuer: 'token issuer not accepted',
  wrong_audience: 'token audience not accepted',
  expired: 'token expired',
  not_yet_valid: 'token not yet valid',
  lifetime_too_long: 'token lifetime too long',
  revoked: 'token revoked',
  revocation_unavailable: 'revocation data unavailable',
  jwks_unavailable: 'signing keys unavailable',
  insufficient_scope: 'token lacks the required scope or role',
};

/** Why a token was refused. `code` is stable; `status` is the HTTP status adapters answer with. */
export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  /**
   * 401 for token problems, 403 for `insufficient_scope`, 503 when the
   * verifier itself cannot decide (keys or revocation data unavailable): a
   * client told 401 would refresh its token and hammer an issuer that is down.
   */
  readonly status: 401 | 403 | 503;

  constructor(
    readonly code: VerifyErrorCode,
    /** Extra detail for logs (never sent to clients by the adapters). */
    readonly detail?: string,
  ) {
    super(DESCRIPTIONS[code]);
    this.status = code === 'insufficient_scope' ? 403 : code === 'jwks_unavailable' || code === 'revocation_unavailable' ? 503 : 401;
  }

  /** The fixed, client-safe description of this code. */
  get description(): string {
    return DESCRIPTIONS[this.code];
  }
}
