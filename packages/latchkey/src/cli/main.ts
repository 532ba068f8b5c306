/**
 * `latchkey <command>`: serve, and operator commands. Each command is a
 * function of its arguments returning an exit code.
 */
import { parseArgs } from 'node:util';
import { createLatchkey } from '../app.js';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config.js';
import { keysCommand } from './keys.js';
import { describeStore, openStore } from '../store/open.js';
import { PostgresStore } from '../store/postgres/index.js';

const HELP = `latchkey: sessions for browsers, short-lived JWTs for services

Usage:
  latchkey serve [--port N] [--host H] [--data-dir DIR] [--config FILE]
  latchkey migrate                  create or upgrade the store's schema (serve does it too at start)
  latchkey keys list [--json]       signing keys and their state (pending, active, retiring, retired)
  latchkey keys rotate [--now]      publish the next key; it signs after keys.prePublishSeconds (or at once)
  latchkey keys retire <kid>        stop a (compromised) key's tokens verifying; sessions live on
  latchkey help

Options (environment equivalents in brackets):
  --port N          listen port, default 8080 [LATCHKEY_PORT]
  --host H          listen address, default 127.0.0.1 [LATCHKEY_HOST]
  --data-dir DIR    the SQLite store and rate-limit counters, default ./.latchkey (unused on
                    PostgreSQL) [LATCHKEY_DATA_DIR]
  --config FILE     JSON config file [LATCHKEY_CONFIG]
  [LATCHKEY_DATABASE_URL]  postgres://user:password@host:port/db: store everything in PostgreSQL
                    (several nodes share it) instead of the SQLite file in the data dir

Production: set LATCHKEY_KEY_ENCRYPTION_KEY to 32 random bytes, base64 (openssl rand -base64 32).
  Private signing keys and secrets live in the store, encrypted with it (plaintext ones from
  an earlier start are encrypted in place). Without it, serve warns at start on SQLite and
  refuses to start on PostgreSQL. Files of an earlier latchkey (csrf.key, refresh.key,
  device.key, keys/) are moved into the store at start. Every start makes the data dir 0700
  and its files 0600. The keys commands make the same checks (on SQLite, on an existing data
  dir only: they never create one) and stop on a secret or key that does not open.
`;

export type Command = (args: string[]) => Promise<number>;

/** Commands added by other modules (keys, ...). */
export const commands = new Map<string, Command>([
  ['serve', serve],
  ['migrate', migrate],
  ['keys', keysCommand],
]);

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(HELP);
    return name ? 0 : 2;
  }
  const command = commands.get(name);
  if (!command) {
    process.stderr.write(`latchkey: unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`latchkey: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
}

/** Parse the flags every command shares. */
/** The flags every command that reads the config takes. */
export const CONFIG_FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string' },
} as const;

export function configFlags(args: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...CONFIG_FLAGS, ...extra },
  });
  const overrides: ConfigOverrides = {
    port: values.port as string | undefined,
    host: values.host as string | undefined,
    dataDir: values['data-dir'] as string | undefined,
    configFile: values.config as string | undefined,
  };
  return { config: loadConfig(overrides), values, positionals };
}

async function serve(args: string[]): Promise<number> {
  const { config } = configFlags(args);
  const lk = await createLatchkey(config);
  await lk.http.listen({ port: config.port, host: config.host });
  // describeStore never shows a database password
  lk.http.log.info({ issuer: config.issuer, dataDir: config.dataDir, store: describeStore(config) }, 'latchkey ready');
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      lk.http.log.info({ signal }, 'shutting down');
      // stop accepting, finish in-flight requests, close the store
      lk.close().then(resolveStop, (err: unknown) => {
        lk.http.log.error({ err }, 'shutdown failed');
        resolveStop();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/**
 * Apply pending schema migrations and exit. Safe to run from several nodes at once: on
 * PostgreSQL they take turns under an advisory lock and each version is applied once.
 */
async function migrate(args: string[]): Promise<number> {
  const { config, positionals } = configFlags(args);
  if (positionals.length) {
    process.stderr.write(`latchkey migrate: unexpected argument\n`);
    return 2;
  }
  const store = openStore(config);
  try {
    if (store instanceof PostgresStore) {
      const { from, to } = await store.migrateWithReport();
      process.stdout.write(
        from === to ? `schema at version ${to}, nothing to do (${describeStore(config)})\n` : `schema migrated from version ${from} to ${to} (${describeStore(config)})\n`,
      );
    } else {
      await store.migrate();
      process.stdout.write(`schema up to date (${describeStore(config)})\n`);
    }
    return 0;
  } catch (err) {
    // the driver's messages name the host and user at most, never the password; say which store
    process.stderr.write(`latchkey migrate: ${(err as Error).message} (${describeStore(config)})\n`);
    return 1;
  } finally {
    await store.close();
  }
}
