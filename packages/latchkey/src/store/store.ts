/**
 * The store contract. Every adapter (SQLite, PostgreSQL) implements it and passes
 * test/store.contract.ts and test/store.tokens.contract.ts. Operations are named after
 * what the domain needs and are atomic on their own; callers never compose a
 * read and a write into a race. All times are Unix seconds.
 *
 * A store that cannot answer now (PostgreSQL unreachable; SQLite busy past its timeout,
 * full, read-only, damaged) fails the operation with LatchkeyError `store_unavailable`
 * (store/outage.ts), never with its own error. An operation's writes commit together or not
 * at all, so a failed one leaves nothing half-written.
 */
import type { StoreLog } from './outage.js';

export interface User {
  /** Public, stable, opaque: the `sub` of tokens. */
  id: string;
  /** Normalised (see accounts/email.ts). */
  email: string;
  roles: string[];
  disabled: boolean;
  createdAt: number;
  /** Unix seconds: tokens of this user issued earlier are revoked (roles changed, disabled); 0 if never. */
  tokensNotBefore?: number;
}

export interface UserWithSecret extends User {
  passwordHash: string;
}

export interface Session {
  /** SHA-256 of the secret cookie value; the secret itself is never stored. */
  idHash: Buffer;
  userId: string;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute end; the idle end is lastSeenAt + the configured idle timeout. */
  expiresAt: number;
  /** Human label derived from the User-Agent, e.g. "Firefox on Linux". */
  device: string;
  ip: string;
  /** Idle timeout of this session; absent: the configured browser-session one. Token clients' sessions carry their refresh family's. */
  idleTimeoutSeconds?: number;
}

export interface SessionWithUser {
  session: Session;
  user: User;
}

export interface NewUser {
  id: string;
  email: string;
  passwordHash: string;
  roles?: string[];
  createdAt: number;
}

export type SigningAlgorithm = 'EdDSA' | 'ES256' | 'RS256';

/** A signing key's public half and schedule. Its state at a time follows from the timestamps (keys/service.ts). */
export interface SigningKeyRecord {
  kid: string;
  alg: SigningAlgorithm;
  /** The public JWK as JSON text, as JWKS publishes it. */
  publicJwk: string;
  createdAt: number;
  /** Signs from this time; published from createdAt. */
  activatesAt: number;
  /** Stops signing at this time (a successor took over); null while no successor is scheduled. */
  deactivatesAt: number | null;
  /** Forced retirement: unpublished and refused at once. */
  retiredAt: number | null;
}

/** A key to add: its record, and its private half as the caller sealed it (keys/material.ts). */
export interface NewSigningKey extends SigningKeyRecord {
  /** The private key's stored text: the store keeps it as given and never returns it with the record. */
  privateKey: string;
}

/** addSigningKey's guards (see there). */
export interface AddKeyGuards {
  unlessScheduledAfter?: number;
  unlessSigningFrom?: number;
}

/**
 * Secrets and private keys at rest, as the caller sealed them (keys/at-rest.ts): sealed with the
 * key-encryption key, or plaintext without one (SQLite only). The store keeps each text as given.
 */
export interface AtRest {
  /** Secret name (`csrf.key`, `refresh.key`, `device.key`) → its stored text. */
  secrets: Record<string, string>;
  /** kid → the stored text of its private key. */
  privateKeys: Record<string, string>;
}

/** One compare-and-swap of replaceAtRest: a secret's or a private key's text. */
export type AtRestChange = ({ secret: string } | { kid: string }) & { from: string; to: string };

export interface NewRefreshFamily {
  /** The session the family keeps alive; created in the same transaction. */
  session: Session & { idleTimeoutSeconds: number };
  /** SHA-256 of the family key every token of the family starts with. */
  keyHash: Buffer;
  clientId: string;
  /** Hash of the first refresh token. */
  tokenHash: Buffer;
}

export interface RefreshRotation {
  tokenHash: Buffer;
  /** Hash of the family key the presented token starts with. */
  familyKeyHash: Buffer;
  successorHash: Buffer;
  /** The successor's secret, sealed by the caller; kept on the old row for the grace window only. */
  successorSealed: Buffer;
  /** When set, a family of another client is treated as unknown. */
  clientId: string | undefined;
  now: number;
  graceSeconds: number;
  ip: string;
}

export type RotationOutcome =
  /** The presented token was current: its successor is now. */
  | { outcome: 'rotated'; session: Session; user: User; clientId: string }
  /** Rotated moments ago (within grace): the same successor for this caller too, sealed with AAD `sealedBy`. */
  | { outcome: 'shared'; session: Session; user: User; clientId: string; successorSealed: Buffer; sealedBy: Buffer }
  /** An already-rotated token after the grace window: the family's session was deleted in the same transaction. */
  | { outcome: 'reused'; session: Session; clientId: string }
  /** The family is past its idle or absolute end, or its user is disabled. */
  | { outcome: 'expired' }
  | { outcome: 'unknown' };

export interface RefreshTokenInfo {
  session: Session;
  user: User;
  clientId: string;
  familyCreatedAt: number;
  /** The presented token is the family's current one (not rotated). */
  current: boolean;
  /** Issue time of the presented token, while its row exists. */
  issuedAt: number | undefined;
}

