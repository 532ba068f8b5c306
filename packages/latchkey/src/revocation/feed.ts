/**
 * The revocation feed's server side: reads new events from the store, signs
 * each as a SET once, and fans them out to subscribers, each from its own
 * position (snapshot, catch-up, then live). Transport-neutral: http/routes/
 * revocations.ts turns a subscriber into a Server-Sent Events stream.
 *
 * Where events come from: the store appends them in the transaction of each
 * change. This process's own writes wake the feed at once (RevocationPolicy.
 * onWrite); writes by another process sharing the store (the CLI, another
 * node) are found by a poll every POLL_MS, woken at once by the store's
 * cross-process hint when it has one (PostgreSQL LISTEN/NOTIFY; SQLite's
 * data_version only tells the poll whether to read). The feed is the one reader
 * of the events in a process: followers (the session cache) get each batch it
 * reads, before signing, and `caughtUpAt` says when it last knew it had read
 * everything, so a follower can stop trusting what it holds when reading stalls.
 */
import { performance } from 'node:perf_hooks';
import type { KeyService } from '../keys/service.js';
import type { RevocationEvent, Store } from '../store/store.js';
import { controlClaims, setClaims, signControl, signSet, type ControlKind } from './sets.js';

export interface FeedSettings {
  issuer: string;
  heartbeatSeconds: number;
  maxSubscribers: number;
}

/** One message on the wire; `id` is the seq for `set` messages. */
export interface FeedMessage {
  event: 'set' | 'ready' | 'heartbeat' | 'reset';
  data: string;
  id?: number;
}

export interface Subscriber {
  /** Deliver one message; false when the transport is backed up (the subscriber is then dropped). */
  send(message: FeedMessage): boolean;
  /** Ends the transport; the subscriber reconnects from its position. */
  close(): void;
}

interface Sub {
  out: Subscriber;
  position: number;
  live: boolean;
  pumping: boolean;
  /** The subscriber's per-connection challenge, echoed in every signed control message. */
  nonce: string | undefined;
}

const POLL_MS = 250;
const PAGE = 500;
/** Signed SETs kept for reuse across subscribers (the newest ones; older are signed again on demand). */
const SIGNED_CACHE = 10_000;

export class RevocationFeed {
  private readonly subs = new Set<Sub>();
  /** seq -> signed SET (with the kid that signed it) */
  private readonly signed = new Map<number, { kid: string; set: string }>();
  /** Every live subscriber has been sent everything up to here; the next poll reads after it. */
  private latest = 0;
  /** The highest seq read from the store, delivered or not: what heartbeats announce, so a subscriber can see a gap. */
  private head = 0;
  /** Polls, deliveries and heartbeats that failed (logged through onError). */
  failures = 0;
  /** Told of every failure; the app points it at its logger. */
  onError: (err: unknown, what: string) => void = () => undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  /** The last poll failed: the timer polls again even though nobody wrote. */
  private retry = false;
  private timers: NodeJS.Timeout[] = [];
  private externalWrites: number | undefined;
  private closed = false;
  private readonly followers: ((events: readonly RevocationEvent[]) => void)[] = [];
  private unwatch: (() => void) | undefined;
  /**
   * performance.now() of the start of the last poll that read to the end (or of the last check
   * that found no foreign write with nothing in flight): every event committed before it has been
   * handed to the followers. Real time, not the injected clock: it measures propagation.
   */
  caughtUpAt = -Infinity;
  /** performance.now() of the last check for other writers (the timer's, or `freshen`'s). */
  private checkedAt = -Infinity;

  constructor(
    private readonly store: Store,
    private readonly keys: KeyService,
    private readonly settings: FeedSettings,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    this.latest = await this.store.lastRevocationSeq();
    this.head = this.latest;
    this.caughtUpAt = performance.now();
    this.externalWrites = this.store.externalWriteCounter?.();
    // another node's commit wakes the poll at once; the timer below stays the safety net
    this.unwatch = this.store.watchRevocations?.(
      () => this.wake(),
      (err) => this.fail(err, 'revocation feed: listening for other nodes\' events failed; polling every 250 ms until it reconnects'),
    );
    const poll = setInterval(() => this.check(), POLL_MS);
    const beat = setInterval(() => this.heartbeat(), this.settings.heartbeatSeconds * 1000);
    const prune = setInterval(() => {
      void this.store.pruneRevocations(this.seconds()).catch((err: unknown) => this.fail(err, 'revocation feed: pruning expired events failed'));
    }, 60_000);
    for (const t of [poll, beat, prune]) t.unref();
    this.timers = [poll, beat, prune];
  }

