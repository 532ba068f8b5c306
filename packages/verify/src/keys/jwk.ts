/**
 * From a JWKS to verification keys. The algorithm of each key comes from the
 * key itself (its `alg`, else its type and curve), never from a token header,
 * so a header cannot turn an Ed25519 key into an HMAC secret. Keys that are
 * not for signatures, not one of the accepted algorithms, weak, ambiguous or
 * that carry private members are left out.
 */
import type { Backend, KeyHandle, PublicJwk } from '../crypto/backend.js';
import { decodeBase64url, isBase64url } from '../jws/base64url.js';
import type { Algorithm, JWK } from '../types.js';

/** A usable public key. `removed` turns true when a refreshed JWKS no longer has it. */
export interface VerifyKey {
  readonly kid: string;
  readonly alg: Algorithm;
  readonly handle: KeyHandle;
  /** The exact signature length for this key (64, or the RSA modulus length). */
  readonly sigBytes: number;
  /** The public members, to tell a changed key under the same kid. */
  readonly fingerprint: string;
  removed: boolean;
}

/** `kid` syntax: printable, no quotes, spaces or backslashes; anything else is never looked up or fetched for. */
export const KID = /^[A-Za-z0-9._~+/=-]{1,128}$/;

const PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** A checked JWK, ready to import. */
export interface CheckedJwk {
  kid: string;
  alg: Algorithm;
  jwk: PublicJwk;
  sigBytes: number;
  fingerprint: string;
}

const bytes = (s: unknown): number => (typeof s === 'string' && s.length > 0 && isBase64url(s) ? decodeBase64url(s).length : -1);

/** Why a JWK is left out, or its checked form. */
export function checkJwk(k: JWK, accepted: ReadonlySet<Algorithm>): CheckedJwk | string {
  if (typeof k !== 'object' || k === null || Array.isArray(k)) return 'not an object';
  if (typeof k.kid !== 'string' || !KID.test(k.kid)) return 'no usable kid';
  if (k.use !== undefined && k.use !== 'sig') return `use ${String(k.use)}`;
  if (k.key_ops !== undefined && !(Array.isArray(k.key_ops) && k.key_ops.includes('verify'))) return 'key_ops without verify';
  if (PRIVATE.some((m) => m in k)) return 'private or symmetric key material';
  let alg: Algorithm;
  let jwk: PublicJwk;
  let sigBytes: number;
  switch (k.kty) {
    case 'OKP':
      if (k.crv !== 'Ed25519' || (k.alg !== undefined && k.alg !== 'EdDSA')) return `OKP ${String(k.crv)} ${String(k.alg)}`;
      if (bytes(k.x) !== 32) return 'bad Ed25519 x';
      alg = 'EdDSA';
      jwk = { kty: 'OKP', crv: 'Ed25519', x: k.x! };
      sigBytes = 64;
      break;
    case 'EC':
      if (k.crv !== 'P-256' || (k.alg !== undefined && k.alg !== 'ES256')) return `EC ${String(k.crv)} ${String(k.alg)}`;
      if (bytes(k.x) !== 32 || bytes(k.y) !== 32) return 'bad P-256 point';
      alg = 'ES256';
      jwk = { kty: 'EC', crv: 'P-256', x: k.x!, y: k.y! };
      sigBytes = 64;
      break;
    case 'RSA': {
      if (k.alg !== undefined && k.alg !== 'RS256') return `RSA ${String(k.alg)}`;
      const nBytes = bytes(k.n);
      const eBytes = bytes(k.e);
      if (nBytes < 0 || eBytes < 1 || eBytes > 8) return 'bad RSA members';
      // a leading zero byte is not part of the modulus
      const n = decodeBase64url(k.n!);
      let lead = 0;
      while (lead < n.length && n[lead] === 0) lead++;
      sigBytes = n.length - lead;
      if (sigBytes < 256) return 'RSA modulus under 2048 bits';
      alg = 'RS256';
      jwk = { kty: 'RSA', n: k.n!, e: k.e! };
      break;
    }
    default:
      return `kty ${String(k.kty)}`;
  }
  if (!accepted.has(alg)) return `algorithm ${alg} not accepted`;
  return { kid: k.kid, alg, jwk, sigBytes, fingerprint: JSON.stringify(jwk) };
}

/** Check every key of a JWKS; kids that appear twice are dropped (which one would a token mean?). */
export function checkJwks(set: unknown, accepted: ReadonlySet<Algorithm>): { keys: CheckedJwk[]; skipped: string[] } {
  const list = (set as { keys?: unknown } | null)?.keys;
  if (typeof set !== 'object' || set === null || !Array.isArray(list)) return { keys: [], skipped: ['not a JWK set'] };
  const skipped: string[] = [];
  const byKid = new Map<string, CheckedJwk | null>();
  for (const k of list as JWK[]) {
    const c = checkJwk(k, accepted);
    if (typeof c === 'string') {
      skipped.push(`${typeof k?.kid === 'string' ? k.kid.slice(0, 64) : '?'}: ${c}`);
      continue;
    }
    if (byKid.has(c.kid)) {
      byKid.set(c.kid, null);
      skipped.push(`${c.kid}: duplicate kid`);
    } else {
      byKid.set(c.kid, c);
    }
  }
  return { keys: [...byKid.values()].filter((c): c is CheckedJwk => c !== null), skipped };
}

/**
 * Import checked keys, reusing `previous` keys whose material is unchanged
 * (cached tokens stay tied to them). Keys the backend refuses are skipped.
 */
export async function importKeys(
  checked: CheckedJwk[],
  backend: Backend,
  previous: ReadonlyMap<string, VerifyKey>,
): Promise<{ keys: Map<string, VerifyKey>; skipped: string[] }> {
  const keys = new Map<string, VerifyKey>();
  const skipped: string[] = [];
  for (const c of checked) {
    const old = previous.get(c.kid);
    if (old && old.fingerprint === c.fingerprint && old.alg === c.alg) {
      keys.set(c.kid, old);
      continue;
    }
    try {
      const handle = await backend.importKey(c.jwk, c.alg);
      keys.set(c.kid, { kid: c.kid, alg: c.alg, handle, sigBytes: c.sigBytes, fingerprint: c.fingerprint, removed: false });
    } catch {
      skipped.push(`${c.kid}: refused by the crypto backend`);
    }
  }
  return { keys, skipped };
}
