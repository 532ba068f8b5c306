/**
 * Minted gateway tokens, per (session, audience), reused until shortly before
 * expiry. An entry also remembers the roles it was minted with: after a role
 * change the next request mints afresh instead of forwarding stale claims.
 */
export interface CachedToken {
  token: string;
  /** Unix seconds */
  expiresAt: number;
  /** roles the token carries, joined; compared with the user's current roles */
  roles: string;
}

export class TokenCache {
  /** session handle -> audience -> token; Map order gives least-recently-set eviction */
  private readonly bySession = new Map<string, Map<string, CachedToken>>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly maxSessions = 50_000,
    /** reuse a token only while it has at least this fraction of its lifetime left */
    private readonly minRemaining = 0.25,
  ) {}

  get(handle: string, audience: string, roles: string, now: number, lifetime: number): string | undefined {
    const e = this.bySession.get(handle)?.get(audience);
    if (e && e.roles === roles && e.expiresAt - now > lifetime * this.minRemaining) {
      this.hits++;
      return e.token;
    }
    this.misses++;
    return undefined;
  }

  set(handle: string, audience: string, entry: CachedToken): void {
    let m = this.bySession.get(handle);
    if (!m) {
      m = new Map();
      this.bySession.set(handle, m);
      if (this.bySession.size > this.maxSessions) this.bySession.delete(this.bySession.keys().next().value!);
    }
    m.set(audience, entry);
  }

  /** Forget every token of a session (it ended). */
  forgetSession(handle: string): void {
    this.bySession.delete(handle);
  }

  get sessions(): number {
    return this.bySession.size;
  }
}
