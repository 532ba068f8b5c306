/**
 * Browser sessions: creation, authentication with an in-process cache, throttled
 * sliding renewal, and every way a session ends. No HTTP here.
 */
import type { Session, SessionLimit, SessionWithUser, Store } from '../store/store.js';
import { handleOf, hashSecret, looksLikeSecret, newSecret, parseHandle } from './ids.js';

export interface SessionSettings {
  idleTimeoutSeconds: number;
  absoluteLifetimeSeconds: number;
  touchIntervalSeconds: number;
  cacheSize: number;
  /** Sessions one user may hold; a new one ends the least recently used beyond it. */
  maxPerUser: number;
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
  /** ms timestamp when read from the store */
  loadedAt: number;
}

/**
 * Writes by this process evict cache entries at once. Writes by another
 * process (the CLI, another node) are noticed through the store's
 * externalWriteCounter, checked at most this often, which clears the cache;
 * a store without one gets entries re-read after CACHE_TTL_MS instead.
 */
const EXTERNAL_CHECK_MS = 250;
const CACHE_TTL_MS = 1000;

/** Returned by the synchronous fast path when the store must be asked. */
export const MISS = Symbol('miss');

export class SessionService {
  /**
   * Live sessions by cookie value. Keyed by the secret itself, not its hash:
   * SHA-256 per request cost 8% of a request's time (bench/sessions.ts), and
   * the secret is in this process's memory during every request anyway, beside
   * the signing keys; what must never hold a secret is the store, where only
   * SHA-256 is kept. `byHash` finds entries to evict from a store-side hash.
   */
  private readonly cache = new Map<string, CacheEntry>();
  private readonly byHash = new Map<string, string>();
  private readonly listeners: SessionEndListener[] = [];
  private lastExternalCheck = 0;
  private externalWrites: number | undefined;
  /** 0 when the store reports external writes, else CACHE_TTL_MS */
  private readonly ttl: number;

  constructor(
    private readonly store: Store,
    private readonly settings: SessionSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.ttl = store.externalWriteCounter ? 0 : CACHE_TTL_MS;
  }

  private checkExternalWrites(nowMs: number): void {
    this.lastExternalCheck = nowMs;
    const counter = this.store.externalWriteCounter?.();
    if (counter !== this.externalWrites) {
      this.externalWrites = counter;
      this.cache.clear();
      this.byHash.clear();
    }
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
    const found = await this.store.getSession(idHash);
    if (!found) {
      this.drop(key);
      return undefined;
    }
    const entry: CacheEntry = { value: { ...found, handle: handleOf(idHash) }, loadedAt: this.now() };
    this.remember(key, entry);
    return this.check(key, entry, ip);
  }

  /**
   * The synchronous fast path: answers from the cache when it can (a fresh
   * entry that needs no last-seen write), else MISS and the caller awaits
   * `authenticate`. Keeps the common request free of promises.
   */
  authenticateCached(secret: string | undefined): AuthenticatedSession | undefined | typeof MISS {
    if (!secret || !looksLikeSecret(secret)) return undefined;
    const key = secret;
    const nowMs = this.now();
    if (nowMs - this.lastExternalCheck >= EXTERNAL_CHECK_MS) this.checkExternalWrites(nowMs);
    const entry = this.cache.get(key);
    if (!entry || (this.ttl > 0 && nowMs - entry.loadedAt > this.ttl)) return MISS;
    const { session, user } = entry.value;
    const t = Math.floor(nowMs / 1000);
    if (user.disabled || !this.isLive(session, t)) {
      this.drop(key);
      return undefined;
    }
    if (t - session.lastSeenAt >= this.settings.touchIntervalSeconds) return MISS;
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
    for (const [k, e] of this.cache) if (e.value.user.id === userId) this.drop(k);
  }

  async sweep(): Promise<number> {
    return this.store.deleteExpiredSessions(this.seconds(), this.settings.idleTimeoutSeconds);
  }

  handle(session: Session): string {
    return handleOf(session.idHash);
  }

  private evict(sessions: readonly { idHash: Buffer }[]): void {
    for (const s of sessions) {
      const key = this.byHash.get(s.idHash.toString('latin1'));
      if (key !== undefined) this.drop(key);
    }
  }

  private remember(key: string, entry: CacheEntry): void {
    if (this.settings.cacheSize === 0) return;
    this.drop(key);
    this.cache.set(key, entry);
    this.byHash.set(entry.value.session.idHash.toString('latin1'), key);
    if (this.cache.size > this.settings.cacheSize) {
      // Map iterates in insertion order: the first key is the least recently loaded
      this.drop(this.cache.keys().next().value!);
    }
  }

  private drop(key: string): void {
    const entry = this.cache.get(key);
    if (!entry) return;
    this.cache.delete(key);
    this.byHash.delete(entry.value.session.idHash.toString('latin1'));
  }

  private emit(sessions: Session[], reason: EndReason): void {
    for (const l of this.listeners) l(sessions, reason);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
