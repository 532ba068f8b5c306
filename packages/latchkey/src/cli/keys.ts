/**
 * `latchkey keys list|rotate|retire`: operate the signing keys while the server runs, after the
 * checks `serve` makes (the data dir's, the store's secrets and keys opening with the
 * key-encryption key). The keys, private halves included, are in the store, which every server
 * re-reads every second.
 */
import { resolve } from 'node:path';
import { AuditLog } from '../audit/log.js';
import { isLatchkeyError } from '../errors.js';
import { parseEncryptionKey } from '../keys/material.js';
import { openAtRest, requireEncryptionKey } from '../keys/at-rest.js';
import { prepareDataDir, type PreparedDataDir } from '../keys/secrets.js';
import type { KeyView } from '../keys/service.js';
import { openStore } from '../store/open.js';
import { createKeyService, revocationRetention } from '../tokens/services.js';
import { CONFIG_FLAGS, configFlags } from './main.js';

const USAGE = `  latchkey keys list [--json]
  latchkey keys rotate [--now]
  latchkey keys retire [--] <kid>
`;

const KEYS_FLAGS = { now: { type: 'boolean' }, json: { type: 'boolean' } } as const;
/** Whether `arg` is one of the flags `keys` takes (`--name` or `--name=value`). */
const isFlag = (arg: string): boolean =>
  arg.startsWith('--') && Object.hasOwn({ ...CONFIG_FLAGS, ...KEYS_FLAGS }, arg.slice(2).split('=', 1)[0]!);

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

export async function keysCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list' && sub !== 'rotate' && sub !== 'retire') {
    process.stderr.write(`latchkey: keys needs a subcommand\n\nUsage:\n${USAGE}`);
    return 2;
  }
  // a kid is base64url and may begin with '-': after `retire` the first argument is the kid unless it is one
  // of the flags (`latchkey keys retire -- <kid>` works too)
  let kidArg: string | undefined;
  if (sub === 'retire' && rest[0] !== undefined && rest[0] !== '--' && !isFlag(rest[0])) kidArg = rest.shift();
  const flags = configFlags(rest, KEYS_FLAGS);
  const { config } = flags;
  const positionals = kidArg === undefined ? flags.positionals : [kidArg, ...flags.positionals];
  const values = flags.values as { now?: boolean; json?: boolean };
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
      return 1;
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
      if (values.json) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      else if (list.length === 0) process.stdout.write('no signing keys yet: `latchkey serve` creates the first\n');
      else process.stdout.write(table(list));
      return 0;
    }
    if (sub === 'rotate') {
      const { key, created } = await keys.rotate({ immediately: values.now === true });
      if (created) process.stdout.write(`created ${key.kid} (${key.alg}); it signs from ${iso(key.activatesAt)}\n`);
      else if (key.state === 'active') process.stdout.write(`${key.kid} (${key.alg}) signs from now\n`);
      else process.stdout.write(`${key.kid} is already scheduled to sign from ${iso(key.activatesAt)}; --now starts it at once\n`);
      return 0;
    }
    const kid = positionals[0];
    if (!kid || positionals.length > 1) {
      process.stderr.write(`latchkey: keys retire needs one kid\n`);
      return 2;
    }
    const key = await keys.retire(kid);
    process.stdout.write(`retired ${key.kid}: JWKS no longer lists it; the server stops using it within a second\n`);
    return 0;
  } catch (err) {
    if (isLatchkeyError(err) || isAtRestError(err)) {
      process.stderr.write(`latchkey: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await store.close();
  }
}
