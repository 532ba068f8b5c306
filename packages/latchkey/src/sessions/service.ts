/**
 * Browser sessions: creation, authentication with an in-process cache, throttled
 * sliding renewal, and every way a session ends. No HTTP here.
 */
import { performance } from 'node:perf_hooks';
import type { RevocationEvent, Session, SessionLimit, SessionWithUser, Store } from '../store/store.js';
import { handleOf, hashSecret, looksLikeSecret, newSecret, parseHandle, SECRET_LENGTH } from './ids.js';

export interface SessionSettings {
  idleTimeoutSeconds: number;
  absoluteLifetimeSeconds: number;
  touchIntervalSeconds: number;
  cacheSize: number;
  /** Sessions one user may hold; a new one ends the least recently used beyond it. */
  maxPerUser: number;
  /** Read the store on every request: no cached session is trusted (no window after a revocation on another node). */
  strict?: boolean;
}

/**
 * Where the cache learns what other processes ended: the revocation feed, the one reader of the
 * store's revocation events in a process (revocation/feed.ts).
 */
export interface RevocationEvents {
  follow(fn: (events: readonly RevocationEvent[]) => void): void;
  /** performance.now() when every event committed before it had been handed to the followers. */
  readonly caughtUpAt: number;
  /** Check now, if the feed's timer is overdue, whether `caughtUpAt` can move (the same rule as the timer). */
  freshen?(): void;
}

/** Cache counters, for operators, tests and benchmarks. */
export interface SessionCacheStats {
  /** Entries held now. */
  size: number;
  /** Requests answered from the cache. */
  hits: number;
  /** Requests that read the store. */
  misses: number;
  /** Entries dropped because a revocation event (from any process) named their session or user. */
  evictedByEvents: number;
}

export type EndReason =
  | 'logout'
  | 'revoked'
  | 'revoked_by_admin'
  | 'password_changed'
  | 'user_disabled'
  | 'signed_out_everywhere'
  | 'login'
  /** an already-rotated refresh token was replayed after the grace window (refresh/) */
  | 'refresh_reuse_detected'
  /** the least recently used session, ended to make room for a new one (sessions.maxPerUser) */
  | 'session_limit';

/** Told of every ended session (revocation feed, audit log, token caches). */
export type SessionEndListener = (sessions: readonly Session[], reason: EndReason) => void;

export interface ClientInfo {
  userAgent: string | undefined;
  ip: string;
}

/** A live session as the HTTP layer sees it. */
export interface AuthenticatedSession extends SessionWithUser {
  /** public handle (sid) of this session */
  handle: string;
}

interface CacheEntry {
  value: AuthenticatedSession;
  /** performance.now() when read from the store (real time: it bounds staleness, not expiry) */
  loadedAt: number;
}

/**
 * Writes by this process evict cache entries at once. Writes by another process (the CLI,
 * another node) evict exactly what they ended: every way a session stops being valid writes a
 * revocation event (docs/store.md), which the feed reads and hands to `followRevocations`
 * (woken at once by NOTIFY on PostgreSQL; polled every 250 ms otherwise). Expiry is checked on
 * every hit. Other writes (sign-ups, last-seen times) leave the cache alone.
 *
 * A hit is trusted only while the feed has confirmed within TRUST_MS that it has read every
 * event: if reading stalls (the store slow or down), requests read the store, so a stalled feed
 * never stretches the window past TRUST_MS. Without a feed (a SessionService on its own), entries
 * are re-read after TRUST_MS.
 */
const TRUST_MS = 1000;

/** Returned by the synchronous fast path when the store must be asked. */
export const MISS = Symbol('miss');

export class SessionService {
  /**
   * Live sessions by cookie value. Keyed by the secret itself, not its hash:
   * a hash would be a SHA-256 on every hit, where a map lookup is all a hit
   * needs, and the secret is in this process's memory during every request anyway, beside
   * the signing keys; what must never hold a secret is the store, where only
   * SHA-256 is kept. `byHandle` finds entries to evict from a store-side hash or an event's sid.
   */
  private readonly cache = new Map<string, CacheEntry>();
  /** cache key by session handle (sid): what revocation events and store-side hashes name */
  private readonly byHandle = new Map<string, string>();
  /** cache keys by user id: user-wide events (cutoff moved, disabled, roles) drop them all */
  private readonly byUser = new Map<string, Set<string>>();
  private readonly listeners: SessionEndListener[] = [];
  private events: RevocationEvents | undefined;
  /**
   * Bumped by every eviction: a store read that began before one must not be cached (it may have
   * read a session that the eviction's event ended after the read, and nothing would evict it again).
   */
  private generation = 0;
  private readonly counters = { hits: 0, misses: 0, evictedByEvents: 0 };