export interface AuditEvent {
  id: number;
  at: number;
  type: string;
  userId: string | null;
  /** Public session handle. */
  session: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
}

export type NewAuditEvent = Omit<AuditEvent, 'id'>;

/**
 * What a revocation refers to (docs/revocation.md):
 * session: one session's tokens (`sid`); user: every token of `userId` issued before
 * `tokensIssuedBefore` (disabled, signed out everywhere, password changed: `detail.reason`);
 * claims: the same after a role change; credential: the password changed (informational:
 * the user event beside it revokes the tokens);
 * key: every token signed with `kid`.
 */
export type RevocationKind = 'session' | 'user' | 'claims' | 'credential' | 'key';

export interface RevocationEvent {
  /** Position in the feed: strictly increasing, never reused. */
  seq: number;
  /** Unix ms. */
  at: number;
  kind: RevocationKind;
  userId: string | null;
  /** Public session handle, the `sid` claim. */
  sid: string | null;
  kid: string | null;
  /** Unix seconds (user, claims). */
  tokensIssuedBefore: number | null;
  /** Unix seconds: kept until then, when every token it refers to has expired. */
  until: number;
  /**
   * e.g. {roles} for claims, {initiator, reason} for sessions. A `user` event also has
   * `sids`: the public handles of every session the change ended (possibly none), at most
   * 200 per event; an adapter ending more writes further `user` events with the same cutoff.
   */
  detail: Record<string, unknown>;
}

/** How the store writes revocation events; set once by the app (defaults: an hour, Date.now). */
export interface RevocationPolicy {
  /** How long an event is kept: the longest token lifetime plus clock skew. */
  retainSeconds: number;
  now: () => number;
  /** Called after a transaction that wrote events commits (the feed polls at once). */
  onWrite?: () => void;
}

/** How many sessions one user may hold; the least recently used make room for a new one. */
export interface SessionLimit {
  maxPerUser?: number;
}

export interface Store {
  /** Create or upgrade the schema. Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Throws LatchkeyError('email_taken') if the email exists. */
  createUser(user: NewUser): Promise<User>;
  getUserByEmail(email: string): Promise<UserWithSecret | undefined>;
  getUserById(id: string): Promise<UserWithSecret | undefined>;
  /**
   * Replace the password hash and, in the same transaction, end every session
   * of the user except `keepSession`, moving the user's token cutoff
   * (`tokensNotBefore`): one user-wide revocation event, however many sessions
   * ended, naming them in `detail.sids`. Returns the ended sessions.
   */
  changePassword(userId: string, passwordHash: string, keepSession?: Buffer): Promise<Session[]>;
  /**
   * Disable (ending every session in the same transaction, with one user-wide revocation event
   * naming them in `detail.sids`) or re-enable. Returns the ended sessions.
   */
  setUserDisabled(userId: string, disabled: boolean): Promise<Session[]>;
  /** Replace the user's roles. Returns false if there is no such user. */
  setUserRoles(userId: string, roles: string[]): Promise<boolean>;

