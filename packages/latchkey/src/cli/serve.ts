/** `latchkey serve` and `latchkey migrate`. The server's modules load when a command runs, not for --help. */
import { ENVIRONMENT, type EnvName } from '../environment.js';
import { configFrom, EXIT, parse, showHelp, STORE_ENV, STORE_OPTIONS, usageError, type CommandSpec } from './command.js';

export const serveCommand: CommandSpec = {
  name: 'serve',
  summary: 'run the server until SIGTERM or SIGINT',
  usage: ['latchkey serve [--port N] [--host H] [--data-dir DIR] [--config FILE]'],
  about: `Creates the data dir on first start (0700, its files 0600), applies the store's migrations,
and listens. Sources of configuration, lowest first: defaults, the config file, the environment,
flags.

Production: set LATCHKEY_KEY_ENCRYPTION_KEY to 32 random bytes, base64 (openssl rand -base64 32).
Private signing keys and secrets live in the store, encrypted with it (plaintext ones from an
earlier start are encrypted in place). Without it, serve warns at start on SQLite and refuses to
start on PostgreSQL. Files of an earlier latchkey (csrf.key, refresh.key, device.key, keys/) are
moved into the store at start.`,
  options: {
    port: { type: 'string', arg: 'N', help: 'listen port, default 8080', env: 'LATCHKEY_PORT' },
    host: { type: 'string', arg: 'H', help: 'listen address, default 127.0.0.1', env: 'LATCHKEY_HOST' },
    ...STORE_OPTIONS,
  },
  env: Object.keys(ENVIRONMENT) as EnvName[],
  run: serve,
};

export const migrateCommand: CommandSpec = {
  name: 'migrate',
  summary: "create or upgrade the store's schema (serve does it too at start)",
  usage: ['latchkey migrate [--data-dir DIR] [--config FILE]'],
  about: `Safe to run from several nodes at once: on PostgreSQL they take turns under an advisory
lock and each version is applied once.`,
  options: { ...STORE_OPTIONS },
  env: STORE_ENV,
  run: migrate,
};

async function serve(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(serveCommand, args);
  if (help) return showHelp(serveCommand);
  if (positionals.length) return usageError(serveCommand, `unexpected argument "${positionals[0]}"`);
  const config = await configFrom(values);
  const { createLatchkey } = await import('../app.js');
  const { describeStore } = await import('../store/open.js');
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
  return EXIT.ok;
}

async function migrate(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(migrateCommand, args);
  if (help) return showHelp(migrateCommand);
  if (positionals.length) return usageError(migrateCommand, `unexpected argument "${positionals[0]}"`);
  const config = await configFrom(values);
  const { describeStore, openStore } = await import('../store/open.js');
  const { PostgresStore } = await import('../store/postgres/index.js');
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
    return EXIT.ok;
  } catch (err) {
    // the driver's messages name the host and user at most, never the password; say which store
    process.stderr.write(`latchkey migrate: ${(err as Error).message} (${describeStore(config)})\n`);
    return EXIT.failed;
  } finally {
    await store.close();
  }
}