  /**
   * The poll timer's check: a store that can tell (SQLite's data_version) is read only when
   * someone else wrote; otherwise, with no read in flight, everything committed is known to have
   * been handed to the followers, and `caughtUpAt` moves to now.
   */
  private check(): void {
    const checkedAt = performance.now();
    this.checkedAt = checkedAt;
    const counter = this.store.externalWriteCounter?.();
    if (counter === undefined || counter !== this.externalWrites || this.retry) {
      this.externalWrites = counter;
      this.wake();
    } else if (!this.polling) {
      this.caughtUpAt = checkedAt;
    }
  }

  /**
   * Run the timer's check now if it is overdue. A busy server can run no timer for seconds (libuv
   * goes on reading sockets while every read returns a full batch of events, up to 48 batches
   * before it turns to timers): followers would then stop trusting what they hold exactly when load
   * is highest. The rule is the timer's, so nothing is trusted that the timer would not trust.
   */
  freshen(): void {
    if (this.timers.length === 0 || this.closed) return; // not started (nothing read yet), or stopped
    if (performance.now() - this.checkedAt < POLL_MS) return;
    this.check();
  }

  /** Close every subscriber (they reconnect elsewhere) and stop. */
  stop(): void {
    this.closed = true;
    this.unwatch?.();
    for (const t of this.timers) clearInterval(t);
    for (const s of this.subs) s.out.close();
    this.subs.clear();
  }

