/**
 * node:crypto: KeyObjects built once per JWK, synchronous one-shot verify.
 *
 * Per token this allocates as little as it can: the signing input, the
 * signature and the payload are decoded into one scratch buffer that is
 * reused (verification is synchronous, so nothing else can use it meanwhile),
 * and base64url is decoded in plain JavaScript. Both measurably keep the
 * signature check itself fast (bench/verify.ts): fresh allocations push
 * OpenSSL's tables out of the CPU caches, and Buffer.from(s, 'base64url')
 * (simdutf, vectorised) right before crypto.verify cost about 5% here.
 */
import { isUtf8 } from 'node:buffer';
import { createPublicKey, verify, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import { decodeInto } from '../jws/base64url.js';
import type { Algorithm } from '../types.js';
import type { Backend, KeyHandle, PublicJwk } from './backend.js';

interface NodeKey {
  key: KeyObject;
  /** What crypto.verify takes: ES256 signatures are JWS raw r||s, not DER. */
  input: KeyObject | VerifyKeyObjectInput;
  hash: 'sha256' | null;
}

let scratch = Buffer.allocUnsafeSlow(8192);

function room(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafeSlow(Math.max(bytes, scratch.length * 2));
  return scratch;
}

export const nodeBackend: Backend = {
  name: 'node',
  text(segment) {
    const buf = room(segment.length);
    const n = decodeInto(segment, buf);
    // claims are almost always ASCII: then the bytes are the text, no UTF-8 decoder needed
    let high = 0;
    for (let i = 0; i < n; i++) high |= buf[i]!;
    if (high < 0x80) return buf.toString('latin1', 0, n);
    const bytes = buf.subarray(0, n);
    return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
  },
  async importKey(jwk: PublicJwk, alg: Algorithm): Promise<KeyHandle> {
    const key = createPublicKey({ key: { ...jwk }, format: 'jwk' });
    const nk: NodeKey = {
      key,
      input: alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key,
      hash: alg === 'EdDSA' ? null : 'sha256',
    };
    return nk;
  },
  verify(_alg, handle, input, signature, sigBytes) {
    if (((signature.length * 3) >> 2) !== sigBytes) return false;
    const k = handle as NodeKey;
    const buf = room(input.length + sigBytes);
    const n = buf.write(input, 0, 'latin1');
    decodeInto(signature, buf.subarray(n));
    try {
      return verify(k.hash, buf.subarray(0, n), k.input, buf.subarray(n, n + sigBytes));
    } catch {
      // OpenSSL refuses some malformed signatures by throwing rather than returning false
      return false;
    }
  },
};