  /**
   * Create a session. With `maxPerUser`, the user's least recently used sessions
   * (smallest lastSeenAt) are ended in the same transaction until the new one makes
   * `maxPerUser`, each with its revocation event as every other session end; so a
   * user never holds more, whatever the rate of logins. Returns the ended sessions.
   */
  createSession(session: Session, opts?: SessionLimit): Promise<Session[]>;
  /** The session and its user, or undefined. Expiry is the caller's call. */
  getSession(idHash: Buffer): Promise<SessionWithUser | undefined>;
  /** Record activity (throttled by the caller). */
  touchSession(idHash: Buffer, lastSeenAt: number, ip: string): Promise<void>;
  /** All of a user's sessions, newest first. */
  listSessions(userId: string): Promise<Session[]>;
  /** A session by its public handle (a prefix of its hash), optionally only if owned by userId. */
  findSessionByHandle(handle: Buffer, userId?: string): Promise<Session | undefined>;
  /** End one session. Returns it if it existed. */
  deleteSession(idHash: Buffer): Promise<Session | undefined>;
  /**
   * End every session of a user except `except`. When any ended, the user's token cutoff moves
   * in the same transaction and one user-wide revocation event is written (never one per session:
   * the feed's growth must not be the user's to choose), naming the ended sessions in `detail.sids`.
   * Returns the ended sessions.
   */
  deleteUserSessions(userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Promise<Session[]>;
  /**
   * Remove sessions past their absolute end or idle end (their own idle timeout when set),
   * and what only they referred to (an adapter that deduplicates device labels forgets the
   * labels no session uses). Returns how many sessions.
   */
  deleteExpiredSessions(now: number, idleTimeoutSeconds: number): Promise<number>;
  /**
   * Optional, synchronous and cheap: a number that changes whenever another
   * process or connection has committed a write (any write). Only a hint that the
   * revocation feed should read now instead of every 250 ms; never a reason to drop
   * cached sessions (they are evicted by the revocation events themselves).
   */
  externalWriteCounter?(): number;

  /**
   * Create a session and its refresh family with the first token, in one transaction;
   * `maxPerUser` as in createSession (in the same transaction). Returns the ended sessions.
   */
  createRefreshFamily(family: NewRefreshFamily, opts?: SessionLimit): Promise<Session[]>;
  /**
   * The refresh grant as one atomic compare-and-swap: rotate the current token,
   * share the successor inside the grace window, or, for a replayed old token,
   * delete the family's session (and so the family) in the same transaction.
   * A rotation also records activity on the session.
   */
  rotateRefreshToken(rotation: RefreshRotation): Promise<RotationOutcome>;
  /** The family (and session) a token belongs to, or undefined. Expiry is the caller's call. */
  findRefreshToken(tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined>;
  /**
   * End the session of a refresh family (and so the family), found by its key hash or
   * its session, if the family belongs to `clientId`. Returns the ended session.
   */
  revokeRefreshFamily(family: { familyKeyHash: Buffer } | { sessionHash: Buffer }, clientId: string): Promise<Session | undefined>;
  /** Forget tokens rotated before `before`, and their sealed successors. Returns how many. */
  pruneRefreshTokens(before: number): Promise<number>;

  /** The keys' public records, oldest first; never their private halves. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Add a key with its private half, in one transaction; every other unretired key still
   * signing at `key.activatesAt` stops then. The guards make "check, then add" one atomic step,
   * so that under concurrent calls (any node) exactly one caller adds its key:
   * - `unlessScheduledAfter`: add nothing and return false when an unretired key activates after
   *   that time (nodes scheduling one rotation: the time is the active key's start);
   * - `unlessSigningFrom`: add nothing and return false when an unretired key of `key.alg` signs
   *   at that time or later (nodes starting together on a store with no key of that algorithm).
   */
  addSigningKey(key: NewSigningKey, opts?: AddKeyGuards): Promise<boolean>;
  /** Move an unretired key's start to `at`; every other key signing then stops. False if no such key. */
  promoteSigningKey(kid: string, at: number): Promise<boolean>;
  /**
   * Retire a key at once, deleting its private half in the same transaction. The record as it
   * was before, or undefined if there is no such key.
   */
  retireSigningKey(kid: string, at: number): Promise<SigningKeyRecord | undefined>;
  /** The stored text of an unretired key's private half; undefined when unknown, retired or forgotten. */
  getPrivateKey(kid: string): Promise<string | undefined>;
  /** Delete the private halves of `kids` (keys that left JWKS must never sign again). Returns how many it deleted. */
  forgetPrivateKeys(kids: readonly string[]): Promise<number>;

  /** Every stored secret, and the private half of every unretired key that has one. */
  readAtRest(): Promise<AtRest>;
  /**
   * In one transaction: store each secret of `add` unless one of that name is stored, and each
   * private key on its key row unless the row has one or is retired; then read as readAtRest.
   * Under concurrent calls (any node) every caller gets the same secrets: those stored first.
   * `unknownKids`: the kids of `add.privateKeys` that have no key row (nothing stored for them).
   */
  addAtRest(add: AtRest): Promise<AtRest & { unknownKids: string[] }>;
  /**
   * Replace stored texts only where each is still `from`, in one transaction (sealing plaintext
   * in place once a key-encryption key is set). Returns how many it replaced.
   */
  replaceAtRest(changes: readonly AtRestChange[]): Promise<number>;

  /**
   * Revocations. Every operation above that ends sessions, disables a user, changes
   * roles or retires a key appends its events in its own transaction.
   */
  setRevocationPolicy(policy: RevocationPolicy): void;
  /** Events after `afterSeq` still kept at `nowSeconds`, oldest first, at most `limit`. */
  listRevocations(afterSeq: number, limit: number, nowSeconds: number): Promise<RevocationEvent[]>;
  /** The highest seq ever handed out (pruned ones included); 0 before the first event. */
  lastRevocationSeq(): Promise<number>;
  /** Forget events whose tokens have all expired. Returns how many. */
  pruneRevocations(nowSeconds: number): Promise<number>;
  /**
   * Optional: a cross-process hint that events were committed, so readers poll at once instead of
   * on their next timer tick (PostgreSQL: LISTEN/NOTIFY on a connection of its own, NOTIFY sent
   * in the transaction that writes the events). Only a hint: `wake` carries no events, may come
   * for nothing, and is lost while the connection is down (`onError` is told; the adapter
   * reconnects by itself and calls `wake` once reconnected), so readers keep polling. Returns the
   * function that stops listening; close() stops every listener too.
   */
  watchRevocations?(wake: () => void, onError: (err: unknown) => void): () => void;

  /** Optional: where the store logs each outage's start and end (the app's logger). */
  setLog?(log: StoreLog): void;

  appendAuditEvent(event: NewAuditEvent): Promise<void>;
  /** Forget audit events older than `before` (Unix seconds; `at < before`). Returns how many. */
  pruneAuditEvents(before: number): Promise<number>;
  /** Newest first. */
  listAuditEvents(query: { userId?: string; type?: string; before?: number; limit: number }): Promise<AuditEvent[]>;
}
