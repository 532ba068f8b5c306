/**
 * Cross-node wake-up for the revocation feed: one dedicated connection per listener (LISTEN
 * holds its connection for as long as it listens, so it cannot come from the pool), woken by
 * the NOTIFY each revocation-writing transaction sends at commit (revocations.ts).
 *
 * It is a hint, never the source of truth: a notification carries no events and is lost while
 * the connection is down. So the feed keeps its poll (every 250 ms), the listener reconnects by
 * itself with a backoff, and once reconnected wakes the feed in case something was missed.
 */
import pg from 'pg';
import { REVOCATION_CHANNEL } from './revocations.js';

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;

export class RevocationListener {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly wake: () => void,
    private readonly onError: (err: unknown) => void,
  ) {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url });
    this.client = client;
    let failed = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      client.removeAllListeners('notification');
      // an error event with no listener would kill the process; the client is done either way
      client.on('error', () => undefined);
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.onError(err);
      this.timer = setTimeout(() => void this.connect(), this.retryMs);
      this.timer.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error('the LISTEN connection to PostgreSQL ended')));
    client.on('notification', (n) => {
      // close() ends the connection asynchronously: a notification may still arrive after it
      if (n.channel === REVOCATION_CHANNEL && !this.closed) this.wake();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${REVOCATION_CHANNEL}`);
    } catch (err) {
      fail(err);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.retryMs = RETRY_MIN_MS;
    // whatever was committed while not listening: read it now rather than at the next tick
    this.wake();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners('end');
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
    }
  }
}
