/** The algorithms this package verifies: asymmetric only, and only these three. */
export type Algorithm = 'EdDSA' | 'ES256' | 'RS256';

export const ALGORITHMS: readonly Algorithm[] = ['EdDSA', 'ES256', 'RS256'];

/** The protected header of an accepted token (only these members are accepted). */
export interface TokenHeader {
  readonly alg: Algorithm;
  readonly kid: string;
  readonly typ: string;
}

/** Claims of an RFC 9068 access token as latchkey mints them. Frozen: shared by the verified-token cache. */
export interface AccessTokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly jti: string;
  readonly client_id: string;
  readonly nbf?: number;
  /** Public handle of the session the token derives from. */
  readonly sid?: string;
  /** Space-separated scopes. */
  readonly scope?: string;
  readonly roles?: readonly string[];
  readonly [claim: string]: unknown;
}

/** A JSON Web Key as found in a JWKS; only public members are read. */
export interface JWK {
  kty?: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  [member: string]: unknown;
}

export interface JSONWebKeySet {
  keys: JWK[];
}
