/**
 * Strict base64url (RFC 7515 §2): the URL-safe alphabet, no padding, and the
 * unused low bits of the last character zero. Anything else would let one
 * token have several spellings (a cache-key and replay-detection hazard), so
 * it is refused rather than normalised.
 */

const INDEX = new Int8Array(128).fill(-1);
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
for (let i = 0; i < ALPHABET.length; i++) INDEX[ALPHABET.charCodeAt(i)] = i;

/**
 * Whether `s` (already known to be in the alphabet), or its part
 * [start, end), is the canonical encoding of its bytes.
 */
export function isCanonical(s: string, start = 0, end = s.length): boolean {
  const rest = (end - start) & 3;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const last = INDEX[s.charCodeAt(end - 1)]!;
  return rest === 2 ? (last & 15) === 0 : (last & 3) === 0;
}

const SEGMENT = /^[A-Za-z0-9_-]*$/;

/** Whether `s` is canonical base64url text (alphabet and trailing bits). */
export function isBase64url(s: string): boolean {
  return SEGMENT.test(s) && isCanonical(s);
}

/** Decode canonical base64url into a new Uint8Array. */
export function decodeBase64url(s: string): Uint8Array {
  const out = new Uint8Array((s.length * 3) >> 2);
  decodeInto(s, out);
  return out;
}

/**
 * Decode canonical base64url, `s` from `start` to its end, into `out` (at
 * least ((s.length - start) * 3) >> 2 bytes); returns the byte count. Plain
 * JavaScript on purpose: on Node 20, Buffer.from(s, 'base64url') right before
 * the signature check slowed the check itself, and this decodes a token's
 * last segment without slicing it out.
 */
export function decodeInto(s: string, out: Uint8Array, start = 0): number {
  let o = 0;
  let i = start;
  for (; i + 4 <= s.length; i += 4) {
    const n =
      (INDEX[s.charCodeAt(i)]! << 18) |
      (INDEX[s.charCodeAt(i + 1)]! << 12) |
      (INDEX[s.charCodeAt(i + 2)]! << 6) |
      INDEX[s.charCodeAt(i + 3)]!;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  const rest = s.length - i;
  if (rest >= 2) {
    const n = (INDEX[s.charCodeAt(i)]! << 18) | (INDEX[s.charCodeAt(i + 1)]! << 12) | (rest === 3 ? INDEX[s.charCodeAt(i + 2)]! << 6 : 0);
    out[o++] = n >> 16;
    if (rest === 3) out[o++] = (n >> 8) & 255;
  }
  return o;
}
