/**
 * Secrets and private signing keys at rest, in the store: nothing a node needs is kept in its data
 * directory, so identical nodes with separate, empty data dirs on one database form one cluster.
 *
 * `openAtRest` runs at every start (serve, the `keys` commands), after the store is migrated:
 *
 * 1. Everything the store holds must open with the key-encryption key (or, without one, be
 *    plaintext) before anything is written: a wrong key must never write a value the right key
 *    then could not open. What does not open stops start-up naming the secret or the kid; it is
 *    never regenerated over (that would sign everyone out, break refresh rotation in flight,
 *    forget known devices, or make a wrong key look like a fresh install).
 * 2. The secrets are inserted if absent and read back, in one transaction: the first node to
 *    start creates them, and nodes starting together all end with the same ones. Files left by
 *    latchkey 0.1 (secrets, `keys/<kid>.json`) are imported in that same transaction.
 * 3. With a key-encryption key, plaintext values (a SQLite store written without one) are
 *    sealed in place, each only if still what was read.
 * 4. Only then, once the store holds them, are the imported files deleted: not renamed, since a
 *    copy left on disk would keep a plaintext secret there, and a retired key's private half
 *    that must never sign again.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import type { AtRest, AtRestChange, Store } from '../store/store.js';
import { openPrivateKey, privateKeyText, type OpenedKey } from './material.js';
import { consequence, decodeSecret, encodeSecret, KEK_HINT, SECRET_BYTES, SECRET_FILES, type LegacyDataDir, type SecretName } from './secrets.js';

/** A secret in the store that cannot be used as it is. */
export class SecretStoreError extends Error {
  readonly code = 'ERR_STORED_SECRET';
  constructor(message: string) {
    super(message);
    this.name = 'SecretStoreError';
  }
}

/**
 * PostgreSQL is shared by every node and backed up with them: the private signing keys and the
 * secrets must not sit in it in plaintext, so a node refuses to start on it without a
 * key-encryption key (SQLite keeps them in the data dir's own file: plaintext with a warning).
 */
export function requireEncryptionKey(postgres: boolean, kek: Buffer | undefined): void {
  if (postgres && !kek) {
    throw new ConfigError(
      'invalid config: keys.encryptionKey: required with the PostgreSQL store (the database is shared and backed up: ' +
        `private signing keys and secrets are kept in it, never in plaintext): ${KEK_HINT}`,
    );
  }
}

export interface OpenedAtRest {
  secrets: Record<SecretName, Buffer>;
  /** Warnings to log once at start (plaintext at rest, values sealed in place, files imported). */
  notices: string[];
}

interface Checked {
  secrets: Partial<Record<SecretName, { secret: Buffer; sealed: boolean; text: string }>>;
  keys: (OpenedKey & { text: string })[];
}

/** Open everything in `stored`; throws SecretStoreError or KeyMaterialError naming what does not open. */
function check(stored: AtRest, kek: Buffer | undefined): Checked {
  const out: Checked = { secrets: {}, keys: [] };
  for (const name of SECRET_FILES) {
    const text = stored.secrets[name];
    if (text === undefined) continue;
    const read = decodeSecret(name, text, kek);
    if ('wrongKey' in read) throw new SecretStoreError(`the secret ${name} in the store ${read.wrongKey}`);
    if ('broken' in read) {
      throw new SecretStoreError(
        `the secret ${name} in the store ${read.broken}: restore the database from a backup, or delete its row ` +
          `(secrets.name = '${name}') to have a new one generated (${consequence(name)})`,
      );
    }
    out.secrets[name] = { ...read, text };
  }
  for (const [kid, text] of Object.entries(stored.privateKeys)) out.keys.push({ ...openPrivateKey(text, kid, undefined, kek, 'in the store'), text });
  return out;
}

/** A data dir secret that differs from the one the store holds: importing it would silently drop one of them. */
function conflicts(legacy: LegacyDataDir, checked: Checked): void {
  for (const f of legacy.secrets) {
    const stored = checked.secrets[f.name];
    if (stored && !stored.secret.equals(f.secret)) {
      throw new SecretStoreError(
        `${f.file} differs from the ${f.name} the store already holds (another node created or imported its own): ` +
          `delete the file to use the store's (${consequence(f.name)}), or point this node at the database it was used with`,
      );
    }
  }
}

/**
 * The node-wide secrets from the store, created by the first node to start, with an earlier
 * latchkey's data dir files imported. See the file comment for the order of things.
 */
export async function openAtRest(store: Store, opts: { kek: Buffer | undefined; legacy: LegacyDataDir }): Promise<OpenedAtRest> {
  const { kek, legacy } = opts;
  const notices: string[] = [];
  // 1. nothing is written before everything stored is known to open
  conflicts(legacy, check(await store.readAtRest(), kek));

  // 2. insert if absent, read back (the same for every node starting now); the data dir's files with them
  const add: AtRest = { secrets: {}, privateKeys: {} };
  for (const name of SECRET_FILES) {
    const file = legacy.secrets.find((s) => s.name === name);
    add.secrets[name] = encodeSecret(name, file?.secret ?? randomBytes(SECRET_BYTES), kek);
  }
  for (const k of legacy.keys) add.privateKeys[k.kid] = privateKeyText(k, kek);
  const stored = await store.addAtRest(add);
  const checked = check(stored, kek);
  conflicts(legacy, checked);

  // 3. seal in place what an earlier start without the key stored in plaintext
  if (kek) {
    const changes: AtRestChange[] = [];
    for (const name of SECRET_FILES) {
      const s = checked.secrets[name];
      if (s && !s.sealed) changes.push({ secret: name, from: s.text, to: encodeSecret(name, s.secret, kek) });
    }
    for (const k of checked.keys) if (!k.sealed) changes.push({ kid: k.kid, from: k.text, to: privateKeyText(k, kek) });
    // another node with the same key may seal them first: each change applies only to the text read
    if (changes.length) {
      await store.replaceAtRest(changes);
      const what = changes.map((c) => ('secret' in c ? c.secret : `the private key of ${c.kid}`));
      notices.push(`encrypted with LATCHKEY_KEY_ENCRYPTION_KEY in the store: ${what.join(', ')} (they were plaintext)`);
    }
  } else {
    notices.push(
      `private signing keys and secrets are stored unencrypted: for production ${KEK_HINT}; ` +
        'the stored ones are encrypted on the next start with it',
    );
  }

  // 4. the data dir's files are in the store now (or belonged to a retired key): delete them
  const removed: string[] = [];
  for (const f of legacy.secrets) {
    rmSync(f.file, { force: true });
    removed.push(f.name);
  }
  for (const k of legacy.keys) {
    if (stored.unknownKids.includes(k.kid)) {
      // no key row: this data dir was used with another database; its key is no use here, and not ours to delete
      notices.push(`${k.file}: the store has no key ${k.kid}, so it was not imported; left in place`);
      continue;
    }
    rmSync(k.file, { force: true });
    removed.push(`keys/${k.kid}.json`);
  }
  if (removed.length) {
    removeIfEmpty(join(legacy.dataDir, 'keys'));
    notices.push(`moved into the store and deleted from ${legacy.dataDir}: ${removed.join(', ')}`);
  }

  const secrets = {} as Record<SecretName, Buffer>;
  for (const name of SECRET_FILES) {
    const s = checked.secrets[name];
    // addAtRest stored every name it was given, or found one
    if (!s) throw new SecretStoreError(`the store did not keep the secret ${name}`);
    secrets[name] = s.secret;
  }
  return { secrets, notices };
}

function removeIfEmpty(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
