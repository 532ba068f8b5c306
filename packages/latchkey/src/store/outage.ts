/**
 * A store that cannot answer now (PostgreSQL unreachable; SQLite busy past its timeout, full,
 * read-only, failing to read or write its file) is one error for callers, `store_unavailable`
 * (503 with Retry-After; `temporarily_unavailable` under /oauth), never a 500, and one line in
 * the log when it starts and one when it ends, not one per request. Each adapter decides which
 * of its errors mean that; this file is what they share.
 */
import { LatchkeyError } from '../errors.js';

/** Seconds a client is told to wait (Retry-After) while the store cannot answer. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** What a store tells its operator about outages (a pino logger: the app's). */
export interface StoreLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** The error callers get while the store cannot answer. Says nothing of the cause: that is logged. */
export const storeUnavailable = (): LatchkeyError =>
  new LatchkeyError('store_unavailable', 'the service is temporarily unavailable; try again shortly', {
    retryAfter: STORE_RETRY_AFTER_SECONDS,
  });

/** One store's outages: logged once when each starts and once when it ends. */
export class Outages {
  /** Between the first failure that says the store cannot answer and the next answer. */
  private down = false;
  /** Counts declared outages: only work begun after the latest one started can end it. */
  private count = 0;
  private log: StoreLog | undefined;

  /**
   * `name` starts each log line ("postgres", "sqlite"); `isOutage` tells the adapter's errors that
   * mean the store cannot answer from those of a statement that failed.
   */
  constructor(
    private readonly name: string,
    private readonly isOutage: (err: unknown) => boolean,
  ) {}

  /** Where outages are reported (the app's logger); until set, they are not logged. */
  setLog(log: StoreLog): void {
    this.log = log;
  }

  /** Whether the last attempt failed (until the next one that answers). */
  get unavailable(): boolean {
    return this.down;
  }

  /** Taken when work begins; handed to answered() when it succeeds. */
  get epoch(): number {
    return this.count;
  }

  /** `err` as callers get it: an outage becomes store_unavailable (503, Retry-After); anything else is passed on. */
  classify(err: unknown): unknown {
    if (!this.isOutage(err)) return err;
    this.failed(err as Error);
    return storeUnavailable();
  }

  /** Once per outage: its first failure. Only the error's code and message, never where the store is. */
  failed(err: Error): void {
    if (this.down) return;
    this.down = true;
    this.count++;
    this.log?.error(
      { code: (err as { code?: string }).code, reason: err.message },
      `${this.name} unavailable: requests that need the store answer 503 until it is back`,
    );
  }

  /**
   * Work begun at epoch `began` succeeded. Work begun before the outage was declared (an answer
   * already on its way when the store went down) says nothing about now.
   */
  answered(began: number): void {
    if (!this.down || began !== this.count) return;
    this.down = false;
    this.log?.warn({}, `${this.name} recovered`);
  }
}
