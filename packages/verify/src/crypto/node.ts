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
import { isAscii, isUtf8 } from 'node:buffer';
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

/**
 * The scratch area: the signature's bytes at offset 0 (at most SIG_ROOM), the
 * signing input or a decoded segment after it. Views of it are made once per
 * length and kept (tokens of one issuer have a handful of lengths): a new
 * Buffer view per call costs more than decoding the signature.
 */
const SIG_ROOM = 1024;
let scratch = Buffer.allocUnsafeSlow(8192);
let views = new Map<number, Buffer>();
let sigViews = new Map<number, Buffer>();

/** Make sure the area after SIG_ROOM holds `bytes`. */
function room(bytes: number): void {
  if (scratch.length - SIG_ROOM >= bytes) return;
  scratch = Buffer.allocUnsafeSlow(Math.max(SIG_ROOM + bytes, scratch.length * 2));
  views = new Map();
  sigViews = new Map();
}

/** scratch[SIG_ROOM, SIG_ROOM + n), made once per length. */
function view(n: number): Buffer {
  let v = views.get(n);
  if (v === undefined) {
    if (views.size >= 64) views.clear();
    v = scratch.subarray(SIG_ROOM, SIG_ROOM + n);
    views.set(n, v);
  }
  return v;
}

function sigView(n: number): Buffer {
  let v = sigViews.get(n);
  if (v === undefined) {
    v = scratch.subarray(0, n);
    sigViews.set(n, v);
  }
  return v;
}

export const nodeBackend: Backend = {
  name: 'node',
  text(segment) {
    room(segment.length);
    // the segment is canonical base64url already (checked by the caller): Node's decoder reads it as it is
    const n = scratch.write(segment, SIG_ROOM, 'base64url');
    const bytes = view(n);
    // claims are almost always ASCII: then the bytes are the text, no UTF-8 decoder needed
    if (isAscii(bytes)) return scratch.toString('latin1', SIG_ROOM, SIG_ROOM + n);
    return isUtf8(bytes) ? scratch.toString('utf8', SIG_ROOM, SIG_ROOM + n) : undefined;
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
    if (((signature.length * 3) >> 2) !== sigBytes || sigBytes > SIG_ROOM) return false;
    const k = handle as NodeKey;
    room(input.length);
    decodeInto(signature, scratch);
    const n = scratch.write(input, SIG_ROOM, 'latin1');
    try {
      return verify(k.hash, view(n), k.input, sigView(sigBytes));
    } catch {
      // OpenSSL refuses some malformed signatures by throwing rather than returning false
      return false;
    }
  },
};