  constructor(
    private readonly store: Store,
    private readonly settings: SessionSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Evict what other processes end, from the revocation events the feed reads (app.ts). */
  followRevocations(events: RevocationEvents): void {
    this.events = events;
    events.follow((batch) => this.applyRevocations(batch));
  }

  /** Drop exactly what each event ended; idempotent (a batch may come twice). */
  private applyRevocations(batch: readonly RevocationEvent[]): void {
    this.generation++;
    const before = this.cache.size;
    for (const e of batch) {
      if (e.kind === 'session') {
        if (e.sid) this.dropHandle(e.sid);
      } else if (e.kind === 'user' || e.kind === 'claims' || e.kind === 'credential') {
        const sids = (e.detail as { sids?: unknown }).sids;
        if (Array.isArray(sids)) for (const sid of sids) if (typeof sid === 'string') this.dropHandle(sid);
        // the cutoff moved, the user was disabled or their roles changed: every entry of theirs is stale
        if (e.userId) this.forgetUser(e.userId);
      }
      // 'key' events end no session
    }
    this.counters.evictedByEvents += before - this.cache.size;
  }

  /** Counters of the session cache. */
  stats(): SessionCacheStats {
    return { size: this.cache.size, ...this.counters };
  }

  onEnd(listener: SessionEndListener): void {
    this.listeners.push(listener);
  }

  /** Start a session; returns the secret for the cookie (shown once, never stored). */
  async create(userId: string, client: ClientInfo, deviceLabel: string): Promise<{ secret: string; session: Session }> {
    const secret = newSecret();
    const t = this.seconds();
    const session: Session = {
      idHash: hashSecret(secret),
      userId,
      createdAt: t,
      lastSeenAt: t,
      expiresAt: t + this.settings.absoluteLifetimeSeconds,
      device: deviceLabel,
      ip: client.ip,
    };
    this.ended(await this.store.createSession(session, this.limit), 'session_limit');
    return { secret, session };
  }

  /**
   * The live session for a cookie value, or undefined. Refuses expired (idle or
   * absolute) sessions and disabled users; records activity at most once per
   * touch interval.
   */
  async authenticate(secret: string | undefined, ip: string): Promise<AuthenticatedSession | undefined> {
    const hit = this.authenticateCached(secret);
    if (hit !== MISS) return hit;
    const key = secret!;
    const idHash = hashSecret(key);
    this.counters.misses++;
    const generation = this.generation;
    const found = await this.store.getSession(idHash);
    if (!found) {
      this.drop(key);
      return undefined;
    }
    // named fields, not a spread: a spread literal defines each property through the runtime's slow path
    const entry: CacheEntry = { value: { session: found.session, user: found.user, handle: handleOf(idHash) }, loadedAt: performance.now() };
    if (generation === this.generation && !this.settings.strict) this.remember(key, entry);
    return this.check(key, entry, ip);
  }

  /**
   * The synchronous fast path: answers from the cache when it can (a fresh
   * entry that needs no last-seen write), else MISS and the caller awaits
   * `authenticate`. Keeps the common request free of promises.
   */
  authenticateCached(secret: string | undefined): AuthenticatedSession | undefined | typeof MISS {
    if (!secret) return undefined;
    const key = secret;
    // a key is cached only after its shape passed below, so a hit needs no shape check (a 43-character
    // scan, a large part of a hit's cost); the length test keeps an oversized header from being hashed for the lookup
    const entry = key.length === SECRET_LENGTH ? this.cache.get(key) : undefined;
    if (!entry) return looksLikeSecret(key) ? MISS : undefined;
    // trusted only while the feed is known to be current (or, without one, while the entry is young)
    const real = performance.now();
    const events = this.events;
    if (events) {
      if (real - events.caughtUpAt > TRUST_MS) {
        // the feed's timer may be starved by a busy event loop: confirm here, by the timer's own rule
        events.freshen?.();
        if (real - events.caughtUpAt > TRUST_MS) return MISS;
      }
    } else if (real - entry.loadedAt > TRUST_MS) return MISS;
    const { session, user } = entry.value;
    const t = Math.floor(this.now() / 1000);
    if (user.disabled || !this.isLive(session, t)) {
      this.drop(key);
      return undefined;
    }
    if (t - session.lastSeenAt >= this.settings.touchIntervalSeconds) return MISS;
    this.counters.hits++;
    return entry.value;
  }

  private async check(key: string, entry: CacheEntry, ip: string): Promise<AuthenticatedSession | undefined> {
    const { session, user } = entry.value;
    const t = this.seconds();
    if (user.disabled || !this.isLive(session, t)) {
      this.drop(key);
      return undefined;
    }
    if (t - session.lastSeenAt >= this.settings.touchIntervalSeconds) {
      session.lastSeenAt = t;
      session.ip = ip;
      await this.store.touchSession(session.idHash, t, ip);
    }
    return entry.value;
  }

  /** The per-user cap, for every store call that creates a session (refresh families too). */
  get limit(): SessionLimit {
    return { maxPerUser: this.settings.maxPerUser };
  }

  isLive(session: Session, t = this.seconds()): boolean {
    const idle = session.idleTimeoutSeconds ?? this.settings.idleTimeoutSeconds;
    return session.expiresAt > t && session.lastSeenAt + idle > t;
  }

  async list(userId: string): Promise<Session[]> {
    const t = this.seconds();
    return (await this.store.listSessions(userId)).filter((s) => this.isLive(s, t));
  }

  /** End the session behind a cookie value (logout). */
  async endBySecret(secret: string, reason: EndReason): Promise<Session | undefined> {
    if (!looksLikeSecret(secret)) return undefined;
    return this.end(hashSecret(secret), reason);
  }

  async end(idHash: Buffer, reason: EndReason): Promise<Session | undefined> {
    const ended = await this.store.deleteSession(idHash);
    this.evict([ended ?? { idHash }]);
    if (ended) this.emit([ended], reason);
    return ended;
  }

  /** End a session by its public handle; with `userId`, only if it is theirs. */
  async endByHandle(handle: string, reason: EndReason, userId?: string): Promise<Session | undefined> {
    const prefix = parseHandle(handle);
    if (!prefix) return undefined;
    const s = await this.store.findSessionByHandle(prefix, userId);
    return s && this.end(s.idHash, reason);
  }

  /** End every session of a user but `except`. */
  async endAllForUser(userId: string, reason: EndReason, except?: Buffer): Promise<Session[]> {
    const ended = await this.store.deleteUserSessions(userId, except, reason === 'revoked_by_admin' ? 'admin' : 'user');
    this.ended(ended, reason);
    // the user's token cutoff moved: the session kept must be read again, so the gateway mints
    // its next token after the cutoff instead of handing out a cached one that is now revoked
    if (ended.length) this.forgetUser(userId);
    return ended;
  }

  /** For store operations that end sessions as part of a larger change (password, disable). */
  ended(sessions: Session[], reason: EndReason): void {
    this.evict(sessions);
    if (sessions.length) this.emit(sessions, reason);
  }

  /** Drop cached entries of a user whose record changed (roles, disabled). */
  forgetUser(userId: string): void {
    const keys = this.byUser.get(userId);
    if (!keys) return;
    for (const k of [...keys]) this.drop(k);
  }

  async sweep(): Promise<number> {
    return this.store.deleteExpiredSessions(this.seconds(), this.settings.idleTimeoutSeconds);
  }

  handle(session: Session): string {
    return handleOf(session.idHash);
  }

  private evict(sessions: readonly { idHash: Buffer }[]): void {
    this.generation++;
    for (const s of sessions) this.dropHandle(handleOf(s.idHash));
  }

  private dropHandle(handle: string): void {
    const key = this.byHandle.get(handle);
    if (key !== undefined) this.drop(key);
  }

  private remember(key: string, entry: CacheEntry): void {
    if (this.settings.cacheSize === 0) return;
    this.drop(key);
    this.cache.set(key, entry);
    this.byHandle.set(entry.value.handle, key);
    const userId = entry.value.user.id;
    let keys = this.byUser.get(userId);
    if (!keys) this.byUser.set(userId, (keys = new Set()));
    keys.add(key);
    if (this.cache.size > this.settings.cacheSize) {
      // Map iterates in insertion order: the first key is the least recently loaded
      this.drop(this.cache.keys().next().value!);
    }
  }

  private drop(key: string): void {
    const entry = this.cache.get(key);
    if (!entry) return;
    this.cache.delete(key);
    this.byHandle.delete(entry.value.handle);
    const keys = this.byUser.get(entry.value.user.id);
    keys?.delete(key);
    if (keys?.size === 0) this.byUser.delete(entry.value.user.id);
  }

  private emit(sessions: Session[], reason: EndReason): void {
    for (const l of this.listeners) l(sessions, reason);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
