/**
 * The embedded store: one SQLite file in WAL mode via better-sqlite3. Each aggregate is a
 * file of its own (users, sessions, refresh, keys, revocations, audit); this class composes
 * them into the Store contract. Calls are synchronous underneath (microseconds on a warm page
 * cache) and exposed through the async contract so the server code is the same for every
 * adapter; every operation the contract calls atomic is one write transaction (db.ts).
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
import { Db, openDatabase } from './db.js';
import type { Database } from './driver.js';
import * as keys from './keys.js';
import { migrations } from './migrations.js';
import * as refresh from './refresh.js';
import * as revocations from './revocations.js';
import * as sessions from './sessions.js';
import * as users from './users.js';
import * as atRest from './secrets.js';

export { DEVICE_PRUNE_ABOVE } from './sessions.js';

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  filename: string;
}

export class SqliteStore implements Store {
  /** Exposed for adapters of later features that share the file (same process). */
  readonly db: Database;
  private readonly conn: Db;

  constructor(opts: SqliteStoreOptions) {
    this.db = openDatabase(opts.filename);
    this.conn = new Db(this.db);
  }

  async migrate(): Promise<void> {
    this.migrateSync();
  }

  /** Apply pending migrations in one transaction each. */
  migrateSync(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > migrations.length) {
      throw new Error(`database schema version ${current} is newer than this latchkey (${migrations.length})`);
    }
    for (let v = current; v < migrations.length; v++) {
      this.db.transaction(() => {
        this.db.exec(migrations[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  /** PRAGMA data_version: changes when another connection (the CLI, another process) commits. */
  externalWriteCounter(): number {
    return this.conn.get<{ data_version: number }>('PRAGMA data_version')!.data_version;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  setRevocationPolicy(policy: RevocationPolicy): void {
    this.conn.policy = policy;
  }

  setLog(log: StoreLog): void {
    this.conn.setLog(log);
  }

  async createUser(user: NewUser): Promise<User> {
    return users.createUser(this.conn, user);
  }
  async getUserByEmail(email: string): Promise<UserWithSecret | undefined> {
    return users.getUserByEmail(this.conn, email);
  }
  async getUserById(id: string): Promise<UserWithSecret | undefined> {
    return users.getUserById(this.conn, id);
  }
  async changePassword(userId: string, passwordHash: string, keepSession?: Buffer): Promise<Session[]> {
    return users.changePassword(this.conn, userId, passwordHash, keepSession);
  }
  async setUserDisabled(userId: string, disabled: boolean): Promise<Session[]> {
    return users.setUserDisabled(this.conn, userId, disabled);
  }
  async setUserRoles(userId: string, roles: string[]): Promise<boolean> {
    return users.setUserRoles(this.conn, userId, roles);
  }

  async createSession(session: Session, opts?: SessionLimit): Promise<Session[]> {
    return sessions.createSession(this.conn, session, opts);
  }
  async getSession(idHash: Buffer): Promise<SessionWithUser | undefined> {
    return sessions.getSession(this.conn, idHash);
  }
  async touchSession(idHash: Buffer, lastSeenAt: number, ip: string): Promise<void> {
    sessions.touchSession(this.conn, idHash, lastSeenAt, ip);
  }
  async listSessions(userId: string): Promise<Session[]> {
    return sessions.listSessions(this.conn, userId);
  }
  async findSessionByHandle(handle: Buffer, userId?: string): Promise<Session | undefined> {
    return sessions.findSessionByHandle(this.conn, handle, userId);
  }
  async deleteSession(idHash: Buffer): Promise<Session | undefined> {
    return sessions.deleteSession(this.conn, idHash);
  }
  async deleteUserSessions(userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Promise<Session[]> {
    return sessions.deleteUserSessions(this.conn, userId, except, initiator);
  }
  async deleteExpiredSessions(now: number, idleTimeoutSeconds: number): Promise<number> {
    return sessions.deleteExpiredSessions(this.conn, now, idleTimeoutSeconds);
  }

  async createRefreshFamily(family: NewRefreshFamily, opts?: SessionLimit): Promise<Session[]> {
    return refresh.createRefreshFamily(this.conn, family, opts);
  }
  async rotateRefreshToken(rotation: RefreshRotation): Promise<RotationOutcome> {
    return refresh.rotateRefreshToken(this.conn, rotation);
  }
  async findRefreshToken(tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined> {
    return refresh.findRefreshToken(this.conn, tokenHash, familyKeyHash);
  }
  async revokeRefreshFamily(family: { familyKeyHash: Buffer } | { sessionHash: Buffer }, clientId: string): Promise<Session | undefined> {
    return refresh.revokeRefreshFamily(this.conn, family, clientId);
  }
  async pruneRefreshTokens(before: number): Promise<number> {
    return refresh.pruneRefreshTokens(this.conn, before);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return keys.listSigningKeys(this.conn);
  }
  async addSigningKey(key: NewSigningKey, opts?: AddKeyGuards): Promise<boolean> {
    return keys.addSigningKey(this.conn, key, opts);
  }
  async promoteSigningKey(kid: string, at: number): Promise<boolean> {
    return keys.promoteSigningKey(this.conn, kid, at);
  }
  async retireSigningKey(kid: string, at: number): Promise<SigningKeyRecord | undefined> {
    return keys.retireSigningKey(this.conn, kid, at);
  }

  // secrets and private keys at rest: store/sqlite/secrets.ts
  async getPrivateKey(kid: string): Promise<string | undefined> {
    return atRest.getPrivateKey(this.db, kid);
  }
  async forgetPrivateKeys(kids: readonly string[]): Promise<number> {
    return atRest.forgetPrivateKeys(this.db, kids);
  }
  async readAtRest(): Promise<AtRest> {
    return atRest.readAtRest(this.db);
  }
  async addAtRest(add: AtRest): Promise<AtRest & { unknownKids: string[] }> {
    return atRest.addAtRest(this.db, add);
  }
  async replaceAtRest(changes: readonly AtRestChange[]): Promise<number> {
    return atRest.replaceAtRest(this.db, changes);
  }


  async listRevocations(afterSeq: number, limit: number, nowSeconds: number): Promise<RevocationEvent[]> {
    return revocations.listRevocations(this.conn, afterSeq, limit, nowSeconds);
  }
  async lastRevocationSeq(): Promise<number> {
    return revocations.lastRevocationSeq(this.conn);
  }
  async pruneRevocations(nowSeconds: number): Promise<number> {
    return revocations.pruneRevocations(this.conn, nowSeconds);
  }

  async appendAuditEvent(event: NewAuditEvent): Promise<void> {
    audit.appendAuditEvent(this.conn, event);
  }
  async pruneAuditEvents(before: number): Promise<number> {
    return audit.pruneAuditEvents(this.conn, before);
  }
  async listAuditEvents(query: { userId?: string; type?: string; before?: number; limit: number }): Promise<AuditEvent[]> {
    return audit.listAuditEvents(this.conn, query);
  }
}
