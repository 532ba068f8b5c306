/**
 * The PostgreSQL store (node-postgres): the system of record when several latchkey nodes
 * share one database. Each aggregate is a file of its own (users, sessions, refresh, keys,
 * secrets, revocations, audit); this class composes them into the Store contract. Every operation
 * the contract calls atomic is one transaction (db.ts), safe against the same operation
 * running at once on other nodes.
 */
import type {
  AddKeyGuards,
  AtRest,
  AtRestChange,
  AuditEvent,
  NewAuditEvent,
  NewRefreshFamily,
  NewSigningKey,
  NewUser,
  RefreshRotation,
  RefreshTokenInfo,
  RevocationEvent,
  RevocationPolicy,
  RotationOutcome,
  Session,
  SessionLimit,
  SessionWithUser,
  SigningKeyRecord,
  Store,
  User,
  UserWithSecret,
} from '../store.js';
import type { StoreLog } from '../outage.js';
import * as audit from './audit.js';
import { Db, LOCK_MIGRATE } from './db.js';
import * as keys from './keys.js';
import { migrations } from './migrations.js';
import * as refresh from './refresh.js';
import * as revocations from './revocations.js';
import * as secrets from './secrets.js';
import * as sessions from './sessions.js';
import { RevocationListener } from './listen.js';
import { isPostgresUrl } from './url.js';
import * as users from './users.js';

export { isPostgresUrl, redactUrl } from './url.js';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (parameters as node-postgres takes them). */
  url: string;
  /** Connections in the pool; default 10. */
  poolSize?: number;
}

export interface MigrationReport {
  /** Schema version before and after. */
  from: number;
  to: number;
}

export class PostgresStore implements Store {
  /** Exposed for tests and later features that share the database. */
  readonly db: Db;
  private readonly url: string;
  private readonly listeners = new Set<RevocationListener>();
  private readonly closing: Promise<void>[] = [];

  constructor(opts: PostgresStoreOptions) {
    // node-postgres parses the URL with `new URL`, whose error carries the whole input: check first
    if (!isPostgresUrl(opts.url)) throw new Error('the database URL is not a postgres:// URL');
    this.db = new Db(opts.url, opts.poolSize ?? 10);
    this.url = opts.url;
  }

  async migrate(): Promise<void> {
    await this.migrateWithReport();
  }

