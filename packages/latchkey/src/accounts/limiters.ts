/**
 * Where rate-limit counters live. None lives in process memory: every count is
 * in a store that all processes and nodes share and that outlives a restart,
 * so a lockout stays locked across `serve` restarts, and two processes on one
 * data directory (or nodes on one Redis) share each limit.
 *
 * - SQLite (the default): a `ratelimits.sqlite` file beside the store's in the
 *   data directory, its own connection (limiter writes never wait behind the
 *   store's write lock, and the store's schema is left alone).
 * - Redis (`redis.url`): shared by every node; when Redis cannot answer, each
 *   operation falls back to the SQLite limiter (per node, still persistent:
 *   never memory), so limits stay enforced through an outage.
 * - PostgreSQL (whenever the store is PostgreSQL): a `rate_limits` table in
 *   the store's database, through the store's pool, so nodes with separate
 *   data directories share each limit without Redis. It replaces the SQLite
 *   file both as the default and as Redis's fallback.
 *
 * Every operation Throttle uses is one atomic statement or script in each
 * backend: consume with a custom duration (SQLite: one INSERT ... ON CONFLICT
 * DO UPDATE ... RETURNING under the database's write lock; PostgreSQL: the same
 * upsert, atomic under the row's lock in READ COMMITTED; Redis: one Lua
 * script), reward (the same upsert with negative points) and delete.
 */
import { closeSync, openSync } from 'node:fs';
import { RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, RateLimiterSQLite } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import type { Db } from '../store/postgres/db.js';
import { Database } from '../store/sqlite/driver.js';
import { restrictMode } from '../keys/secrets.js';

/** The operations Throttle needs from a limiter (each atomic in every backend). */
export interface Limiter {
  consume(key: string, points?: number, options?: { customDuration?: number }): Promise<RateLimiterRes>;
  reward(key: string, points?: number): Promise<RateLimiterRes>;
  get(key: string): Promise<RateLimiterRes | null>;
  delete(key: string): Promise<boolean>;
}

export interface LimiterSpec {
  points: number;
  durationSeconds: number;
  /** Distinguishes the limits sharing one table or keyspace. */
  keyPrefix: string;
}

export interface LimiterBackend {
  readonly kind: 'sqlite' | 'postgres' | 'redis';
  limiter(spec: LimiterSpec): Limiter;
  /** Delete counters that expired before `nowMs`; 0 where the backend expires keys itself. */
  sweep(nowMs: number): Promise<number>;
  close(): Promise<void>;
}

/** The table rate-limiter-flexible's SQLite limiter reads and writes (its own schema, created here once). */
const TABLE = 'rate_limits';

export class SqliteLimiterBackend implements LimiterBackend {
  readonly kind = 'sqlite';
  readonly db: InstanceType<typeof Database>;
  private readonly deleteExpired;
  private readonly countRows;

