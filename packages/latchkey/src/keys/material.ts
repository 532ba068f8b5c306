/**
 * Signing-key material: generation, the `kid`, and the private-key files in
 * `<dataDir>/keys/` (directory 0700, files 0600, AES-256-GCM encrypted when an
 * encryption key is configured), and the sealing every secret file at rest uses
 * (keys/secrets.ts). Only the private half lives here; the public
 * half and the schedule live in the store so every process sees one state.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

export class KeyFileError extends Error {
  readonly code = 'ERR_KEY_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
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

const KID = /^[A-Za-z0-9_-]{1,64}$/;

function fileOf(dir: string, kid: string): string {
  // kids come from our own store, but a path is built from it: refuse anything that is not a plain name
  if (!KID.test(kid)) throw new KeyFileError(`invalid kid ${JSON.stringify(kid)}`);
  return join(dir, `${kid}.json`);
}

interface PlainFile {
  v: 1;
  kid: string;
  alg: SigningAlgorithm;
  jwk: Record<string, string>;
}
interface SealedFile extends Sealed {
  v: 1;
  kid: string;
  alg: SigningAlgorithm;
  enc: 'A256GCM';
}

/** AES-256-GCM output, base64url fields as stored in files. */
export interface Sealed {
  iv: string;
  tag: string;
  data: string;
}

/**
 * Seal `plain` with the key-encryption key. `aad` names what the bytes are for
 * (a kid and alg, a secret's file name): a file copied over another does not open.
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

/** Replace `file` with `content` (0600) so that a reader sees the old or the new file, never a half-written one. */
export function replaceFile(file: string, content: string): void {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, content, { mode: 0o600, flag: 'wx' });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function keyFileContent(m: { kid: string; alg: SigningAlgorithm }, jwk: Record<string, string>, encryptionKey: Buffer | undefined): string {
  // the AAD binds the ciphertext to its kid and alg: a file copied under another name does not decrypt
  const content: PlainFile | SealedFile = encryptionKey
    ? { v: 1, kid: m.kid, alg: m.alg, enc: 'A256GCM', ...seal(encryptionKey, `${m.kid}.${m.alg}`, Buffer.from(JSON.stringify(jwk))) }
    : { v: 1, kid: m.kid, alg: m.alg, jwk };
  return JSON.stringify(content) + '\n';
}

/** Write the private key, 0600 in a 0700 directory; sealed with `encryptionKey` when given. */
export function writePrivateKey(dir: string, m: KeyMaterial, encryptionKey: Buffer | undefined): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const jwk = m.privateKey.export({ format: 'jwk' }) as Record<string, string>;
  const file = fileOf(dir, m.kid);
  writeFileSync(file, keyFileContent(m, jwk, encryptionKey), { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

function parseKeyFile(dir: string, kid: string): PlainFile | SealedFile {
  const file = fileOf(dir, kid);
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
    return parsed as PlainFile | SealedFile;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(`cannot read the private key of ${kid} (${code ?? 'not JSON'}) in ${dir}`);
  }
}

/** Read a private key written by writePrivateKey. Throws KeyFileError saying what is wrong. */
export function readPrivateKey(dir: string, kid: string, alg: SigningAlgorithm, encryptionKey: Buffer | undefined): KeyObject {
  const parsed = parseKeyFile(dir, kid);
  if (parsed.kid !== kid || parsed.alg !== alg) throw new KeyFileError(`the key file of ${kid} holds another key`);
  let jwk: Record<string, string>;
  if ('enc' in parsed) {
    if (!encryptionKey) {
      throw new KeyFileError(`the private key of ${kid} is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY`);
    }
    const plain = unseal(encryptionKey, `${kid}.${alg}`, parsed);
    if (!plain) throw new KeyFileError(`cannot decrypt the private key of ${kid}: wrong LATCHKEY_KEY_ENCRYPTION_KEY?`);
    jwk = JSON.parse(plain.toString('utf8')) as Record<string, string>;
  } else {
    jwk = parsed.jwk;
  }
  try {
    return createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    throw new KeyFileError(`the key file of ${kid} in ${dir} does not hold a valid private key`);
  }
}

/** The kids of the key files in `dir`. */
function keyFilesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => (f.endsWith('.json') ? f.slice(0, -'.json'.length) : ''))
    .filter((kid) => KID.test(kid));
}

/** Check that every key file in `dir` opens (sealed ones with `encryptionKey`). Throws KeyFileError naming the first that does not. */
export function checkKeyFiles(dir: string, encryptionKey: Buffer): void {
  for (const kid of keyFilesIn(dir)) {
    const parsed = parseKeyFile(dir, kid);
    readPrivateKey(dir, kid, parsed.alg, 'enc' in parsed ? encryptionKey : undefined);
  }
}

/**
 * Encrypt every plaintext key file in `dir` with `encryptionKey`, in place (an
 * operator turned the key-encryption key on). Each file is checked to open with
 * the key before it is rewritten. Returns the kids it sealed.
 */
export function sealPlainKeyFiles(dir: string, encryptionKey: Buffer): string[] {
  const sealed: string[] = [];
  for (const kid of keyFilesIn(dir)) {
    const parsed = parseKeyFile(dir, kid);
    if ('enc' in parsed) continue;
    if (parsed.kid !== kid) throw new KeyFileError(`the key file of ${kid} holds another key`);
    // refuse to seal what would not load: an unreadable key should fail here, not after it is encrypted
    readPrivateKey(dir, kid, parsed.alg, undefined);
    replaceFile(fileOf(dir, kid), keyFileContent(parsed, parsed.jwk, encryptionKey));
    readPrivateKey(dir, kid, parsed.alg, encryptionKey);
    sealed.push(kid);
  }
  return sealed;
}

/** Whether any key file in `dir` is encrypted. */
export function keysAreEncrypted(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .some((f) => {
      try {
        return 'enc' in (JSON.parse(readFileSync(join(dir, f), 'utf8')) as object);
      } catch {
        return false;
      }
    });
}

/** Whether the key file exists (retired keys' files are deleted). */
export const hasPrivateKey = (dir: string, kid: string): boolean => existsSync(fileOf(dir, kid));

/** Delete a private key file: a retired key must never sign again. */
export function deletePrivateKey(dir: string, kid: string): void {
  rmSync(fileOf(dir, kid), { force: true });
}

/** Decode the configured encryption key (32 bytes, base64 or base64url). */
export function parseEncryptionKey(value: string | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  const key = Buffer.from(value, 'base64');
  if (key.length !== 32) throw new KeyFileError('the key encryption key must be 32 bytes, base64-encoded');
  return key;
}
