/**
 * The verified-token cache: a token whose signature and claims were checked
 * is answered from memory the next time it is seen (a gateway sends the same
 * 60-second token many times). A hit is the exact token string that
 * verified (compared in full). Bounded, first-in first-out: only verified
 * tokens get in, so an attacker cannot fill it with forgeries, and a hit
 * costs no reordering (least-recently-used would move the entry on every hit). The verifier re-checks exp, key and revocation on
 * every hit.
 */
import type { VerifyKey } from './keys/jwk.js';
import type { AccessTokenClaims, TokenHeader } from './types.js';

export interface CacheEntry {
  /** The exact token that verified. */
  readonly token: string;
  readonly claims: AccessTokenClaims;
  readonly header: TokenHeader;
  readonly key: VerifyKey;
  /** Epoch ms at which the token stops being accepted (exp + clock tolerance). */
  readonly expiresAtMs: number;
}

/**
 * Entries are found by the token's last 43 characters (256 bits of its
 * signature) and then compared in full: hashing a fresh 400-700 character
 * string for a Map lookup costs about a microsecond, as much as the rest of
 * a hit (bench/verify.ts). Two tokens with the same tail can only be crafted;
 * the full comparison turns that into a miss.
 */
const TAIL = 43;

export class TokenCache {
  private readonly map = new Map<string, CacheEntry>();
  /**
   * Insertion order in a ring: evicting through the Map's own iterator would
   * walk over every deleted slot left at its head (measured: several
   * microseconds per insert at 10,000 entries).
   */
  private readonly ring: (string | undefined)[];
  private pos = 0;

  constructor(readonly maxEntries: number) {
    this.ring = new Array<string | undefined>(maxEntries).fill(undefined);
  }

  get(token: string): CacheEntry | undefined {
    const e = this.map.get(token.slice(-TAIL));
    return e !== undefined && e.token === token ? e : undefined;
  }

  set(entry: CacheEntry): void {
    const tail = entry.token.slice(-TAIL);
    if (this.map.has(tail)) {
      this.map.set(tail, entry);
      return;
    }
    // the oldest insertion goes (a no-op if it was already deleted)
    const old = this.ring[this.pos];
    if (old !== undefined) this.map.delete(old);
    this.ring[this.pos] = tail;
    this.pos = this.pos + 1 === this.maxEntries ? 0 : this.pos + 1;
    this.map.set(tail, entry);
  }

  delete(token: string): void {
    const tail = token.slice(-TAIL);
    if (this.map.get(tail)?.token === token) this.map.delete(tail);
  }

  get size(): number {
    return this.map.size;
  }
}
