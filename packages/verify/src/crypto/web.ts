/** Web Crypto (crypto.subtle): Deno, Bun, Cloudflare Workers, Vercel Edge, browsers. */
import { decodeBase64url } from '../jws/base64url.js';
import type { Algorithm } from '../types.js';
import type { Backend, KeyHandle, PublicJwk } from './backend.js';

interface SubtleLike {
  importKey(format: 'jwk', key: object, algorithm: object, extractable: boolean, usages: string[]): Promise<unknown>;
  verify(algorithm: object, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
}

const IMPORT: Record<Algorithm, object> = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
};
const VERIFY: Record<Algorithm, object> = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
};

function subtle(): SubtleLike {
  const s = (globalThis as { crypto?: { subtle?: SubtleLike } }).crypto?.subtle;
  if (!s) throw new Error('@latchkey/verify needs Web Crypto (globalThis.crypto.subtle) on this runtime');
  return s;
}

// ignoreBOM keeps a BOM in the text (so JSON.parse refuses it, as on Node) instead of silently dropping it
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export const webBackend: Backend = {
  name: 'web',
  text(segment) {
    try {
      return decoder.decode(decodeBase64url(segment));
    } catch {
      return undefined;
    }
  },
  importKey(jwk: PublicJwk, alg: Algorithm): Promise<KeyHandle> {
    return subtle().importKey('jwk', { ...jwk }, IMPORT[alg], false, ['verify']);
  },
  async verify(alg, key, jws, dot2, sigBytes) {
    const sig = decodeBase64url(jws.slice(dot2 + 1));
    if (sig.length !== sigBytes) return false;
    try {
      return await subtle().verify(VERIFY[alg], key, sig, encoder.encode(jws.slice(0, dot2)));
    } catch {
      return false;
    }
  },
};
