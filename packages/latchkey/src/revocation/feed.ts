/**
 * The revocation feed's server side: reads new events from the store, signs
 * each as a SET once, and fans them out to subscribers, each from its own
 * position (snapshot, catch-up, then live). Transport-neutral: http/routes/
 * revocations.ts turns a subscriber into a Server-Sent Events stream.
 *
 * Where events come from: the store appends them in the transaction of each
 * change. This process's own writes wake the feed at once (RevocationPolicy.
 * onWrite); writes by another process sharing the store (the CLI, another
 * node) are found by a poll every POLL_MS. With PostgreSQL the poll becomes
 * LISTEN/NOTIFY; the positions and the protocol stay as they are.
 */
import type { KeyService } from '../keys/service.js';
import type { RevocationEvent, Store } from '../store/store.js';
import { setClaims, signSet } from './sets.js';

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
}

const POLL_MS = 250;
const PAGE = 500;
/** Signed SETs kept for reuse across subscribers (the newest ones; older are signed again on demand). */
const SIGNED_CACHE = 10_000;

export class RevocationFeed {
  private readonly subs = new Set<Sub>();
  /** seq -> signed SET (with the kid that signed it) */
  private readonly signed = new Map<number, { kid: string; set: string }>();
  private latest = 0;
  private polling: Promise<void> | undefined;
  private again = false;
  private timers: NodeJS.Timeout[] = [];
  private externalWrites: number | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly keys: KeyService,
    private readonly settings: FeedSettings,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    this.latest = await this.store.lastRevocationSeq();
    this.externalWrites = this.store.externalWriteCounter?.();
    const poll = setInterval(() => {
      // a store that can tell: ask it only when someone else wrote
      const counter = this.store.externalWriteCounter?.();
      if (counter === undefined || counter !== this.externalWrites) {
        this.externalWrites = counter;
        this.wake();
      }
    }, POLL_MS);
    const beat = setInterval(() => this.heartbeat(), this.settings.heartbeatSeconds * 1000);
    const prune = setInterval(() => {
      void this.store.pruneRevocations(this.seconds()).catch(() => undefined);
    }, 60_000);
    for (const t of [poll, beat, prune]) t.unref();
    this.timers = [poll, beat, prune];
  }

  /** Close every subscriber (they reconnect elsewhere) and stop. */
  stop(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const s of this.subs) s.out.close();
    this.subs.clear();
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
    this.polling = this.poll()
      .catch(() => undefined)
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
  async subscribe(out: Subscriber, after: number | undefined): Promise<(() => void) | undefined> {
    if (this.closed || this.subs.size >= this.settings.maxSubscribers) return undefined;
    const sub: Sub = { out, position: after ?? 0, live: false, pumping: false };
    this.subs.add(sub);
    const last = await this.store.lastRevocationSeq();
    if (sub.position > last) {
      // a position this store never handed out: the subscriber followed another store
      out.send({ event: 'reset', data: JSON.stringify({ seq: last }) });
      sub.position = 0;
    }
    await this.pump(sub);
    if (this.subs.has(sub)) {
      out.send({ event: 'ready', data: JSON.stringify({ seq: sub.position, heartbeatSeconds: this.settings.heartbeatSeconds }) });
    }
    return () => this.subs.delete(sub);
  }

  /** Send `sub` everything after its position from the store, then hand it to live delivery. */
  private async pump(sub: Sub): Promise<void> {
    sub.pumping = true;
    try {
      for (;;) {
        const page = await this.store.listRevocations(sub.position, PAGE, this.seconds());
        if (page.length === 0) break;
        for (const e of page) if (!this.deliver(sub, e)) return;
      }
    } finally {
      sub.pumping = false;
    }
    sub.live = true;
    // live delivery skipped it while it pumped: anything read since is still to send (same tick, no gap)
    if (sub.position < this.latest && this.subs.has(sub)) await this.pump(sub);
  }

  private async poll(): Promise<void> {
    for (;;) {
      const batch = await this.store.listRevocations(this.latest, PAGE, this.seconds());
      if (batch.length === 0) return;
      this.latest = batch[batch.length - 1]!.seq;
      for (const sub of this.subs) {
        if (!sub.live || sub.pumping) continue;
        for (const e of batch) if (e.seq > sub.position && !this.deliver(sub, e)) break;
      }
      if (batch.length < PAGE) return;
    }
  }

  /** Send one event; a subscriber that cannot keep up is dropped (it resumes from its position). */
  private deliver(sub: Sub, e: RevocationEvent): boolean {
    if (!this.subs.has(sub)) return false;
    const ok = sub.out.send({ event: 'set', id: e.seq, data: this.sign(e) });
    sub.position = e.seq;
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

  private heartbeat(): void {
    const data = JSON.stringify({ seq: this.latest, time: this.seconds() });
    for (const sub of this.subs) {
      if (sub.live && !sub.out.send({ event: 'heartbeat', data })) this.drop(sub);
    }
  }

  private drop(sub: Sub): void {
    this.subs.delete(sub);
    sub.out.close();
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
