/**
 * Secrets at rest in the data directory, and the posture every start enforces:
 *
 * - the data directory and `keys/` are 0700, every file in them 0600 (the SQLite
 *   database and its -wal/-shm included); a looser mode is tightened and reported;
 * - the secret files (`csrf.key`, `refresh.key`, `device.key`) hold 32 random bytes; with a
 *   key-encryption key (LATCHKEY_KEY_ENCRYPTION_KEY) they and the private signing
 *   keys are AES-256-GCM sealed (material.ts), each bound to its own name as AAD,
 *   and plaintext ones found at start are sealed in place; without one, start-up
 *   reports that everything is in plaintext;
 * - a secret file that is empty, short, malformed, encrypted without the key or not
 *   openable with it stops start-up naming the file. It is never regenerated over:
 *   that would silently sign everyone out (csrf.key) or break refresh rotation in
 *   flight (refresh.key), and a wrong key must not look like a fresh install.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkKeyFiles, replaceFile, seal, sealPlainKeyFiles, unseal, type Sealed } from './material.js';

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

/** The secret files of a data directory. */
export const SECRET_FILES = ['csrf.key', 'refresh.key', 'device.key'] as const;
export type SecretName = (typeof SECRET_FILES)[number];

const SECRET_BYTES = 32;
const PLAIN = /^[A-Za-z0-9_-]{43}$/;

export const KEK_HINT =
  'set LATCHKEY_KEY_ENCRYPTION_KEY to 32 random bytes, base64 (generate one with `openssl rand -base64 32`)';

interface SealedSecret extends Sealed {
  v: 1;
  secret: string;
  enc: 'A256GCM';
}

// distinct from the key files' AAD (`<kid>.<alg>`): a secret file cannot stand in for a key file, nor one secret for another
const aadOf = (name: string) => `latchkey-secret:${name}`;

function contentOf(name: string, secret: Buffer, kek: Buffer | undefined): string {
  if (!kek) return secret.toString('base64url') + '\n';
  const sealed: SealedSecret = { v: 1, secret: name, enc: 'A256GCM', ...seal(kek, aadOf(name), secret) };
  return JSON.stringify(sealed) + '\n';
}

/**
 * Read the secret `name` of the data directory without writing anything:
 * `state` says whether the file is missing (a fresh secret to write), plaintext or sealed.
 * Throws SecretFileError naming the file when it cannot be used as it is.
 */
export function readSecret(
  dataDir: string,
  name: SecretName,
  kek: Buffer | undefined,
): { secret: Buffer; state: 'new' | 'plain' | 'sealed' } {
  const file = join(dataDir, name);
  if (!existsSync(file)) return { secret: randomBytes(SECRET_BYTES), state: 'new' };
  const text = readFileSync(file, 'utf8').trim();
  const broken = (why: string) =>
    new SecretFileError(
      `${file} ${why}: restore it from a backup, or delete it to have a new one generated (${consequence(name)})`,
    );
  if (text === '') throw broken('is empty');
  if (text.startsWith('{')) {
    let parsed: Partial<SealedSecret>;
    try {
      parsed = JSON.parse(text) as Partial<SealedSecret>;
    } catch {
      throw broken('is not valid JSON');
    }
    if (parsed.enc !== 'A256GCM' || typeof parsed.iv !== 'string' || typeof parsed.tag !== 'string' || typeof parsed.data !== 'string') {
      throw broken('is not an encrypted secret file');
    }
    if (!kek) throw new SecretFileError(`${file} is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY to the key it was encrypted with`);
    const secret = unseal(kek, aadOf(name), parsed as Sealed);
    if (!secret) {
      throw new SecretFileError(`cannot decrypt ${file}: wrong LATCHKEY_KEY_ENCRYPTION_KEY? (or the file was copied from another secret)`);
    }
    if (secret.length !== SECRET_BYTES) throw broken(`holds ${secret.length} bytes, not ${SECRET_BYTES}`);
    return { secret, state: 'sealed' };
  }
  if (!PLAIN.test(text)) throw broken(`is malformed (expected ${SECRET_BYTES} bytes, base64url)`);
  return { secret: Buffer.from(text, 'base64url'), state: 'plain' };
}

/** Write a secret file: a new one (never over an existing file), or a plaintext one sealed in place. */
function writeSecret(dataDir: string, name: SecretName, secret: Buffer, kek: Buffer | undefined, replace: boolean): void {
  const file = join(dataDir, name);
  if (replace) return replaceFile(file, contentOf(name, secret, kek));
  writeFileSync(file, contentOf(name, secret, kek), { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

function consequence(name: SecretName): string {
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

export interface PreparedDataDir {
  secrets: Record<SecretName, Buffer>;
  /** Warnings to log once at start (plaintext secrets, permissions tightened, files sealed). */
  notices: string[];
}

/**
 * Everything the server needs from the data directory before it opens the store:
 * the directory itself, permissions, the secrets, and (with a key-encryption key)
 * every plaintext secret and signing key sealed. Every command that opens a data
 * directory (serve, the `keys` commands) goes through it, so none of them works on a
 * damaged or loosely protected one. `create: false` (operator commands): a missing
 * directory is an error (DataDirMissingError), not a new install.
 */
export function prepareDataDir(dataDir: string, kek: Buffer | undefined, opts: { create?: boolean } = {}): PreparedDataDir {
  if (opts.create === false && !existsSync(dataDir)) throw new DataDirMissingError(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const notices = enforcePermissions(dataDir);
  // read and check everything before writing anything: a wrong key must fail start-up with
  // nothing sealed under it, or the right key would no longer open what this start wrote
  const read = SECRET_FILES.map((name) => ({ name, ...readSecret(dataDir, name, kek) }));
  const keysDir = join(dataDir, 'keys');
  if (kek) checkKeyFiles(keysDir, kek);
  const sealedNow: string[] = [];
  for (const { name, secret, state } of read) {
    if (state === 'new') writeSecret(dataDir, name, secret, kek, false);
    else if (state === 'plain' && kek) {
      writeSecret(dataDir, name, secret, kek, true);
      sealedNow.push(name);
    }
  }
  if (kek) {
    for (const kid of sealPlainKeyFiles(keysDir, kek)) sealedNow.push(`keys/${kid}.json`);
    if (sealedNow.length) notices.push(`encrypted with LATCHKEY_KEY_ENCRYPTION_KEY: ${sealedNow.join(', ')} (they were plaintext)`);
  } else {
    notices.push(
      `private signing keys and secrets in ${dataDir} are stored unencrypted: for production ${KEK_HINT}; ` +
        'existing files are encrypted on the next start',
    );
  }
  const secrets = Object.fromEntries(read.map((r) => [r.name, r.secret])) as Record<SecretName, Buffer>;
  return { secrets, notices };
}
