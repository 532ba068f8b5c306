/**
 * The node-wide secrets (`csrf.key`, `refresh.key`, `device.key`: 32 random bytes each) and the
 * data directory's posture.
 *
 * The secrets live in the store (keys/at-rest.ts), in the form this file encodes: base64url
 * plaintext, or with a key-encryption key (LATCHKEY_KEY_ENCRYPTION_KEY) AES-256-GCM sealed
 * (material.ts), bound to the secret's name as AAD. latchkey 0.1 kept the same text in files of
 * the data dir, and private signing keys in `keys/<kid>.json`: `prepareDataDir` reads and checks
 * such files, without writing, so that openAtRest can import them into the store.
 *
 * Every start also makes the data directory (and a `keys/` left by 0.1) 0700 and every file in
 * them 0600 (the SQLite database and its -wal/-shm included); a looser mode is tightened and
 * reported. A secret file that is empty, short, malformed, encrypted without the key or not
 * openable with it stops start-up naming the file: it is never imported or regenerated over.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KeyMaterialError, openPrivateKey, seal, unseal, type OpenedKey, type Sealed } from './material.js';

export class SecretFileError extends Error {
  readonly code = 'ERR_SECRET_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

/** A command that operates on an existing data directory was pointed at one that does not exist. */
export class DataDirMissingError extends Error {
  readonly code = 'ERR_NO_DATA_DIR';
  constructor(dataDir: string) {
    super(`${dataDir} does not exist: check --data-dir (LATCHKEY_DATA_DIR); \`latchkey serve\` creates a new one`);
    this.name = 'DataDirMissingError';
  }
}

/** The node-wide secrets, by the names they are stored under (latchkey 0.1's file names). */
export const SECRET_FILES = ['csrf.key', 'refresh.key', 'device.key'] as const;
export type SecretName = (typeof SECRET_FILES)[number];

export const SECRET_BYTES = 32;
const PLAIN = /^[A-Za-z0-9_-]{43}$/;

export const KEK_HINT =
  'set LATCHKEY_KEY_ENCRYPTION_KEY to 32 random bytes, base64 (generate one with `openssl rand -base64 32`)';

interface SealedSecret extends Sealed {
  v: 1;
  secret: string;
  enc: 'A256GCM';
}

// distinct from the private keys' AAD (`<kid>.<alg>`): a secret cannot stand in for a key, nor one secret for another
const aadOf = (name: string) => `latchkey-secret:${name}`;

/** The stored text of a secret: base64url, or sealed with `kek` (JSON). */
export function encodeSecret(name: SecretName, secret: Buffer, kek: Buffer | undefined): string {
  if (!kek) return secret.toString('base64url');
  const sealed: SealedSecret = { v: 1, secret: name, enc: 'A256GCM', ...seal(kek, aadOf(name), secret) };
  return JSON.stringify(sealed);
}

/**
 * Read a secret's stored text (a file's or the store's). Returns the secret and whether it was
 * sealed, or why it cannot be used: `wrongKey` when it is sealed and `kek` is missing or does
 * not open it, `broken` when the text itself is damaged.
 */
export function decodeSecret(
  name: SecretName,
  stored: string,
  kek: Buffer | undefined,
): { secret: Buffer; sealed: boolean } | { broken: string } | { wrongKey: string } {
  const text = stored.trim();
  if (text === '') return { broken: 'is empty' };
  if (text.startsWith('{')) {
    let parsed: Partial<SealedSecret>;
    try {
      parsed = JSON.parse(text) as Partial<SealedSecret>;
    } catch {
      return { broken: 'is not valid JSON' };
    }
    if (parsed.enc !== 'A256GCM' || typeof parsed.iv !== 'string' || typeof parsed.tag !== 'string' || typeof parsed.data !== 'string') {
      return { broken: 'is not an encrypted secret' };
    }
    if (!kek) return { wrongKey: 'is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY to the key it was encrypted with' };
    const secret = unseal(kek, aadOf(name), parsed as Sealed);
    if (!secret) return { wrongKey: 'does not decrypt: wrong LATCHKEY_KEY_ENCRYPTION_KEY? (or it was copied from another secret)' };
    if (secret.length !== SECRET_BYTES) return { broken: `holds ${secret.length} bytes, not ${SECRET_BYTES}` };
    return { secret, sealed: true };
  }
  if (!PLAIN.test(text)) return { broken: `is malformed (expected ${SECRET_BYTES} bytes, base64url)` };
  return { secret: Buffer.from(text, 'base64url'), sealed: false };
}

/** What losing a secret costs, for the errors that tell an operator how to get past a damaged one. */
export function consequence(name: SecretName): string {
  switch (name) {
    case 'csrf.key':
      return 'forms open in browsers fail once and must be reloaded';
    case 'refresh.key':
      return 'refresh tokens rotated in the last few seconds cannot be handed out again';
    case 'device.key':
      return 'every browser is an unknown device again for login throttling';
  }
}

/**
 * A file's text, or undefined when there is none: another node sharing this (0.1) data dir may
 * have imported and deleted it a moment ago.
 */
