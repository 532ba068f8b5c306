/**
 * The optional Redis connection (`redis.url`). Nothing's correctness depends on
 * it: callers fall back when it cannot answer, so the connection never queues
 * commands while it is down (they fail at once) and gives up on one that
 * takes longer than `commandTimeoutMs`. It reconnects by itself, forever.
 *
 * Outages are logged loudly once each: at the first failure, and when it is
 * back ("recovered"), not once per request.
 */
import { Redis } from 'ioredis';

export interface OutageLog {
  error(obj: { err?: unknown }, msg: string): void;
  warn(msg: string): void;
}

export interface RedisConnectionOptions {
  url: string;
  /** A command not answered within this is failed (and the caller falls back). */
  commandTimeoutMs?: number;
}

export class RedisConnection {
  readonly client: Redis;
  private down = false;
  private pending: { err: unknown; what: string } | undefined;
  private log: OutageLog | undefined;

  constructor(opts: RedisConnectionOptions) {
    this.client = new Redis(opts.url, {
      // fail fast while disconnected: a login must not wait for Redis to come back
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      // reconnect forever, backing off to one attempt every 2 s
      retryStrategy: (times) => Math.min(times * 100, 2000),
      connectionName: 'latchkey',
    });
    // without a listener ioredis prints every reconnect failure to stderr
    this.client.on('error', (err: unknown) => this.failed(err, 'connection'));
    this.client.on('ready', () => this.recovered());
  }

  /**
   * Resolves once the first connection attempt has settled (ready, failed, or `timeoutMs`
   * passed), so a node whose Redis is up counts there from its first request instead of
   * splitting its first counts between Redis and the fallback. Never rejects: start-up
   * does not depend on Redis.
   */
  settled(timeoutMs: number): Promise<void> {
    if (this.client.status === 'ready' || this.down) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.client.off('ready', done);
        this.client.off('error', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.client.once('ready', done);
      this.client.once('error', done);
    });
  }

  /** Where outages are reported; one that began before is reported now. */
  setLog(log: OutageLog): void {
    this.log = log;
    if (this.pending) this.report(this.pending.err, this.pending.what);
  }

  /** A command or the connection failed: logged once per outage. */
  failed(err: unknown, what: string): void {
    if (this.down) return;
    this.down = true;
    this.report(err, what);
  }

  private report(err: unknown, what: string): void {
    if (!this.log) {
      this.pending = { err, what };
      return;
    }
    this.pending = undefined;
    this.log.error({ err }, `redis unavailable (${what}): rate limits fall back to the store's limiter until it is back (the shared rate_limits table on PostgreSQL, this node's ratelimits.sqlite on SQLite)`);
  }

  /** A command was answered: an outage seen only as timeouts (the connection stayed up) is over. */
  answered(): void {
    if (this.down && this.client.status === 'ready') this.recovered();
  }

  private recovered(): void {
    this.pending = undefined;
    if (!this.down) return;
    this.down = false;
    this.log?.warn('redis recovered: rate limits are counted in it again');
  }

  /** Whether an outage is under way (tests, health). */
  get isDown(): boolean {
    return this.down;
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