  constructor(filename: string) {
    // created 0600 like the store's file: -wal and -shm take the database file's mode
    try {
      closeSync(openSync(filename, 'wx', 0o600));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    for (const suffix of ['', '-wal', '-shm', '-journal']) restrictMode(filename + suffix, 0o600);
    this.db = new Database(filename);
    this.db.pragma('journal_mode = WAL');
    // a counter lost to a power cut is one more guess, not lost data; crashes of the process lose nothing
    this.db.pragma('synchronous = NORMAL');
    // processes on one data dir take turns at the write lock instead of failing a login with SQLITE_BUSY
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (key TEXT PRIMARY KEY, points INTEGER NOT NULL DEFAULT 0, expire INTEGER)`);
    this.db.exec(`CREATE INDEX IF NOT EXISTS ${TABLE}_expire ON ${TABLE} (expire)`);
    this.deleteExpired = this.db.prepare(`DELETE FROM ${TABLE} WHERE expire < ?`);
    this.countRows = this.db.prepare(`SELECT count(*) FROM ${TABLE}`).pluck();
  }

  limiter(spec: LimiterSpec): RateLimiterSQLite {
    return new RateLimiterSQLite({
      storeClient: this.db,
      storeType: 'better-sqlite3',
      tableName: TABLE,
      tableCreated: true,
      // app.ts sweeps once a minute for every limiter together
      clearExpiredByTimeout: false,
      points: spec.points,
      duration: spec.durationSeconds,
      keyPrefix: spec.keyPrefix,
    });
  }

  async sweep(nowMs: number): Promise<number> {
    return this.deleteExpired.run(nowMs).changes;
  }

  /** Rows in the table (tests: it does not grow without bound). */
  rows(): number {
    return this.countRows.get() as number;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/**
 * Counters in the PostgreSQL store's database: table `rate_limits`, made by the store's
 * migration 2 (key text: the library's own table has key varchar(255), too short for a key
 * holding a 254-character email). Queries go through the store's Db, so a database outage is
 * the store's `store_unavailable` error (503), never a 500, and the pool is the store's.
 */
export class PostgresLimiterBackend implements LimiterBackend {
  readonly kind = 'postgres';

  constructor(private readonly db: Db) {}

  limiter(spec: LimiterSpec): RateLimiterPostgres {
    return new RateLimiterPostgres({
      // 'client': the library calls storeClient.query(config) for each statement, i.e. Db.query
      storeClient: this.db,
      storeType: 'client',
      tableName: TABLE,
      // the migration made it; the library's CREATE TABLE would have the short key column
      tableCreated: true,
      // app.ts sweeps once a minute for every limiter together
      clearExpiredByTimeout: false,
      points: spec.points,
      duration: spec.durationSeconds,
      keyPrefix: spec.keyPrefix,
    });
  }

  async sweep(nowMs: number): Promise<number> {
    const r = await this.db.query(`DELETE FROM ${TABLE} WHERE expire < $1`, [nowMs]);
    return r.rowCount ?? 0;
  }

  /** Rows in the table (tests: it does not grow without bound). */
  async rows(): Promise<number> {
    const r = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${TABLE}`);
    return r.rows[0]!.n;
  }

  /** The pool is the store's: closed with it. */
  async close(): Promise<void> {}
}

/** Told of every failed and every answered operation of a shared backend (the outage log). */
export interface BackendHealth {
  failed(err: unknown, what: string): void;
  answered(): void;
}

/**
 * Counters in Redis, each limit backed by the same limit in `fallback`: an
 * operation Redis cannot answer (down, not yet connected, or past the command
 * timeout) is carried out on the fallback instead, and `health` hears of it.
 * (rate-limiter-flexible's `insuranceLimiter` does the same, silently; this
 * wrapper is the same rule in a few typed lines, with the report.)
 */
export class RedisLimiterBackend implements LimiterBackend {
  readonly kind = 'redis';

  constructor(
    private readonly client: Redis,
    readonly fallback: LimiterBackend,
    private readonly health: BackendHealth,
    /** Before every key: `redis.keyPrefix`. */
    private readonly prefix: string,
  ) {}

  limiter(spec: LimiterSpec): Limiter {
    const primary = new RateLimiterRedis({
      storeClient: this.client,
      // fail over at once instead of queueing behind a reconnect
      rejectIfRedisNotReady: true,
      points: spec.points,
      duration: spec.durationSeconds,
      keyPrefix: `${this.prefix}rl:${spec.keyPrefix}`,
    });
    return new FailoverLimiter(primary, this.fallback.limiter(spec), this.health);
  }

  /** Redis expires every key itself (each is written with a TTL); the fallback's rows are swept. */
  sweep(nowMs: number): Promise<number> {
    return this.fallback.sweep(nowMs);
  }

  async close(): Promise<void> {
    await this.fallback.close();
  }
}

/**
 * `primary`, or `fallback` for any operation `primary` fails with an error (a
 * refusal, RateLimiterRes, is an answer and is passed on as it is).
 */
class FailoverLimiter implements Limiter {
  constructor(
    private readonly primary: Limiter,
    private readonly fallback: Limiter,
    private readonly health: BackendHealth,
  ) {}

  private async run<T>(op: (l: Limiter) => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await op(this.primary);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) {
        this.health.failed(err, 'rate limit');
        return op(this.fallback);
      }
      this.health.answered();
      throw err;
    }
    this.health.answered();
    return result;
  }

  consume(key: string, points = 1, options: { customDuration?: number } = {}) {
    return this.run((l) => l.consume(key, points, options));
  }
  reward(key: string, points = 1) {
    return this.run((l) => l.reward(key, points));
  }
  get(key: string) {
    return this.run((l) => l.get(key));
  }
  delete(key: string) {
    return this.run((l) => l.delete(key));
  }
}
