/**
 * Signature verification behind one small interface, so parsing and every
 * header and claim check are shared: node:crypto on Node (synchronous: no
 * promise per check), crypto.subtle everywhere else (Deno, Bun,
 * edge runtimes). The Node module is imported only on Node, so bundles for
 * other runtimes never see `node:crypto`.
 */
import type { Algorithm } from '../types.js';

/** A public key in the backend's own form (KeyObject or CryptoKey). */
export type KeyHandle = unknown;

/** The public members of a checked JWK, as the backends import them. */
export interface PublicJwk {
  kty: 'OKP' | 'EC' | 'RSA';
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

export interface Backend {
  readonly name: 'node' | 'web';
  /**
   * The text of a segment already checked to be canonical base64url, decoded
   * as strict UTF-8 (undefined for invalid sequences: no U+FFFD substitution).
   */
  text(segment: string): string | undefined;
  /** Import a public key (rejects on invalid material, e.g. a point not on the curve). */
  importKey(jwk: PublicJwk, alg: Algorithm): Promise<KeyHandle>;
  /**
   * Whether a compact JWS's signature verifies under `key`: the signing input
   * is `jws` up to `dot2` (ASCII), the signature the canonical base64url
   * after it. Taken in place, so the hot path cuts no strings. False when the
   * signature does not decode to exactly `sigBytes` bytes. Synchronous where
   * the platform allows.
   */
  verify(alg: Algorithm, key: KeyHandle, jws: string, dot2: number, sigBytes: number): boolean | Promise<boolean>;
}

export type BackendChoice = 'auto' | 'node' | 'web';

interface MaybeNode {
  process?: { versions?: Record<string, string | undefined> };
  Deno?: unknown;
}

/** Node proper: Bun and Deno also define process.versions.node but get the Web Crypto path. */
export function isNode(): boolean {
  const g = globalThis as MaybeNode;
  const v = g.process?.versions;
  return typeof v?.node === 'string' && v.bun === undefined && g.Deno === undefined;
}

const loaded = new Map<'node' | 'web', Promise<Backend>>();

/** The backend for this runtime (or the one asked for), loaded once. */
export function loadBackend(choice: BackendChoice = 'auto'): Promise<Backend> {
  const name = choice === 'auto' ? (isNode() ? 'node' : 'web') : choice;
  let p = loaded.get(name);
  if (!p) {
    p = name === 'node' ? import('./node.js').then((m) => m.nodeBackend) : import('./web.js').then((m) => m.webBackend);
    loaded.set(name, p);
  }
  return p;
}
