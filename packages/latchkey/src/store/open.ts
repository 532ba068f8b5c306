/** The store a config names: the embedded SQLite file, or a PostgreSQL database. */
import { join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { PostgresStore, redactUrl } from './postgres/index.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store } from './store.js';

/** The SQLite file of a config's data dir. */
export const sqliteFile = (config: Config): string => join(resolve(config.dataDir), 'latchkey.sqlite');

export function openStore(config: Config): Store {
  if (config.store.kind === 'postgres') return new PostgresStore({ url: config.store.url, poolSize: config.store.poolSize });
  return new SqliteStore({ filename: sqliteFile(config) });
}

/** Where the store is, for logs: the SQLite file, or the database URL without its password. */
export function describeStore(config: Config): string {
  if (config.store.kind === 'postgres') return redactUrl(config.store.url);
  return sqliteFile(config);
}