function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Read the secret file `name` an earlier latchkey left in the data directory, without writing
 * anything. Undefined when there is none. Throws SecretFileError naming the file when it cannot
 * be used as it is.
 */
export function readSecret(dataDir: string, name: SecretName, kek: Buffer | undefined): { secret: Buffer; sealed: boolean } | undefined {
  const file = join(dataDir, name);
  const text = readIfPresent(file);
  if (text === undefined) return undefined;
  const read = decodeSecret(name, text, kek);
  if ('broken' in read) {
    throw new SecretFileError(
      `${file} ${read.broken}: restore it from a backup, or delete it to use a new secret (${consequence(name)})`,
    );
  }
  if ('wrongKey' in read) throw new SecretFileError(`${file} ${read.wrongKey}`);
  return read;
}

/**
 * Make `path` no more open than `mode` (only tightens: bits outside `mode` are cleared).
 * A symlink is left alone unless `follow`: chmod would change a file elsewhere.
 * Returns the mode it had when it changed it.
 */
export function restrictMode(path: string, mode: number, follow = false): number | undefined {
  let st;
  try {
    st = follow ? statSync(path) : lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (st.isSymbolicLink()) return undefined;
  const was = st.mode & 0o777;
  if ((was & ~mode) === 0) return undefined;
  chmodSync(path, was & mode);
  return was;
}

/**
 * The data directory and `keys/` to 0700 (followed if they are symlinks: the operator
 * chose where they point), every regular file in them to 0600. Returns a notice per change.
 */
export function enforcePermissions(dataDir: string): string[] {
  const notices: string[] = [];
  const octal = (m: number) => `0${m.toString(8).padStart(3, '0')}`;
  const tighten = (path: string, mode: number, follow: boolean) => {
    const was = restrictMode(path, mode, follow);
    if (was !== undefined) notices.push(`${path} was open to other users (mode ${octal(was)}): now ${octal(was & mode)}`);
  };
  for (const dir of [dataDir, join(dataDir, 'keys')]) {
    if (!existsSync(dir)) continue;
    tighten(dir, 0o700, true);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isFile()) tighten(join(dir, entry.name), 0o600, false);
    }
  }
  return notices;
}

/** A secret file of latchkey 0.1, read and checked. */
export interface LegacySecret {
  name: SecretName;
  file: string;
  secret: Buffer;
}

/** A private key file of latchkey 0.1 (`keys/<kid>.json`), read and checked. */
export interface LegacyKey extends OpenedKey {
  file: string;
}

/** What an earlier latchkey left in the data directory for openAtRest to move into the store. */
export interface LegacyDataDir {
  dataDir: string;
  secrets: LegacySecret[];
  keys: LegacyKey[];
}

const KEY_FILE = /^([A-Za-z0-9_-]{1,64})\.json$/;

/** Every `keys/<kid>.json`, opened and checked (sealed ones with `kek`). Throws KeyMaterialError naming the file. */
function readKeyFiles(dataDir: string, kek: Buffer | undefined): LegacyKey[] {
  const dir = join(dataDir, 'keys');
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const keys: LegacyKey[] = [];
  for (const name of names) {
    const kid = KEY_FILE.exec(name)?.[1];
    if (!kid) continue;
    const file = join(dir, name);
    let text: string | undefined;
    try {
      text = readIfPresent(file);
    } catch (err) {
      throw new KeyMaterialError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    if (text !== undefined) keys.push({ ...openPrivateKey(text, kid, undefined, kek, `in ${file}`), file });
  }
  return keys;
}

export interface PreparedDataDir {
  /** Files of an earlier latchkey to import into the store (openAtRest). */
  legacy: LegacyDataDir;
  /** Warnings to log once at start (permissions tightened). */
  notices: string[];
}

/**
 * What a start needs from the data directory before it opens the store: the directory itself
 * (SQLite keeps its database there), its permissions, and the files of an earlier latchkey,
 * each read and checked, nothing written: a damaged file or a wrong key stops start-up here,
 * with nothing imported and nothing else created. Every command that opens a store (serve, the
 * `keys` commands) goes through it.
 *
 * `missing`: what to do when the directory does not exist: `create` it (serve on SQLite),
 * `error` (DataDirMissingError: an operator command on SQLite must not make a new, empty
 * install), or `skip` (PostgreSQL: nothing is kept there, so none is needed).
 */
export function prepareDataDir(dataDir: string, kek: Buffer | undefined, missing: 'create' | 'error' | 'skip'): PreparedDataDir {
  const none: PreparedDataDir = { legacy: { dataDir, secrets: [], keys: [] }, notices: [] };
  if (!existsSync(dataDir)) {
    if (missing === 'error') throw new DataDirMissingError(dataDir);
    if (missing === 'skip') return none;
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  }
  const notices = enforcePermissions(dataDir);
  const secrets: LegacySecret[] = [];
  for (const name of SECRET_FILES) {
    const read = readSecret(dataDir, name, kek);
    if (read) secrets.push({ name, file: join(dataDir, name), secret: read.secret });
  }
  return { legacy: { dataDir, secrets, keys: readKeyFiles(dataDir, kek) }, notices };
}
