/**
 * node:crypto: KeyObjects built once per JWK, synchronous one-shot verify.
 *
 * Per token this allocates as little as it can: the signature and the
 * signing input are copied, straight from the token, into one reused scratch
 * buffer (verification is synchronous, so nothing else can use it meanwhile)
 * and handed to crypto.verify through views made once per length. The
 * signature is decoded in plain JavaScript (on Node 20,
 * Buffer.from(s, 'base64url') right before crypto.verify slowed the check
 * itself); the payload, after the check, with Buffer#write.
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
 * The scratch area: the signature's bytes at offset 0 (room for `sigRoom`),
 * the signing input or a decoded segment after them. Views of it are made
 * once per length and kept (tokens of one issuer have a handful of lengths):
 * a new Buffer view per call costs more than decoding the signature.
 */
let sigRoom = 256; // EdDSA, ES256 and 2048-bit RSA; larger RSA moduli grow it
let scratch = Buffer.allocUnsafeSlow(8192);
let views = new Map<number, Buffer>();
let sigViews = new Map<number, Buffer>();

/** Make sure the area after the signature holds `bytes`, and the signature area `sig` (RSA grows it). */
function room(bytes: number, sig = 0): void {
  if (sig <= sigRoom && scratch.length - sigRoom >= bytes) return;
  sigRoom = Math.max(sigRoom, sig);
  scratch = Buffer.allocUnsafeSlow(Math.max(sigRoom + bytes, scratch.length * 2));
  views = new Map();
  sigViews = new Map();
}

/** scratch[sigRoom, sigRoom + n), made once per length. */
function view(n: number): Buffer {
  let v = views.get(n);
  if (v === undefined) {
    if (views.size >= 64) views.clear();
    v = scratch.subarray(sigRoom, sigRoom + n);
    views.set(n, v);
  }
  return v;
}

/** scratch[0, n): one per signature length, so per algorithm and RSA modulus size. */
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
    const n = scratch.write(segment, sigRoom, 'base64url');
    const bytes = view(n);
    // claims are almost always ASCII: then the bytes are the text, no UTF-8 decoder needed
    if (isAscii(bytes)) return scratch.toString('latin1', sigRoom, sigRoom + n);
    return isUtf8(bytes) ? scratch.toString('utf8', sigRoom, sigRoom + n) : undefined;
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
  verify(_alg, handle, jws, dot2, sigBytes) {
    if (((jws.length - dot2 - 1) * 3) >> 2 !== sigBytes) return false;
    const k = handle as NodeKey;
    room(dot2, sigBytes);
    decodeInto(jws, scratch, dot2 + 1);
    // the signing input is the token's first dot2 characters, ASCII: written without cutting it out
    const n = scratch.write(jws, sigRoom, dot2, 'latin1');
    try {
      return verify(k.hash, view(n), k.input, sigView(sigBytes));
    } catch {
      // OpenSSL refuses some malformed signatures by throwing rather than returning false
      return false;
    }
  },
};
