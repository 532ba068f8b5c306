/**
 * The revocation hook. A verifier consults its RevocationSource synchronously
 * on every verification, cache hits included, so a revoked session is refused
 * on its next request without a network call. The revocation feed fills a
 * source like `createRevocationList()` from the issuer's events.
 */
import type { AccessTokenClaims, TokenHeader } from './types.js';

/** Why a token is revoked: 'session', 'subject', 'key', or a source's own word. */
export type RevokedReason = string;

/** What `createVerifier({ revocation })` consults. Must be synchronous and cheap: it runs per request. */
export interface RevocationSource {
  /** The reason this token is revoked, or undefined when it is not. */
  check(claims: AccessTokenClaims, header: TokenHeader): RevokedReason | undefined;
  /** False when the source may have missed events (e.g. its feed is down too long): the verifier then refuses every token with `revocation_unavailable`. */
  readonly healthy: boolean;
  /**
   * Optional: asked, per token, while the source is not healthy, instead of failing closed
   * (e.g. RFC 7662 introspection). Resolves to a reason when the token is revoked; rejects
   * when it cannot tell (the verifier then refuses with `revocation_unavailable`).
   */
  introspect?(token: string): Promise<RevokedReason | undefined>;
  /**
   * Optional: a count that goes up each time a signing key is newly revoked.
   * An issuer that retires its key in an emergency signs with a new one at
   * once; a verifier that meets an unknown `kid` after this count changed
   * refetches the JWKS even within its cooldown (once per change), instead
   * of refusing the new key's tokens until the cooldown ends.
   */
  readonly keysRevoked?: number;
}

/** An in-memory RevocationSource. Times are Unix seconds. */
export interface RevocationList extends RevocationSource {
  healthy: boolean;
  /** Refuse every token of session `sid`; the entry can go after `until` (when its last token expires). */
  revokeSession(sid: string, until: number): void;
  /** Refuse tokens of `sub` issued before `issuedBefore` (password change, account disabled); kept until `until`. */
  revokeSubject(sub: string, issuedBefore: number, until: number): void;
  /** Refuse every token signed by key `kid` (a compromised key); until `until` (default: for good). Counted in `keysRevoked`. */
  revokeKey(kid: string, until?: number): void;
  readonly keysRevoked: number;
  /** Forget everything (the feed was reset). */
  clear(): void;
  /** Drop entries whose `until` has passed; called by the revoke methods too, at most once a second. */
  prune(nowSeconds?: number): void;
  /** Entries held (sessions + subjects + keys). */
  readonly size: number;
}

/** A RevocationList held in memory, pruned as its entries expire. */
export function createRevocationList(): RevocationList {
  const sessions = new Map<string, number>();
  const subjects = new Map<string, { issuedBefore: number; until: number }>();
  const keys = new Map<string, number>();
  let lastPrune = 0;
  let keysRevoked = 0;
  const nowSeconds = () => Date.now() / 1000;

  const list: RevocationList = {
    healthy: true,
    check(claims, header) {
      if (claims.sid !== undefined && sessions.has(claims.sid)) return 'session';
      if (subjects.size !== 0) {
        const s = subjects.get(claims.sub);
        if (s !== undefined && claims.iat < s.issuedBefore) return 'subject';
      }
      if (keys.size !== 0 && keys.has(header.kid)) return 'key';
      return undefined;
    },
    revokeSession(sid, until) {
      sessions.set(sid, Math.max(until, sessions.get(sid) ?? 0));
      maybePrune();
    },
    revokeSubject(sub, issuedBefore, until) {
      const old = subjects.get(sub);
      subjects.set(sub, {
        issuedBefore: Math.max(issuedBefore, old?.issuedBefore ?? 0),
        until: Math.max(until, old?.until ?? 0),
      });
      maybePrune();
    },
    get keysRevoked() {
      return keysRevoked;
    },
    revokeKey(kid, until = Infinity) {
      // a key already revoked (the feed's snapshot repeats it) is no news: no refetch for it
      if (!keys.has(kid)) keysRevoked++;
      keys.set(kid, Math.max(until, keys.get(kid) ?? 0));
    },
    clear() {
      sessions.clear();
      subjects.clear();
      keys.clear();
    },
    prune(now = nowSeconds()) {
      lastPrune = now;
      for (const [sid, until] of sessions) if (until < now) sessions.delete(sid);
      for (const [sub, s] of subjects) if (s.until < now) subjects.delete(sub);
      for (const [kid, until] of keys) if (until < now) keys.delete(kid);
    },
    get size() {
      return sessions.size + subjects.size + keys.size;
    },
  };
  function maybePrune(): void {
    const now = nowSeconds();
    if (now - lastPrune >= 1) list.prune(now);
  }
  return list;
}