  /**
   * Apply pending migrations, each in its own transaction, holding a session-level advisory lock
   * for the whole run: nodes starting together wait for the first, then find nothing to do.
   */
  migrateWithReport(): Promise<MigrationReport> {
    return this.db.withLock(LOCK_MIGRATE, async (client) => {
      await client.query(
        'CREATE TABLE IF NOT EXISTS latchkey_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const r = await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM latchkey_migrations');
      const from = r.rows[0]?.v ?? 0;
      if (from > migrations.length) {
        throw new Error(`database schema version ${from} is newer than this latchkey (${migrations.length})`);
      }
      for (let v = from; v < migrations.length; v++) {
        await client.query('BEGIN');
        try {
          await client.query(migrations[v]!);
          await client.query('INSERT INTO latchkey_migrations (version) VALUES ($1)', [v + 1]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
      return { from, to: migrations.length };
    });
  }

  async close(): Promise<void> {
    const listening = [...this.listeners];
    this.listeners.clear();
    await Promise.all([...listening.map((l) => l.close()), ...this.closing]);
    await this.db.pool.end();
  }

  setRevocationPolicy(policy: RevocationPolicy): void {
    this.db.policy = policy;
  }

  setLog(log: StoreLog): void {
    this.db.setLog(log);
  }

  createUser(user: NewUser): Promise<User> {
    return users.createUser(this.db, user);
  }
  getUserByEmail(email: string): Promise<UserWithSecret | undefined> {
    return users.getUserByEmail(this.db, email);
  }
  getUserById(id: string): Promise<UserWithSecret | undefined> {
    return users.getUserById(this.db, id);
  }
  changePassword(userId: string, passwordHash: string, keepSession?: Buffer): Promise<Session[]> {
    return users.changePassword(this.db, userId, passwordHash, keepSession);
  }
  setUserDisabled(userId: string, disabled: boolean): Promise<Session[]> {
    return users.setUserDisabled(this.db, userId, disabled);
  }
  setUserRoles(userId: string, roles: string[]): Promise<boolean> {
    return users.setUserRoles(this.db, userId, roles);
  }

  createSession(session: Session, opts?: SessionLimit): Promise<Session[]> {
    return sessions.createSession(this.db, session, opts);
  }
  getSession(idHash: Buffer): Promise<SessionWithUser | undefined> {
    return sessions.getSession(this.db, idHash);
  }
  touchSession(idHash: Buffer, lastSeenAt: number, ip: string): Promise<void> {
    return sessions.touchSession(this.db, idHash, lastSeenAt, ip);
  }
  listSessions(userId: string): Promise<Session[]> {
    return sessions.listSessions(this.db, userId);
  }
  findSessionByHandle(handle: Buffer, userId?: string): Promise<Session | undefined> {
    return sessions.findSessionByHandle(this.db, handle, userId);
  }
  deleteSession(idHash: Buffer): Promise<Session | undefined> {
    return sessions.deleteSession(this.db, idHash);
  }
  deleteUserSessions(userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Promise<Session[]> {
    return sessions.deleteUserSessions(this.db, userId, except, initiator);
  }
  deleteExpiredSessions(now: number, idleTimeoutSeconds: number): Promise<number> {
    return sessions.deleteExpiredSessions(this.db, now, idleTimeoutSeconds);
  }

  createRefreshFamily(family: NewRefreshFamily, opts?: SessionLimit): Promise<Session[]> {
    return refresh.createRefreshFamily(this.db, family, opts);
  }
  rotateRefreshToken(rotation: RefreshRotation): Promise<RotationOutcome> {
    return refresh.rotateRefreshToken(this.db, rotation);
  }
  findRefreshToken(tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined> {
    return refresh.findRefreshToken(this.db, tokenHash, familyKeyHash);
  }
  revokeRefreshFamily(family: { familyKeyHash: Buffer } | { sessionHash: Buffer }, clientId: string): Promise<Session | undefined> {
    return refresh.revokeRefreshFamily(this.db, family, clientId);
  }
  pruneRefreshTokens(before: number): Promise<number> {
    return refresh.pruneRefreshTokens(this.db, before);
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return keys.listSigningKeys(this.db);
  }
  addSigningKey(key: NewSigningKey, opts?: AddKeyGuards): Promise<boolean> {
    return keys.addSigningKey(this.db, key, opts);
  }
  promoteSigningKey(kid: string, at: number): Promise<boolean> {
    return keys.promoteSigningKey(this.db, kid, at);
  }
  retireSigningKey(kid: string, at: number): Promise<SigningKeyRecord | undefined> {
    return keys.retireSigningKey(this.db, kid, at);
  }
  getPrivateKey(kid: string): Promise<string | undefined> {
    return keys.getPrivateKey(this.db, kid);
  }
  forgetPrivateKeys(kids: readonly string[]): Promise<number> {
    return keys.forgetPrivateKeys(this.db, kids);
  }

  readAtRest(): Promise<AtRest> {
    return secrets.readAtRest(this.db);
  }
  addAtRest(add: AtRest): Promise<AtRest & { unknownKids: string[] }> {
    return secrets.addAtRest(this.db, add);
  }
  replaceAtRest(changes: readonly AtRestChange[]): Promise<number> {
    return secrets.replaceAtRest(this.db, changes);
  }

  listRevocations(afterSeq: number, limit: number, nowSeconds: number): Promise<RevocationEvent[]> {
    return revocations.listRevocations(this.db, afterSeq, limit, nowSeconds);
  }
  lastRevocationSeq(): Promise<number> {
    return revocations.lastRevocationSeq(this.db);
  }
  pruneRevocations(nowSeconds: number): Promise<number> {
    return revocations.pruneRevocations(this.db, nowSeconds);
  }
  watchRevocations(wake: () => void, onError: (err: unknown) => void): () => void {
    const l = new RevocationListener(this.url, wake, onError);
    this.listeners.add(l);
    return () => {
      if (this.listeners.delete(l)) this.closing.push(l.close());
    };
  }

  appendAuditEvent(event: NewAuditEvent): Promise<void> {
    return audit.appendAuditEvent(this.db, event);
  }
  pruneAuditEvents(before: number): Promise<number> {
    return audit.pruneAuditEvents(this.db, before);
  }
  listAuditEvents(query: { userId?: string; type?: string; before?: number; limit: number }): Promise<AuditEvent[]> {
    return audit.listAuditEvents(this.db, query);
  }
}
