/**
 * Which better-sqlite3 to load. Version 12 is a classic V8 addon: on Node 24
 * its Statement finalizer can abort the process (RemoveEnvironmentCleanupHook
 * assertion, WiseLibs/better-sqlite3#1515). Version 13 is Node-API, fixed, and
 * ships prebuilt binaries, but needs Node >= 22. So: 13 where it runs (an
 * optional dependency, installed by npm on Node >= 22), 12 on Node 20.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);

/** Which package was loaded, for diagnostics and tests. */
export let driverPackage: 'better-sqlite3-napi' | 'better-sqlite3' = 'better-sqlite3';

function load(): typeof BetterSqlite3 {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 22) {
    try {
      const mod = require('better-sqlite3-napi') as typeof BetterSqlite3;
      driverPackage = 'better-sqlite3-napi';
      return mod;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      // installed under Node 20 and run on a newer Node: fall back to 12
    }
  }
  return require('better-sqlite3') as typeof BetterSqlite3;
}

export type Database = BetterSqlite3.Database;
export type Statement = BetterSqlite3.Statement;
export const Database: new (filename: string, options?: BetterSqlite3.Options) => Database = load();
