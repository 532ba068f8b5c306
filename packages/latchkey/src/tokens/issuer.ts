/**
 * Access tokens per RFC 9068: a JWS with header {alg, kid, typ: "at+jwt"} and
 * claims iss, sub, aud, exp, iat, jti, sid, client_id (+ roles, scope).
 *
 * Signing uses node:crypto directly rather than jose's SignJWT: the token
 * endpoint and the gateway sign on the request path, and jose goes through
 * WebCrypto's async API (bench/results/tokens.md has both rates on the same
 * key). Verification (introspection) uses jose.
 */
import { randomBytes, sign } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type { KeyService, Signer } from '../keys/service.js';
import type { User } from '../store/store.js';

export interface MintRequest {
  user: Pick<User, 'id' | 'roles' | 'tokensNotBefore'>;
  /** Public handle of the session the token derives from (`sid`). */
  sessionHandle: string;
  audience: string;
  /** Default: tokens.accessTokenLifetimeSeconds; at most the issuer's maximum. */
  lifetimeSeconds?: number;
  /** More claims (e.g. a per-audience `scope`); registered claims cannot be overridden. */
  extraClaims?: Record<string, unknown>;
  /** `client_id`; default: the first-party client. */
  clientId?: string;
}

export interface MintedToken {
  token: string;
  /** Unix seconds. */
  expiresAt: number;
  jti: string;
  kid: string;
}

export interface AccessTokenClaims extends JWTPayload {
  sub: string;
  sid: string;
  client_id: string;
  exp: number;
  iat: number;
  jti: string;
  roles?: string[];
  scope?: string;
}

export interface IssuerSettings {
  issuer: string;
  defaultLifetimeSeconds: number;
  /** No token lives longer: keys stay published this long after they stop signing. */
  maxLifetimeSeconds: number;
  clientId: string;
  scope: string | undefined;
}

const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'sid', 'client_id', 'roles', 'cnf']);

/** Mints and verifies access tokens. The gateway and the token endpoint share it. */
export class TokenIssuer {
  private readonly headers = new Map<string, string>();
  private verifyKeys: { body: string; get: ReturnType<typeof createLocalJWKSet> } | undefined;

  constructor(
    private readonly keys: KeyService,
    readonly settings: IssuerSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Sign an access token for `user` in session `sessionHandle`.
   * @example const { token, expiresAt } = await issuer.mint({ user, sessionHandle: 'AbC…', audience: 'orders', lifetimeSeconds: 60 });
   */
  async mint(req: MintRequest): Promise<MintedToken> {
    return this.mintSync(req);
  }

  /** The same, synchronously (signing is CPU work; the async form leaves room for remote signers). */
  mintSync(req: MintRequest): MintedToken {
    const lifetime = req.lifetimeSeconds ?? this.settings.defaultLifetimeSeconds;
    if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > this.settings.maxLifetimeSeconds) {
      throw new RangeError(`token lifetime must be 1..${this.settings.maxLifetimeSeconds} s`);
    }
    const signer = this.keys.signer();
    // never before the user's cutoff: a token minted in the second after a role change must
    // not look like one minted before it (docs/revocation.md)
    const iat = Math.max(Math.floor(this.now() / 1000), req.user.tokensNotBefore ?? 0);
    const exp = iat + lifetime;
    const jti = randomBytes(16).toString('base64url');
    // key order is the wire order: registered claims first, extras last
    const claims: Record<string, unknown> = {
      iss: this.settings.issuer,
      sub: req.user.id,
      aud: req.audience,
      exp,
      iat,
      jti,
      sid: req.sessionHandle,
      client_id: req.clientId ?? this.settings.clientId,
    };
    if (req.user.roles.length) claims.roles = req.user.roles;
    if (this.settings.scope !== undefined) claims.scope = this.settings.scope;
    if (req.extraClaims) {
      for (const [k, v] of Object.entries(req.extraClaims)) {
        if (RESERVED.has(k)) throw new RangeError(`extra claim ${k} would override a registered claim`);
        claims[k] = v;
      }
    }
    const input = `${this.header(signer)}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return { token: `${input}.${signature(signer, input)}`, expiresAt: exp, jti, kid: signer.kid };
  }

  /**
   * Verify one of our access tokens against the keys published now (a retired
   * key's tokens fail), pinned to their algorithms, `typ` and issuer. Throws
   * jose's errors (ERR_JWT_EXPIRED, ERR_JWKS_NO_MATCHING_KEY, ...).
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    const jwks = this.keys.jwks();
    if (this.verifyKeys?.body !== jwks.body) {
      this.verifyKeys = { body: jwks.body, get: createLocalJWKSet({ keys: jwks.keys as JWK[] }) };
    }
    const { payload } = await jwtVerify(token, this.verifyKeys.get, {
      issuer: this.settings.issuer,
      typ: 'at+jwt',
      algorithms: this.keys.algorithms(),
      requiredClaims: ['sub', 'aud', 'exp', 'iat', 'jti', 'sid', 'client_id'],
      currentDate: new Date(this.now()),
    });
    return payload as AccessTokenClaims;
  }

  private header(signer: Signer): string {
    let h = this.headers.get(signer.kid);
    if (!h) {
      h = Buffer.from(JSON.stringify({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })).toString('base64url');
      this.headers.set(signer.kid, h);
    }
    return h;
  }
}

/** The JWS signature of `input` (header.payload) with `signer`, base64url. */
export function signature(signer: Signer, input: string): string {
  const data = Buffer.from(input);
  switch (signer.alg) {
    case 'EdDSA':
      return sign(null, data, signer.key).toString('base64url');
    case 'ES256':
      // JWS wants the raw r||s form, not DER
      return sign('sha256', data, { key: signer.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    case 'RS256':
      return sign('sha256', data, signer.key).toString('base64url');
  }
}
