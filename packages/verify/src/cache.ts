/**
 * The verified-token cache: a token whose signature and claims were checked
 * is answered from memory the next times it is seen (a gateway sends the
 * same 60-second token many times). A hit is the exact token string that
 * verified (compared in full). Bounded, first-in first-out: only verified
 * tokens get in, so an attacker cannot fill it with forgeries, and a hit
 * costs no reordering (least-recently-used would move the entry on every
 * hit). The verifier re-checks exp, key and revocation on every hit.
 *
 * Admission on the second sight: a token enters the cache the second time it
 * verifies, not the first. A token seen once (a client that makes one call
 * per token, a flood of distinct tokens) would only push useful entries out,
 * and keeping it costs more than the rest of the bookkeeping together: every
 * entry outlives the young generation, so the garbage collector copies and
 * later sweeps it (the largest part of a miss's bookkeeping, measured with the
 * signature check stubbed out). The first
 * sight is remembered in a fixed table of fingerprints, the doorkeeper of
 * TinyLFU-style caches; forgetting there only delays admission by one more
 * full verification.
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

/** base64url character → its 6 bits (-1 for anything else: those only lower the fingerprint's spread). */
const SIXBITS = new Int8Array(128).fill(-1);
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
for (let i = 0; i < ALPHABET.length; i++) SIXBITS[ALPHABET.charCodeAt(i)] = i;

/**
 * A 30-bit number from five characters near the end of the token, inside its
 * signature (the last character can carry as few as 2 bits, so it is left
 * out). Signatures of the issuer's tokens are uniformly distributed, and a
 * small integer is found in a Map without hashing a string: hashing a fresh
 * 400-700 character request header costs about a microsecond, as much as the
 * rest of a hit. Equal fingerprints are expected to be rare and are harmless:
 * the entry's token is compared in full, and a clash is a miss.
 */
export function fingerprint(token: string): number {
  const n = token.length;
  if (n < 7) return 0;
  return (
    ((SIXBITS[token.charCodeAt(n - 2) & 127]! & 63) << 24) |
    ((SIXBITS[token.charCodeAt(n - 3) & 127]! & 63) << 18) |
    ((SIXBITS[token.charCodeAt(n - 4) & 127]! & 63) << 12) |
    ((SIXBITS[token.charCodeAt(n - 5) & 127]! & 63) << 6) |
    (SIXBITS[token.charCodeAt(n - 6) & 127]! & 63)
  );
}

/** Smallest power of two >= n. */
const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(2, n)));

export class TokenCache {
  private readonly map = new Map<number, CacheEntry>();
  /**
   * Fingerprints in insertion order, in a ring: evicting through the Map's
   * own iterator would walk over every deleted slot left at its head
   * (measured: several microseconds per insert at 10,000 entries). -1: empty.
   */
  private readonly ring: Int32Array;
  private pos = 0;
  /**
   * First sights, in two generations: slot (low bits of the fingerprint) →
   * fingerprint + 1 (0: empty). After `maxEntries` first sights the current
   * generation becomes the previous one and the oldest is cleared, so a first
   * sight is remembered over the next `maxEntries` to `2 * maxEntries` first
   * sights of other tokens (hits and second sights do not count):
   * a token that returns later than that would have left a first-in
   * first-out cache of `maxEntries` before its next use anyway.
   */
  private current: Int32Array;
  private previous: Int32Array;
  private readonly seenMask: number;
  private recorded = 0;

  constructor(readonly maxEntries: number) {
    this.ring = new Int32Array(maxEntries).fill(-1);
    // two slots per first sight keep clashes rare (2 x 128 KiB for the default 10,000 entries)
    const slots = pow2(Math.min(maxEntries * 2, 1 << 24));
    this.current = new Int32Array(slots);
    this.previous = new Int32Array(slots);
    this.seenMask = slots - 1;
  }

  /** The entry for exactly this token; `fp` is fingerprint(token). */
  get(token: string, fp: number): CacheEntry | undefined {
    const e = this.map.get(fp);
    return e !== undefined && e.token === token ? e : undefined;
  }

  /**
   * Whether a token that just verified in full should be cached: false the
   * first time its fingerprint is seen (which is remembered), true after.
   */
  admit(fp: number): boolean {
    const slot = fp & this.seenMask;
    const mark = fp + 1;
    if (this.current[slot] === mark || this.previous[slot] === mark) return true;
    if (++this.recorded > this.maxEntries) {
      const oldest = this.previous;
      this.previous = this.current;
      this.current = oldest.fill(0);
      this.recorded = 1;
    }
    this.current[slot] = mark;
    return false;
  }

  /** Cache a verified token. */
  set(entry: CacheEntry, fp: number = fingerprint(entry.token)): void {
    if (this.map.has(fp)) {
      // present (or a clash: the newer token takes the slot; the older one is verified again when it returns)
      this.map.set(fp, entry);
      return;
    }
    // the oldest insertion goes: a no-op if it was already deleted; if its fingerprint was cached again
    // since, that newer entry goes early (its next request verifies in full): the bound holds either way
    const old = this.ring[this.pos]!;
    if (old !== -1) this.map.delete(old);
    this.ring[this.pos] = fp;
    this.pos = this.pos + 1 === this.maxEntries ? 0 : this.pos + 1;
    this.map.set(fp, entry);
  }

  delete(token: string, fp: number = fingerprint(token)): void {
    if (this.map.get(fp)?.token === token) this.map.delete(fp);
  }

  get size(): number {
    return this.map.size;
  }
}