  /**
   * Be handed every batch of events the feed reads, in order, before they are signed (a signing
   * failure must not delay an eviction). A batch may come again after a failed poll: followers
   * must be idempotent. Errors a follower throws are logged, not propagated.
   */
  follow(fn: (events: readonly RevocationEvent[]) => void): void {
    this.followers.push(fn);
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** New events may have been written: read and deliver them (coalesced). */
  wake(): void {
    if (this.polling) {
      this.again = true;
      return;
    }
    this.retry = false;
    this.polling = this.poll()
      .catch((err: unknown) => {
        this.retry = true;
        this.fail(err, 'revocation feed: reading or delivering events failed; retried on the next poll');
      })
      .finally(() => {
        this.polling = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /**
   * Add a subscriber at `after` (undefined: a fresh one, which gets the
   * snapshot). Returns the unsubscribe function, or undefined when full.
   */
  async subscribe(out: Subscriber, after: number | undefined, nonce?: string): Promise<(() => void) | undefined> {
    if (this.closed || this.subs.size >= this.settings.maxSubscribers) return undefined;
    const sub: Sub = { out, position: after ?? 0, live: false, pumping: false, nonce };
    this.subs.add(sub);
    try {
      const last = await this.store.lastRevocationSeq();
      if (sub.position > last) {
        // a position this store never handed out: the subscriber followed another store
        out.send({ event: 'reset', data: this.control('reset', last, sub.nonce) });
        sub.position = 0;
      }
      await this.pump(sub);
      if (this.subs.has(sub)) out.send({ event: 'ready', data: this.control('ready', sub.position, sub.nonce) });
    } catch (err) {
      // nothing after the failure was sent: the subscriber reconnects from the last event it got
      this.subs.delete(sub);
      this.fail(err, 'revocation feed: catching a subscriber up failed');
      throw err;
    }
    return () => this.subs.delete(sub);
  }

  /** Send `sub` everything after its position from the store, then hand it to live delivery. */
  private async pump(sub: Sub): Promise<void> {
    sub.pumping = true;
    try {
      for (;;) {
        // everything up to what was read before this page is either in it or expired
        const upTo = this.head;
        const page = await this.store.listRevocations(sub.position, PAGE, this.seconds());
        if (page.length === 0) {
          // events past their retention are never sent; the subscriber is caught up past them
          // (else heartbeats would announce a gap it can never close)
          if (upTo > sub.position) sub.position = upTo;
          break;
        }
        for (const e of page) if (!this.deliver(sub, e)) return;
      }
    } finally {
      sub.pumping = false;
    }
    sub.live = true;
    // live delivery skipped it while it pumped: anything read since is still to send (same tick, no gap)
    if (sub.position < this.head && this.subs.has(sub)) await this.pump(sub);
  }

  private async poll(): Promise<void> {
    const startedAt = performance.now();
    for (;;) {
      const batch = await this.store.listRevocations(this.latest, PAGE, this.seconds());
      if (batch.length === 0) {
        this.caughtUpAt = startedAt;
        return;
      }
      for (const f of this.followers) {
        try {
          f(batch);
        } catch (err) {
          this.fail(err, 'revocation feed: a follower failed on a batch of events');
        }
      }
      this.head = Math.max(this.head, batch[batch.length - 1]!.seq);
      for (const e of batch) {
        // signed before anyone gets it: if signing fails, `latest` stays before this event, the next
        // poll tries again, and heartbeats (carrying `head`) show subscribers the gap meanwhile
        const data = this.sign(e);
        for (const sub of this.subs) {
          if (!sub.live || sub.pumping || e.seq <= sub.position) continue;
          this.send(sub, e.seq, data);
        }
        this.latest = e.seq;
      }
      if (batch.length < PAGE) {
        this.caughtUpAt = startedAt;
        return;
      }
    }
  }

  /** Send one event; a subscriber that cannot keep up is dropped (it resumes from its position). */
  private deliver(sub: Sub, e: RevocationEvent): boolean {
    if (!this.subs.has(sub)) return false;
    return this.send(sub, e.seq, this.sign(e));
  }

  private send(sub: Sub, seq: number, data: string): boolean {
    const ok = sub.out.send({ event: 'set', id: seq, data });
    sub.position = seq;
    if (!ok) this.drop(sub);
    return ok;
  }

  private sign(e: RevocationEvent): string {
    const signer = this.keys.signer();
    const hit = this.signed.get(e.seq);
    // signed again once its key stops signing: a subscriber may no longer find that key in the JWKS
    if (hit && hit.kid === signer.kid) return hit.set;
    const set = signSet(signer, setClaims(this.settings.issuer, e));
    this.signed.set(e.seq, { kid: signer.kid, set });
    if (this.signed.size > SIGNED_CACHE) this.signed.delete(this.signed.keys().next().value!);
    return set;
  }

  /**
   * Heartbeats are signed (a forged one must not keep a subscriber "healthy") and carry `head`,
   * the newest event this server has read: a subscriber whose position is behind it after the
   * heartbeat has missed something and reconnects from its position. One signature per beat
   * (and per distinct position), shared by every subscriber: no nonce, so the cost does not grow
   * with subscribers (RS256 signs in milliseconds); `ready` and `reset`, once per connection,
   * carry the subscriber's nonce.
   */
  private heartbeat(): void {
    const shared = new Map<number, string>();
    for (const sub of this.subs) {
      if (!sub.live) continue;
      // a catch-up may have sent events the poll has not read yet: never announce less than was sent
      const seq = Math.max(this.head, sub.position);
      let data = shared.get(seq);
      if (data === undefined) {
        try {
          data = this.control('heartbeat', seq, undefined);
        } catch (err) {
          // no heartbeat at all: subscribers go stale and fail closed, as they should
          this.fail(err, 'revocation feed: signing a heartbeat failed');
          return;
        }
        shared.set(seq, data);
      }
      if (!sub.out.send({ event: 'heartbeat', data })) this.drop(sub);
    }
  }

  private control(kind: ControlKind, seq: number, nonce: string | undefined): string {
    const claims = controlClaims(this.settings.issuer, this.seconds(), { kind, seq, nonce, heartbeatSeconds: this.settings.heartbeatSeconds });
    return signControl(this.keys.signer(), claims);
  }

  private fail(err: unknown, what: string): void {
    this.failures++;
    this.onError(err, what);
  }

  private drop(sub: Sub): void {
    this.subs.delete(sub);
    sub.out.close();
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
