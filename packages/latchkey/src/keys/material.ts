/**
 * Signing-key material: generation, the `kid`, and the private half's stored form (a JSON text,
 * AES-256-GCM sealed with the key-encryption key when one is configured, bound to its kid and alg),
 * kept in the store beside the key's public half and schedule (keys/at-rest.ts), and the sealing
 * every secret at rest uses (keys/secrets.ts).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import type { SigningAlgorithm } from '../store/store.js';

const generateKeyPair = promisify(generateKeyPairCb);

export interface KeyMaterial {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  /** Public JWK with kid, alg and use, as published. */
  publicJwk: PublicJwk;
}

export interface PublicJwk {
  kty: string;
  kid: string;
  alg: SigningAlgorithm;
  use: 'sig';
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

/** A private key that cannot be used as it is stored (in the store, or a data dir file being imported). */
export class KeyMaterialError extends Error {
  readonly code = 'ERR_KEY_MATERIAL';
  constructor(message: string) {
    super(message);
    this.name = 'KeyMaterialError';
  }
}

/** A fresh key pair for `alg` (RSA keys are 2048-bit). */
export async function generateKeyMaterial(alg: SigningAlgorithm): Promise<KeyMaterial> {
  const { privateKey, publicKey } =
    alg === 'EdDSA'
      ? await generateKeyPair('ed25519')
      : alg === 'ES256'
        ? await generateKeyPair('ec', { namedCurve: 'P-256' })
        : await generateKeyPair('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = keyId(jwk);
  const pub: PublicJwk = { kty: jwk.kty!, kid, alg, use: 'sig' };
  for (const k of ['crv', 'x', 'y', 'n', 'e'] as const) if (jwk[k] !== undefined) pub[k] = jwk[k];
  return { kid, alg, privateKey, publicJwk: pub };
}

/**
 * `kid`: the first 48 bits of the RFC 7638 thumbprint, 8 base64url characters.
 * Short because it rides in every token header (the size budget is 420 bytes);
 * 48 bits are plenty to tell apart the handful of keys published at once.
 */
export function keyId(jwk: Record<string, string>): string {
  const members = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return createHash('sha256').update(canonical).digest().subarray(0, 6).toString('base64url');
}

interface PlainKey {
  v: 1;
  kid: string;
  alg: SigningAlgorithm;
  jwk: Record<string, string>;
}
interface SealedKey extends Sealed {
  v: 1;
  kid: string;
  alg: SigningAlgorithm;
  enc: 'A256GCM';
}

/** AES-256-GCM output, base64url fields as stored. */
export interface Sealed {
  iv: string;
  tag: string;
  data: string;
}

/**
 * Seal `plain` with the key-encryption key. `aad` names what the bytes are for
 * (a kid and alg, a secret's name): a value copied over another does not open.
 */
export function seal(kek: Buffer, aad: string, plain: Buffer): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(aad));
  const data = Buffer.concat([cipher.update(plain), cipher.final()]);
  return { iv: iv.toString('base64url'), tag: cipher.getAuthTag().toString('base64url'), data: data.toString('base64url') };
}

/** Open what `seal` sealed with the same `aad`; undefined when the key, the AAD or the bytes do not match. */
export function unseal(kek: Buffer, aad: string, sealed: Sealed): Buffer | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(sealed.iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64url')), decipher.final()]);
  } catch {
    return undefined;
  }
}

/**
 * The stored text of a private key: `{v, kid, alg, jwk}`, or with a key-encryption key
 * `{v, kid, alg, enc, iv, tag, data}` sealing the JWK with `<kid>.<alg>` as AAD, so a value
 * copied onto another key's row does not open. (latchkey 0.1 wrote the same text to
 * `<dataDir>/keys/<kid>.json`.)
 */
export function privateKeyText(m: { kid: string; alg: SigningAlgorithm; jwk: Record<string, string> }, kek: Buffer | undefined): string {
  const stored: PlainKey | SealedKey = kek
    ? { v: 1, kid: m.kid, alg: m.alg, enc: 'A256GCM', ...seal(kek, `${m.kid}.${m.alg}`, Buffer.from(JSON.stringify(m.jwk))) }
    : { v: 1, kid: m.kid, alg: m.alg, jwk: m.jwk };
  return JSON.stringify(stored);
}

/** The private JWK of generated key material, as privateKeyText takes it. */
export function privateJwkOf(m: KeyMaterial): { kid: string; alg: SigningAlgorithm; jwk: Record<string, string> } {
  return { kid: m.kid, alg: m.alg, jwk: m.privateKey.export({ format: 'jwk' }) as Record<string, string> };
}

export interface OpenedKey {
  kid: string;
  alg: SigningAlgorithm;
  key: KeyObject;
  jwk: Record<string, string>;
  /** Whether the text was sealed (else plaintext, to be sealed once a key-encryption key is set). */
  sealed: boolean;
}

/**
 * Open a private key's stored text, checking everything a signer relies on: it is the key of
 * `kid` (its public half's thumbprint is the kid; the text does not name another), sealed texts
 * open with `kek`, the JWK is a private key. `where` says where the text came from, for the
 * error (KeyMaterialError), which never quotes the text.
 */
export function openPrivateKey(text: string, kid: string, alg: SigningAlgorithm | undefined, kek: Buffer | undefined, where: string): OpenedKey {
  const broken = (why: string) => new KeyMaterialError(`the private key of ${kid} ${where} ${why}`);
  let parsed: Partial<PlainKey & SealedKey>;
  try {
    parsed = JSON.parse(text) as Partial<PlainKey & SealedKey>;
  } catch {
    throw broken('is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || parsed.kid !== kid || (alg !== undefined && parsed.alg !== alg)) {
    throw broken('holds another key');
  }
  const keyAlg = parsed.alg as SigningAlgorithm;
  let jwk: Record<string, string>;
  const sealed = 'enc' in parsed;
  if (sealed) {
    if (parsed.enc !== 'A256GCM' || typeof parsed.iv !== 'string' || typeof parsed.tag !== 'string' || typeof parsed.data !== 'string') {
      throw broken('is not an encrypted key');
    }
    if (!kek) throw broken('is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY to the key it was encrypted with');
    const plain = unseal(kek, `${kid}.${keyAlg}`, parsed as Sealed);
    if (!plain) throw new KeyMaterialError(`cannot decrypt the private key of ${kid} ${where}: wrong LATCHKEY_KEY_ENCRYPTION_KEY?`);
    try {
      jwk = JSON.parse(plain.toString('utf8')) as Record<string, string>;
    } catch {
      throw broken('does not hold a valid private key');
    }
  } else {
    jwk = parsed.jwk as Record<string, string>;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    throw broken('does not hold a valid private key');
  }
  // a private key published under another kid would sign tokens no verifier can check
  if (keyId(createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>) !== kid) throw broken('holds another key');
  return { kid, alg: keyAlg, key, jwk, sealed };
}

/** Decode the configured encryption key (32 bytes, base64 or base64url). */
export function parseEncryptionKey(value: string | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  const key = Buffer.from(value, 'base64');
  if (key.length !== 32) throw new KeyMaterialError('the key encryption key must be 32 bytes, base64-encoded');
  return key;
}
