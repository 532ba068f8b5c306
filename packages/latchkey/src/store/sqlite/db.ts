/**
 * The SQLite connection as the aggregates use it: the file opened safely, statements prepared
 * once and run by their SQL text, write transactions, the revocation events a transaction
 * appends, and SQLite's own failures turned into store_unavailable. better-sqlite3 is
 * synchronous, so a transaction is a plain function run between BEGIN IMMEDIATE and COMMIT:
 * nothing else runs on this connection in between.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { restrictMode } from '../../keys/secrets.js';
import type { NewRevocation } from '../../revocation/events.js';
import { Outages, type StoreLog } from '../outage.js';
import { pendingRevocation } from '../rows.js';
import type { RevocationPolicy } from '../store.js';
import { Database, type Statement } from './driver.js';

/** Open `filename` (or ':memory:') in WAL mode; a new file is created 0600. */
export function openDatabase(filename: string): Database {
  if (filename !== ':memory:') {
    mkdirSync(dirname(filename), { recursive: true, mode: 0o700 });
    // SQLite creates the file with the process umask (often 0644) and gives -wal/-shm the
    // database file's mode: create it 0600 first, and tighten one found looser
    try {
      closeSync(openSync(filename, 'wx', 0o600));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    for (const suffix of ['', '-wal', '-shm', '-journal']) restrictMode(filename + suffix, 0o600);
  }
  const db = new Database(filename);
  db.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; a power loss can lose the last commits.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

/**
 * SQLite's primary result codes that say the file cannot serve now, whatever the statement:
 * another connection holds the write lock past the busy timeout (BUSY), the disk or the page
 * limit is full (FULL), the file cannot be read or written (IOERR, CANTOPEN, PERM, READONLY),
 * is damaged or not a database (CORRUPT, NOTADB), memory ran out (NOMEM), or the WAL's lock
 * protocol failed (PROTOCOL). Anything else (a constraint, a statement that is wrong) is the
 * caller's or a bug: passed on as it is.
 */
const UNAVAILABLE = new Set([
  'SQLITE_BUSY',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  'SQLITE_PERM',
  'SQLITE_READONLY',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
]);

/** Whether `err` is SQLite failing to serve (UNAVAILABLE; extended codes such as SQLITE_IOERR_WRITE included). */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return false;
  const extended = code.indexOf('_', 'SQLITE_'.length);
  return UNAVAILABLE.has(extended === -1 ? code : code.slice(0, extended));
}

/**
 * Every statement runs through get, all, run or tx, and every failure leaves through them: SQLite
 * failing to serve (isUnavailable) becomes store_unavailable (503, Retry-After), logged once per
 * outage; anything else is passed on as it is.
 */
export class Db {
  policy: RevocationPolicy = { retainSeconds: 3600, now: Date.now };
  /** Events appended by the transaction under way; onWrite is told once it commits. */
  private revocationsWritten = false;
  private readonly statements = new Map<string, Statement>();
  private readonly outages = new Outages('sqlite', isUnavailable);

  constructor(readonly raw: Database) {}

  /** Where outages are reported (the app's logger); until set, they are not logged. */
  setLog(log: StoreLog): void {
    this.outages.setLog(log);
  }

  /**
   * A write committed. Only writes end an outage: in WAL mode reads go on while another
   * connection holds the write lock, and a read answering says nothing of the next write.
   */
  private wrote(): void {
    if (this.outages.unavailable) this.outages.answered(this.outages.epoch);
  }

  /** The statement for `sql`, prepared on first use and kept for the connection's life. */
  private stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.raw.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** The first row, or undefined. */
  get<R>(sql: string, ...params: unknown[]): R | undefined {
    try {
      return this.stmt(sql).get(...params) as R | undefined;
    } catch (err) {
      throw this.outages.classify(err);
    }
  }

  all<R>(sql: string, ...params: unknown[]): R[] {
    try {
      return this.stmt(sql).all(...params) as R[];
    } catch (err) {
      throw this.outages.classify(err);
    }
  }

  /** Run a statement; how many rows it changed. Outside tx, it commits on its own. */
  run(sql: string, ...params: unknown[]): number {
    let changes: number;
    try {
      changes = this.stmt(sql).run(...params).changes;
    } catch (err) {
      throw this.outages.classify(err);
    }
    if (!this.raw.inTransaction) this.wrote();
    return changes;
  }

  /**
   * Run `fn` in one write transaction (BEGIN IMMEDIATE: the write lock is taken first, so two
   * processes on the file never both read and then both write). On an exception, SQLite's
   * included (a busy lock, a full disk at COMMIT), it is rolled back: nothing of it remains.
   * After COMMIT the feed is told if it appended events.
   */
  tx<T>(fn: () => T): T {
    this.revocationsWritten = false;
    let value: T;
    try {
      value = this.raw.transaction(fn).immediate();
    } catch (err) {
      this.revocationsWritten = false;
      throw this.outages.classify(err);
    }
    this.wrote();
    if (this.revocationsWritten) {
      this.revocationsWritten = false;
      this.policy.onWrite?.();
    }
    return value;
  }

  /** Append revocation events (revocation/events.ts) inside the transaction under way (tx). */
  revoke(...events: NewRevocation[]): void {
    for (const e of events) {
      const p = pendingRevocation(this.policy, e);
      this.run(
        'INSERT INTO revocations (at, kind, user_id, sid, kid, tokens_issued_before, until, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        p.at,
        p.kind,
        p.userId,
        p.sid,
        p.kid,
        p.tokensIssuedBefore,
        p.until,
        p.detail,
      );
      this.revocationsWritten = true;
    }
  }

  now(): number {
    return this.policy.now();
  }
}
