/**
 * Device cookies (OWASP "Slow down online guessing attacks with device
 * cookies"): after a right password, the browser gets a token bound to that
 * account, `<nonce>.<HMAC-SHA256(key, account id, nonce)>`. Presented with a
 * later login for the same account it marks the attempt as coming from a
 * device that has proved the password before, which the per-account backoff
 * does not hold back. It names no account (only the server can check which it
 * is bound to), and one cannot be made for an account without its password.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const NONCE_BYTES = 16;
const MAC_BYTES = 32;
/** base64url lengths of the two parts, checked before any work */
const NONCE_CHARS = 22;
const MAC_CHARS = 43;

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Shaped like a device token (`<nonce>.<mac>`, lengths and alphabet): nothing is checked or decoded. */
export const looksLikeDeviceToken = (token: string): boolean =>
  token.length === NONCE_CHARS + 1 + MAC_CHARS &&
  token[NONCE_CHARS] === '.' &&
  B64URL.test(token.slice(0, NONCE_CHARS)) &&
  B64URL.test(token.slice(NONCE_CHARS + 1));

export class KnownDevices {
  constructor(private readonly key: Buffer) {}

  /** A new device token for `userId`. */
  issue(userId: string): string {
    const nonce = randomBytes(NONCE_BYTES).toString('base64url');
    return `${nonce}.${this.mac(userId, nonce).toString('base64url')}`;
  }

  /** The token's device id if it was issued for `userId`, else undefined (constant-time compare). */
  verify(token: string | undefined, userId: string): string | undefined {
    if (token === undefined || token.length !== NONCE_CHARS + 1 + MAC_CHARS || token[NONCE_CHARS] !== '.') return undefined;
    const nonce = token.slice(0, NONCE_CHARS);
    const given = Buffer.from(token.slice(NONCE_CHARS + 1), 'base64url');
    if (given.length !== MAC_BYTES) return undefined;
    return timingSafeEqual(given, this.mac(userId, nonce)) ? nonce : undefined;
  }

  private mac(userId: string, nonce: string): Buffer {
    return createHmac('sha256', this.key).update(`latchkey-device-v1\0${userId}\0${nonce}`).digest();
  }
}
