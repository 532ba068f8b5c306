/**
 * The connection pool, transactions, and what every aggregate shares: the revocation
 * events a transaction appends (written at its end, revocations.ts) and the advisory
 * lock keys.
 */
import pg from 'pg';
import type { NewRevocation } from '../../revocation/events.js';
import { Outages, type StoreLog } from '../outage.js';
import { pendingRevocation, type PendingRevocation } from '../rows.js';
import type { RevocationPolicy } from '../store.js';
import { appendRevocations } from './revocations.js';

/** Advisory lock keys (pg_advisory_lock(int, int)): the first is latchkey's, the second the purpose. */
export const LOCK_SPACE = 0x6c6b; // "lk"
export const LOCK_MIGRATE = 1;
export const LOCK_KEYS = 2;

/** bigint columns (Unix seconds and ms, positions) as numbers: they stay far below 2^53. */
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Db (a pooled connection per query) or Tx (the transaction's connection). */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** One transaction under way: its client, and the events it appends. */
export class Tx implements Queryable {
  readonly events: PendingRevocation[] = [];
  constructor(
    readonly client: pg.PoolClient,
    private readonly policy: RevocationPolicy,
  ) {}

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.client.query<R>(text as string, values);
  }

  /** Append revocation events (revocation/events.ts); they get their positions when the transaction ends. */
  revoke(...events: NewRevocation[]): void {
    for (const e of events) this.events.push(pendingRevocation(this.policy, e));
  }

  now(): number {
    return this.policy.now();
  }
}

/** Socket errors of a connection that cannot be made or was lost. */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** admin shutdown, crash shutdown, cannot connect now (starting or stopping), too many connections. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
/** node-postgres's own errors for a lost connection or an exhausted wait (they carry no code). */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
];

/**
 * Whether `err` says the database cannot be reached (down, restarting, unreachable, out of
 * connections), as opposed to a statement that failed: SQLSTATE class 08 (connection
 * exception), the shutdown states, socket errors, node-postgres's connection messages.
 */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true;
  return UNAVAILABLE_MESSAGES.some((m) => err.message.startsWith(m));
}

/** SQLSTATEs worth running a transaction again for: deadlock detected, serialization failure. */
const RETRYABLE = new Set(['40P01', '40001']);

export class Db implements Queryable {
  readonly pool: pg.Pool;
  policy: RevocationPolicy = { retainSeconds: 3600, now: Date.now };

  private readonly outages = new Outages('postgres', isUnavailable);
  private log: StoreLog | undefined;

  constructor(url: string, max: number) {
    this.pool = new pg.Pool({
      connectionString: url,
      max,
      types,
      // a database that does not answer (or a pool whose connections are all busy) fails the
      // request with store_unavailable instead of holding it open without end
      connectionTimeoutMillis: 5000,
    });
    // an idle connection that breaks (server restart, network) is dropped by the pool; without a
    // listener the 'error' event would end the process. The next query opens a new connection.
    this.pool.on('error', (err) => {
      if (isUnavailable(err)) this.outages.failed(err);
      else this.log?.warn({ code: (err as { code?: string }).code, reason: err.message }, 'postgres: an idle connection failed');
    });
  }

  /** Where outages are reported (the app's logger); until set, they are not logged. */
  setLog(log: StoreLog): void {
    this.log = log;
    this.outages.setLog(log);
  }

  /** Whether the last attempt to reach the database failed (until the next one that answers). */
  get unavailable(): boolean {
    return this.outages.unavailable;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const began = this.outages.epoch;
    let r: pg.QueryResult<R>;
    try {
      r = await this.pool.query<R>(text as string, values);
    } catch (err) {
      throw this.outages.classify(err);
    }
    this.outages.answered(began);
    return r;
  }

  /**
   * Run `fn` in one READ COMMITTED transaction; its revocation events are appended last,
   * then COMMIT, then the feed is told. A deadlock or serialization failure runs it again
   * (it is rolled back first, so nothing of the failed try remains).
   *
   * Lock order, to keep deadlocks rare: user row, then session rows, then refresh tokens,
   * then the revocation position (always last, held only for the commit).
   */
  async tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const began = this.outages.epoch;
    try {
      const value = await this.txOnce(fn);
      this.outages.answered(began);
      return value;
    } catch (err) {
      throw this.outages.classify(err);
    }
  }

  private async txOnce<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      const tx = new Tx(client, this.policy);
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const value = await fn(tx);
        if (tx.events.length) await appendRevocations(client, tx.events);
        await client.query('COMMIT');
        if (tx.events.length) this.policy.onWrite?.();
        return value;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // the connection is unusable: the pool must not hand it out again
          broken = rollbackErr as Error;
        }
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  /**
   * Run `fn` on one connection holding the session-level advisory lock `key`. Used by migrations,
   * before serving: its errors are passed on as they are (an operator reads them at start).
   */
  async withLock<T>(key: number, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_SPACE, key]);
      try {
        return await fn(client);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_SPACE, key]).catch((err: Error) => {
          broken = err;
        });
      }
    } catch (err) {
      // a broken connection takes its session locks with it when the pool destroys it
      broken ??= err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
