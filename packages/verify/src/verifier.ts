/**
 * createVerifier: the whole verification of an access token, in this order:
 *
 *   size cap → verified-token cache (exp, key, revocation re-checked) →
 *   shape and canonical base64url → header (members, alg, typ, kid) →
 *   key by kid (alg fixed by the key) → signature → claims → revocation →
 *   cache.
 *
 * On Node the path is synchronous once the keys are loaded; `verify` wraps it
 * in a promise so every runtime sees one API.
 */
import { loadBackend, type Backend, type BackendChoice } from './crypto/backend.js';
import { fingerprint, TokenCache } from './cache.js';
import { VerifyError } from './errors.js';
import { checkCompact, parseHeader } from './jws/compact.js';
import { checkClaims, type ClaimRules } from './jwt/claims.js';
import type { VerifyKey } from './keys/jwk.js';
import { KeyStore, remoteLoader, staticLoader } from './keys/store.js';
import { settings, type Settings, type VerifierOptions } from './options.js';
import type { RevocationSource } from './revocation.js';
import type { AccessTokenClaims, TokenHeader } from './types.js';

export interface Verifier {
  /**
   * Resolve to the token's claims, or reject with a VerifyError.
   * @example const claims = await verifier.verify(token); // claims.sub, claims.sid, claims.scope
   */
  verify(token: string): Promise<AccessTokenClaims>;
  /**
   * The same check without a promise when none is needed: the claims, or a
   * thrown VerifyError; a promise only when keys must be fetched or Web Crypto
   * awaited. For adapters on the request path (a cache hit costs no microtask).
   */
  verifyNow(token: string): AccessTokenClaims | Promise<AccessTokenClaims>;
  /** The issuer this verifier accepts. */
  readonly issuer: string;
}

/** Header segments are shared by every token of a key: parse each once (bounded; only valid ones). */
const HEADER_CACHE_SIZE = 64;

class TokenVerifier implements Verifier {
  readonly issuer: string;
  private readonly s: Settings;
  private readonly rules: ClaimRules;
  private readonly keys: KeyStore;
  private readonly cache: TokenCache | undefined;
  private readonly revocation: RevocationSource | undefined;
  private readonly headers = new Map<string, TokenHeader>();
  /** The header segment of the last token that got past parsing, and its header. */
  private lastSegment = '';
  private lastHeader: TokenHeader | undefined;
  /** The revocation source's `keysRevoked` when an unknown kid last asked for keys. */
  private keysRevokedSeen: number | undefined;
  private readonly backendP: Promise<Backend>;
  private backend: Backend | undefined;

  constructor(options: VerifierOptions, choice: BackendChoice) {
    const s = settings(options);
    this.s = s;
    this.issuer = s.issuer;
    this.rules = { issuer: s.issuer, audiences: s.audiences, clockTolerance: s.clockTolerance, maxLifetimeSeconds: s.maxLifetimeSeconds };
    this.backendP = loadBackend(choice).then((b) => (this.backend = b));
    // keep an unobserved rejection (no Web Crypto on this runtime) from crashing the process: verify reports it
    this.backendP.catch(() => undefined);
    const loader =
      s.source.kind === 'static'
        ? staticLoader(s.source.jwks)
        : remoteLoader({
            issuer: s.issuer,
            jwksUri: s.source.jwksUri,
            fetch: s.fetch,
            timeoutMs: s.timeoutMs,
            defaultAgeMs: s.defaultAgeMs,
            minAgeMs: s.cooldownMs,
            maxAgeMs: s.maxAgeMs,
          });
    this.keys = new KeyStore(loader, {
      backend: () => this.backendP,
      accepted: s.accepted,
      cooldownMs: s.cooldownMs,
      maxStaleMs: s.maxStaleMs,
      now: s.now,
    });
    this.cache = s.cacheEntries > 0 ? new TokenCache(s.cacheEntries) : undefined;
    this.revocation = s.revocation;
    this.keysRevokedSeen = s.revocation?.keysRevoked;
  }

