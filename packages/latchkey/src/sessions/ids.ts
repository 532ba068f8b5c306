import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';

// one-shot crypto.hash (Node >= 20.12): no Hash object per call on the miss path
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

/** Characters of a secret: 32 bytes in unpadded base64url. */
export const SECRET_LENGTH = 43;

/** 256-bit CSPRNG secret, base64url (43 chars). Only the client ever holds it. */
export const newSecret = (): string => randomBytes(32).toString('base64url');

/** Store key: SHA-256 of the secret, so a leaked table cannot be replayed as cookies. */
export const hashSecret = (secret: string): Buffer => Buffer.from(secretDigest(secret), 'latin1');

/** The same hash as a latin1 string: the in-process cache key, with no Buffer on the hot path. */
export const secretDigest = (secret: string): string =>
  oneShot ? oneShot('sha256', secret, 'latin1' as unknown as 'hex') : createHash('sha256').update(secret).digest().toString('latin1');

const HANDLE_BYTES = 12;

/**
 * Public handle of a session: the first 96 bits of its hash. Knowing it does not
 * help forge the cookie (that needs a SHA-256 preimage), so it can be shown,
 * put in URLs and in the `sid` claim of tokens.
 */
export const handleOf = (idHash: Buffer): string => idHash.subarray(0, HANDLE_BYTES).toString('base64url');

/**
 * The range of session hashes a handle names: every hash starting with `handle` is in
 * [start, end) under bytewise order (what SQLite blobs and PostgreSQL bytea compare by), so a
 * store finds a session by handle with a range scan of its primary key.
 */
export function handleKeyRange(handle: Buffer): { start: Buffer; end: Buffer } {
  const end = Buffer.from(handle);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return { start: handle, end: end.subarray(0, i + 1) };
    }
  }
  // all 0xff: longer than any 32-byte hash, so greater than every match
  return { start: handle, end: Buffer.alloc(33, 0xff) };
}

/** Parse a handle from user input; undefined when it cannot be one. */
export function parseHandle(handle: string): Buffer | undefined {
  if (handle.length !== 16) return undefined;
  const buf = Buffer.from(handle, 'base64url');
  if (buf.length !== HANDLE_BYTES || buf.toString('base64url') !== handle) return undefined;
  return buf;
}

/** A cookie value that can be a session secret (length and alphabet), before any hashing. */
export function looksLikeSecret(value: string): boolean {
  if (value.length !== SECRET_LENGTH) return false;
  for (let i = 0; i < SECRET_LENGTH; i++) {
    const c = value.charCodeAt(i);
    const ok =
      (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    if (!ok) return false;
  }
  return true;
}
