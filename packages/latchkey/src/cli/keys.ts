/**
 * `latchkey keys list|rotate|retire`: operate the signing keys while the server runs, after the
 * checks `serve` makes (the data dir's, the store's secrets and keys opening with the
 * key-encryption key). The keys, private halves included, are in the store, which every server
 * re-reads every second.
 */
import { resolve } from 'node:path';
import { isLatchkeyError } from '../errors.js';
import type { PreparedDataDir } from '../keys/secrets.js';
import type { KeyView } from '../keys/service.js';
import { configFrom, EXIT, parse, printJson, showHelp, STORE_OPTIONS, takeOperand, usageError, type CommandSpec } from './command.js';

export const keysCommand: CommandSpec = {
  name: 'keys',
  summary: 'list, rotate or retire the signing keys',
  usage: ['latchkey keys list [--json]', 'latchkey keys rotate [--now]', 'latchkey keys retire [--] <kid>'],
  about: `list    every key and its state (pending, active, retiring, retired)
rotate  publish the next key; it signs after keys.prePublishSeconds (--now: at once)
retire  stop a (compromised) key's tokens verifying at once; sessions live on

Runs beside the server (which re-reads the keys from the store every second), after the checks
serve makes: the data dir's permissions, and every secret and private key in the store opening
with LATCHKEY_KEY_ENCRYPTION_KEY (required on PostgreSQL). On SQLite it never creates a data dir:
a mistyped --data-dir is an error, not a new install.`,
  options: {
    json: { type: 'boolean', help: 'list: JSON for scripts (publicJwk as an object)' },
    now: { type: 'boolean', help: 'rotate: the next key signs from now' },
    ...STORE_OPTIONS,
  },
  env: ['LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL', 'LATCHKEY_KEY_ENCRYPTION_KEY'],
  run: keys,
};

/** A key for `--json`: its public JWK as an object, not JSON text inside a string. */
const keyJson = (k: KeyView) => ({ ...k, publicJwk: JSON.parse(k.publicJwk) as Record<string, unknown> });

/** A secret or private key, in the store or a data dir file, that cannot be used as it is: exit 1, naming it. */
const isAtRestError = (err: unknown): boolean =>
  ['ERR_SECRET_FILE', 'ERR_STORED_SECRET', 'ERR_KEY_MATERIAL'].includes((err as { code?: string }).code ?? '');

const iso = (t: number | null) => (t === null ? '-' : new Date(t * 1000).toISOString().replace('.000Z', 'Z'));

function table(keys: KeyView[]): string {
  const rows = [['KID', 'ALG', 'STATE', 'CREATED', 'SIGNS FROM', 'SIGNS UNTIL', 'UNPUBLISHED']];
  for (const k of keys) {
    const unpublished = k.retiredAt !== null ? k.retiredAt : k.unpublishAt;
    rows.push([k.kid, k.alg, k.state, iso(k.createdAt), iso(k.activatesAt), iso(k.deactivatesAt), iso(unpublished)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

async function keys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'help' || sub === '--help' || sub === '-h') return showHelp(keysCommand);
  if (sub !== 'list' && sub !== 'rotate' && sub !== 'retire') {
    return usageError(keysCommand, sub === undefined ? 'which subcommand?' : `unknown subcommand "${sub}"`);
  }
  // a kid may begin with '-' (base64url)
  const kidArg = sub === 'retire' ? takeOperand(keysCommand, rest) : undefined;
  const flags = parse(keysCommand, rest);
  if (flags.help) return showHelp(keysCommand);
  const positionals = kidArg === undefined ? flags.positionals : [kidArg, ...flags.positionals];
  if (sub !== 'retire' && positionals.length) return usageError(keysCommand, `unexpected argument "${positionals[0]}"`);
  if (sub === 'retire' && positionals.length !== 1) return usageError(keysCommand, 'keys retire needs one kid');
  const values = flags.values as { now?: boolean; json?: boolean };
  const config = await configFrom(flags.values);
  // loaded here, not for --help
  const { parseEncryptionKey } = await import('../keys/material.js');
  const { prepareDataDir } = await import('../keys/secrets.js');
  const { openAtRest, requireEncryptionKey } = await import('../keys/at-rest.js');
  const { openStore } = await import('../store/open.js');
  const { createKeyService, revocationRetention } = await import('../tokens/services.js');
  const { AuditLog } = await import('../audit/log.js');
  const dataDir = resolve(config.dataDir);
  const kek = parseEncryptionKey(config.keys.encryptionKey);
  const postgres = config.store.kind === 'postgres';
  requireEncryptionKey(postgres, kek);
  let prepared: PreparedDataDir;
  try {
    // the checks `serve` runs (permissions, an earlier latchkey's secret and key files), on an existing
    // data dir only: a mistyped --data-dir must not become a new, empty SQLite install
    prepared = prepareDataDir(dataDir, kek, postgres ? 'skip' : 'error');
  } catch (err) {
    if (isAtRestError(err) || (err as { code?: string }).code === 'ERR_NO_DATA_DIR') {
      process.stderr.write(`latchkey: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
  for (const n of prepared.notices) process.stderr.write(`latchkey: ${n}\n`);
  const store = openStore(config);
  try {
    await store.migrate();
    // as serve does: what the store holds must open with this key; an earlier latchkey's files are imported
    const { notices } = await openAtRest(store, { kek, legacy: prepared.legacy });
    for (const n of notices) process.stderr.write(`latchkey: ${n}\n`);
    // a retirement from here is published by the server's feed; kept as long as the server would
    store.setRevocationPolicy({ retainSeconds: revocationRetention(config), now: Date.now });
    const keys = createKeyService(config, store, new AuditLog(store), Date.now);
    await keys.reload();
    if (sub === 'list') {
      const list = keys.list();
      if (values.json) printJson(list.map(keyJson));
      else if (list.length === 0) process.stdout.write('no signing keys yet: `latchkey serve` creates the first\n');
      else process.stdout.write(table(list));
      return EXIT.ok;
    }
    if (sub === 'rotate') {
      const { key, created } = await keys.rotate({ immediately: values.now === true });
      if (created) process.stdout.write(`created ${key.kid} (${key.alg}); it signs from ${iso(key.activatesAt)}\n`);
      else if (key.state === 'active') process.stdout.write(`${key.kid} (${key.alg}) signs from now\n`);
      else process.stdout.write(`${key.kid} is already scheduled to sign from ${iso(key.activatesAt)}; --now starts it at once\n`);
      return EXIT.ok;
    }
    const key = await keys.retire(positionals[0]!);
    process.stdout.write(`retired ${key.kid}: JWKS no longer lists it; the server stops using it within a second\n`);
    return EXIT.ok;
  } catch (err) {
    if (isLatchkeyError(err) || isAtRestError(err)) {
      process.stderr.write(`latchkey: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    throw err;
  } finally {
    await store.close();
  }
}