  verify(token: string): Promise<AccessTokenClaims> {
    try {
      const r = this.check(token);
      return r instanceof Promise ? r : Promise.resolve(r);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  verifyNow(token: string): AccessTokenClaims | Promise<AccessTokenClaims> {
    return this.check(token);
  }

  /** The claims, or a promise of them when keys or the Web Crypto result must be awaited. Throws VerifyError. */
  private check(token: string): AccessTokenClaims | Promise<AccessTokenClaims> {
    if (typeof token !== 'string') throw new VerifyError('malformed', 'not a string');
    // before any parsing: a huge token costs nothing but this comparison
    if (token.length > this.s.maxTokenBytes) throw new VerifyError('too_large');
    const now = this.s.now();
    const cache = this.cache;
    let fp = 0;
    if (cache !== undefined) {
      fp = fingerprint(token);
      const e = cache.get(token, fp);
      if (e !== undefined) {
        if (now >= e.expiresAtMs) {
          cache.delete(token, fp);
          throw new VerifyError('expired');
        }
        const keys = this.keys;
        if (!e.key.removed && now <= keys.usableUntil) {
          if (now > keys.freshUntil) keys.revalidate(now);
          if (this.revocation !== undefined) {
            const p = this.checkRevocation(token, e.claims, e.header);
            if (p !== undefined) return p.then(() => e.claims);
          }
          return e.claims;
        }
        // its key left the JWKS, or the keys are too stale: verify afresh (and refuse, or fail closed)
        cache.delete(token, fp);
      }
    }
    const backend = this.backend;
    if (backend === undefined) return this.backendP.then((b) => this.full(token, fp, b, this.s.now()));
    return this.full(token, fp, backend, now);
  }

  /**
   * A verification in full. The token is cut into no strings but its header
   * segment (compared with the last one) and its payload: the backend reads
   * the signing input and the signature from the token itself.
   */
  private full(token: string, fp: number, backend: Backend, now: number): AccessTokenClaims | Promise<AccessTokenClaims> {
    const dot1 = token.indexOf('.');
    const dot2 = checkCompact(token, dot1);
    const header = this.header(token, dot1, backend);
    const key = this.key(header.kid, now);
    if (key instanceof Promise) return key.then((k) => this.signature(token, fp, dot1, dot2, header, k, backend, this.s.now()));
    return this.signature(token, fp, dot1, dot2, header, key, backend, now);
  }

  /** The header of token[0, dot1): the last one seen is recognised by comparison, others parsed once each. */
  private header(token: string, dot1: number, backend: Backend): TokenHeader {
    const last = this.lastHeader;
    const segment = token.slice(0, dot1);
    // slicing and comparing measured several times faster here than token.startsWith(lastSegment)
    if (last !== undefined && segment === this.lastSegment) return last;
    let h = this.headers.get(segment);
    if (h === undefined) {
      h = parseHeader(segment, backend, this.s.accepted);
      if (this.headers.size >= HEADER_CACHE_SIZE) this.headers.clear();
      this.headers.set(segment, h);
    }
    this.lastSegment = segment;
    this.lastHeader = h;
    return h;
  }

  private key(kid: string, now: number): VerifyKey | Promise<VerifyKey> {
    const ks = this.keys;
    if (now > ks.usableUntil) {
      // no keys yet, or the last-known ones are past their bound: wait for a fetch, or fail closed
      const p = ks.refresh(now);
      if (p === undefined) throw new VerifyError('jwks_unavailable', ks.lastError);
      return p.then(() => {
        if (this.s.now() > ks.usableUntil) throw new VerifyError('jwks_unavailable', ks.lastError);
        return this.lookup(kid, this.s.now(), false);
      });
    }
    if (now > ks.freshUntil) ks.revalidate(now);
    return this.lookup(kid, now, true);
  }

  private lookup(kid: string, now: number, mayFetch: boolean): VerifyKey | Promise<VerifyKey> {
    const k = this.keys.keys.get(kid);
    if (k !== undefined) return k;
    if (mayFetch) {
      // a new key may have been published since: one fetch per cooldown at most, shared by all waiting
      let p = this.keys.refresh(now);
      // ...or sooner, once, after the issuer revoked a key: it is signing with a new one (emergency rotation)
      const revoked = this.revocation?.keysRevoked;
      if (p === undefined && revoked !== undefined && revoked !== this.keysRevokedSeen) p = this.keys.refresh(now, true);
      if (revoked !== undefined) this.keysRevokedSeen = revoked;
      if (p !== undefined) return p.then(() => this.lookup(kid, this.s.now(), false));
    }
    throw new VerifyError('unknown_key');
  }

  private signature(
    token: string,
    fp: number,
    dot1: number,
    dot2: number,
    header: TokenHeader,
    key: VerifyKey,
    backend: Backend,
    now: number,
  ): AccessTokenClaims | Promise<AccessTokenClaims> {
    // the key fixes the algorithm; a header naming another one is refused, never followed
    if (header.alg !== key.alg) throw new VerifyError('bad_algorithm', `header ${header.alg}, key ${key.alg}`);
    if (dot2 === token.length - 1) throw new VerifyError('bad_signature', 'no signature');
    const ok = backend.verify(key.alg, key.handle, token, dot2, key.sigBytes);
    if (ok === true) return this.accept(token, fp, dot1, dot2, header, key, backend, now);
    if (ok === false) throw new VerifyError('bad_signature');
    return ok.then((v) => {
      if (!v) throw new VerifyError('bad_signature');
      return this.accept(token, fp, dot1, dot2, header, key, backend, this.s.now());
    });
  }

  private accept(
    token: string,
    fp: number,
    dot1: number,
    dot2: number,
    header: TokenHeader,
    key: VerifyKey,
    backend: Backend,
    now: number,
  ): AccessTokenClaims | Promise<AccessTokenClaims> {
    const text = backend.text(token.slice(dot1 + 1, dot2));
    if (text === undefined) throw new VerifyError('malformed', 'payload not UTF-8');
    const claims = checkClaims(text, this.rules, now);
    if (this.revocation !== undefined) {
      const p = this.checkRevocation(token, claims, header);
      if (p !== undefined) {
        // answered by introspection: not cached, the next request asks again until the feed is back
        return p.then(() => claims);
      }
    }
    // cached from its second verification on (see cache.ts)
    const cache = this.cache;
    if (cache !== undefined && cache.admit(fp)) {
      cache.set({ token, claims, header, key, expiresAtMs: (claims.exp + this.s.clockTolerance) * 1000 }, fp);
    }
    return claims;
  }

  /** Throws when revoked; a promise only while the source is unhealthy and can introspect. */
  private checkRevocation(token: string, claims: AccessTokenClaims, header: TokenHeader): Promise<void> | undefined {
    const r = this.revocation!;
    if (!r.healthy) {
      // a source that may have missed events cannot vouch for any token: ask, or fail closed
      if (r.introspect === undefined) throw new VerifyError('revocation_unavailable');
      return r.introspect(token).then(
        (reason) => {
          if (reason !== undefined) throw new VerifyError('revoked', reason);
        },
        (err: unknown) => {
          if (err instanceof VerifyError) throw err;
          throw new VerifyError('revocation_unavailable', err instanceof Error ? err.message : undefined);
        },
      );
    }
    const reason = r.check(claims, header);
    if (reason !== undefined) throw new VerifyError('revoked', reason);
    return undefined;
  }
}

/**
 * A verifier for access tokens of `issuer` meant for `audience`.
 * @example
 * const verifier = createVerifier({ issuer: 'https://auth.example.com', audience: 'orders' });
 * const claims = await verifier.verify(token);
 */
export function createVerifier(options: VerifierOptions): Verifier {
  return new TokenVerifier(options, 'auto');
}

/** The same with a chosen crypto backend: tests run every check on the Web Crypto path too. Not exported by the package. */
export function createVerifierWithBackend(options: VerifierOptions, backend: BackendChoice): Verifier {
  return new TokenVerifier(options, backend);
}
