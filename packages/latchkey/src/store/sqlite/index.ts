/**
 * The embedded store: one SQLite file in WAL mode via better-sqlite3. Calls are
 * synchronous underneath (microseconds on a warm page cache) and exposed through
 * the async Store contract so the server code is the same for every adapter.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { restrictMode } from '../../keys/secrets.js';
import { dirname } from 'node:path';
import { Database, type Statement } from './driver.js';
import { LatchkeyError } from '../../errors.js';
import { handleOf } from '../../sessions/ids.js';
import { userEventDetails } from '../../revocation/user-events.js';
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
  RevocationKind,
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
import { migrations } from './migrations.js';
import * as atRest from './secrets.js';
import { familyLive, toKey, toSession, type KeyRow, type SessionRow } from '../rows.js';

interface UserRow {
  rowid: number;
  id: string;
  email: string;
  password_hash: string;
  roles: string;
  disabled: number;
  created_at: number;
  tokens_not_before: number;
}
type SessionUserRow = SessionRow & Omit<UserRow, 'rowid' | 'password_hash' | 'id'>;

const SESSION_COLS = `s.id_hash, u.id AS user_id, s.created_at, s.last_seen_at, s.expires_at, d.label AS device, s.ip, s.idle_timeout`;
const SESSION_FROM = `sessions s JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;

/** The sweep forgets unused device labels once there are more than this many. */
export const DEVICE_PRUNE_ABOVE = 1024;

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  filename: string;
}

export class SqliteStore implements Store {
  /** Exposed for adapters of later features that share the file (same process). */
  readonly db: Database;
  private stmts!: ReturnType<SqliteStore['prepare']>;
  private dataVersion!: Statement;
  private tok!: ReturnType<SqliteStore['prepareTokens']>;
  private revocation: RevocationPolicy = { retainSeconds: 3600, now: Date.now };
  /** Events appended by the transaction under way; onWrite is told once it commits. */
  private revocationsWritten = false;

  constructor(opts: SqliteStoreOptions) {
    if (opts.filename !== ':memory:') {
      mkdirSync(dirname(opts.filename), { recursive: true, mode: 0o700 });
      // SQLite creates the file with the process umask (often 0644) and gives -wal/-shm the
      // database file's mode: create it 0600 first, and tighten one found looser
      try {
        closeSync(openSync(opts.filename, 'wx', 0o600));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      for (const suffix of ['', '-wal', '-shm', '-journal']) restrictMode(opts.filename + suffix, 0o600);
    }
    this.db = new Database(opts.filename);
    this.db.pragma('journal_mode = WAL');
    // NORMAL is durable across application crashes in WAL mode; a power loss can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
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
    this.stmts = this.prepare();
    this.dataVersion = this.db.prepare('PRAGMA data_version').pluck();
    this.tok = this.prepareTokens();
  }

  private prepare() {
    const db = this.db;
    return {
      insertUser: db.prepare(
        `INSERT INTO users (id, email, password_hash, roles, disabled, created_at) VALUES (?, ?, ?, ?, 0, ?)`,
      ),
      userByEmail: db.prepare<[string], UserRow>(`SELECT * FROM users WHERE email = ?`),
      userById: db.prepare<[string], UserRow>(`SELECT * FROM users WHERE id = ?`),
      setPassword: db.prepare(`UPDATE users SET password_hash = ? WHERE id = ?`),
      setDisabled: db.prepare(`UPDATE users SET disabled = ? WHERE id = ?`),
      setRoles: db.prepare(`UPDATE users SET roles = ? WHERE id = ?`),
      setTokensNotBefore: db.prepare(`UPDATE users SET tokens_not_before = MAX(tokens_not_before, ?) WHERE id = ?`),
      insertRevocation: db.prepare(
        `INSERT INTO revocations (at, kind, user_id, sid, kid, tokens_issued_before, until, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      listRevocations: db.prepare<[number, number, number], RevocationRow>(
        `SELECT * FROM revocations WHERE seq > ? AND until > ? ORDER BY seq LIMIT ?`,
      ),
      lastRevocationSeq: db.prepare<[], { seq: number }>(`SELECT seq FROM sqlite_sequence WHERE name = 'revocations'`),
      pruneRevocations: db.prepare(`DELETE FROM revocations WHERE until <= ?`),
      deviceId: db.prepare<[string], { id: number }>(`SELECT id FROM devices WHERE label = ?`),
      insertDevice: db.prepare(`INSERT INTO devices (label) VALUES (?) ON CONFLICT(label) DO NOTHING`),
      insertSession: db.prepare(
        `INSERT INTO sessions (id_hash, user_rowid, created_at, last_seen_at, expires_at, device_id, ip, idle_timeout)
         SELECT ?, rowid, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
      ),
      getSession: db.prepare<[Buffer], SessionUserRow>(
        `SELECT ${SESSION_COLS}, u.email, u.roles, u.disabled, u.created_at AS user_created_at, u.tokens_not_before
         FROM ${SESSION_FROM} WHERE s.id_hash = ?`,
      ),
      touch: db.prepare(`UPDATE sessions SET last_seen_at = ?, ip = ? WHERE id_hash = ?`),
      listSessions: db.prepare<[string], SessionRow>(
        `SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE u.id = ? ORDER BY s.created_at DESC, s.id_hash`,
      ),
      byHandle: db.prepare<[Buffer, Buffer], SessionRow>(
        `SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE s.id_hash >= ? AND s.id_hash < ? LIMIT 2`,
      ),
      oneSession: db.prepare<[Buffer], SessionRow>(`SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE s.id_hash = ?`),
      deleteSession: db.prepare(`DELETE FROM sessions WHERE id_hash = ?`),
      countUserSessions: db.prepare<[string], { n: number }>(
        `SELECT COUNT(*) AS n FROM sessions WHERE user_rowid = (SELECT rowid FROM users WHERE id = ?)`,
      ),
      leastRecentlyUsed: db.prepare<[string, number], SessionRow>(
        `SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE u.id = ? ORDER BY s.last_seen_at, s.created_at, s.id_hash LIMIT ?`,
      ),
      countDevices: db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM devices`),
      pruneDevices: db.prepare(`DELETE FROM devices WHERE id NOT IN (SELECT device_id FROM sessions)`),
      deleteExpired: db.prepare(
        `DELETE FROM sessions WHERE expires_at <= @now OR last_seen_at + COALESCE(idle_timeout, @idle) <= @now`,
      ),
    };
  }

  /** PRAGMA data_version: changes when another connection (the CLI, another process) commits. */
  externalWriteCounter(): number {
    return this.dataVersion.get() as number;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async createUser(user: NewUser): Promise<User> {
    try {
      this.stmts.insertUser.run(user.id, user.email, user.passwordHash, JSON.stringify(user.roles ?? []), user.createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new LatchkeyError('email_taken', 'an account with this email exists');
      }
      throw err;
    }
    return { id: user.id, email: user.email, roles: user.roles ?? [], disabled: false, createdAt: user.createdAt };
  }

  async getUserByEmail(email: string): Promise<UserWithSecret | undefined> {
    const row = this.stmts.userByEmail.get(email);
    return row && toUser(row);
  }

  async getUserById(id: string): Promise<UserWithSecret | undefined> {
    const row = this.stmts.userById.get(id);
    return row && toUser(row);
  }

  async changePassword(userId: string, passwordHash: string, keepSession?: Buffer): Promise<Session[]> {
    const ended = this.db
      .transaction(() => {
        const r = this.stmts.setPassword.run(passwordHash, userId);
        if (r.changes === 0) throw new LatchkeyError('user_not_found', 'no such user');
        this.revoke('credential', { userId, detail: { credential_type: 'password', initiator: 'user' } });
        // one cutoff for the user, not an event per session: the kept session is renewed by the caller,
        // and the renewed session's tokens are minted after the cutoff
        const ended = this.deleteUserSessionsSync(userId, keepSession);
        this.revokeUserTokens('user', userId, { initiator: 'user', reason: 'password_changed' }, ended);
        return ended;
      })
      .immediate();
    return this.committed(ended);
  }

  async setUserDisabled(userId: string, disabled: boolean): Promise<Session[]> {
    const ended = this.db
      .transaction(() => {
        const r = this.stmts.setDisabled.run(disabled ? 1 : 0, userId);
        if (r.changes === 0) throw new LatchkeyError('user_not_found', 'no such user');
        if (!disabled) return [];
        // one event for the user as a whole: it also covers tokens of sessions ended earlier
        const ended = this.deleteUserSessionsSync(userId);
        this.revokeUserTokens('user', userId, { initiator: 'admin', reason: 'disabled' }, ended);
        return ended;
      })
      .immediate();
    return this.committed(ended);
  }

  async setUserRoles(userId: string, roles: string[]): Promise<boolean> {
    const found = this.db
      .transaction(() => {
        if (this.stmts.setRoles.run(JSON.stringify(roles), userId).changes === 0) return false;
        // tokens carrying the old roles are refused; the issuer signs new ones from the next second
        this.revokeUserTokens('claims', userId, { roles });
        return true;
      })
      .immediate();
    return this.committed(found);
  }

  setRevocationPolicy(policy: RevocationPolicy): void {
    this.revocation = policy;
  }

  async listRevocations(afterSeq: number, limit: number, nowSeconds: number): Promise<RevocationEvent[]> {
    return this.stmts.listRevocations.all(afterSeq, nowSeconds, Math.max(1, limit)).map(toRevocation);
  }

  async lastRevocationSeq(): Promise<number> {
    return this.stmts.lastRevocationSeq.get()?.seq ?? 0;
  }

  async pruneRevocations(nowSeconds: number): Promise<number> {
    return this.stmts.pruneRevocations.run(nowSeconds).changes;
  }

  /** Append one event inside the caller's transaction. */
  private revoke(
    kind: RevocationKind,
    e: { userId?: string; sid?: string; kid?: string; tokensIssuedBefore?: number; detail?: Record<string, unknown> },
  ): void {
    const at = this.revocation.now();
    const until = Math.floor(at / 1000) + this.revocation.retainSeconds;
    this.stmts.insertRevocation.run(
      at,
      kind,
      e.userId ?? null,
      e.sid ?? null,
      e.kid ?? null,
      e.tokensIssuedBefore ?? null,
      until,
      JSON.stringify(e.detail ?? {}),
    );
    this.revocationsWritten = true;
  }

  /**
   * Every token of the user issued before the next second is revoked; the issuer never signs an earlier iat again.
   * `ended`: the sessions this change ends, named in the event (`detail.sids`) so that a token minted for one of
   * them after the cutoff (by a request or refresh grant that read the session just before it ended) is refused
   * too: the cutoff alone cannot tell such a token from one of a session that lives on (docs/revocation.md).
   */
  private revokeUserTokens(kind: 'user' | 'claims', userId: string, detail: Record<string, unknown>, ended?: readonly Session[]): void {
    // strictly past the previous cutoff: tokens minted since a change earlier in the same second carry
    // iat = that cutoff, and this change must revoke them too (else a role granted and taken back within
    // a second would leave the granted tokens valid). Many changes in one second date new tokens ahead;
    // verifiers refuse those past their clock tolerance until time catches up (fail closed).
    const previous = this.stmts.userById.get(userId)?.tokens_not_before ?? 0;
    const cutoff = Math.max(Math.floor(this.revocation.now() / 1000) + 1, previous + 1);
    this.stmts.setTokensNotBefore.run(cutoff, userId);
    if (ended === undefined) {
      this.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail });
      return;
    }
    for (const d of userEventDetails(detail, ended)) this.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail: d });
  }

  private revokeSession(s: Session, detail: Record<string, unknown>): void {
    this.revoke('session', { userId: s.userId, sid: handleOf(s.idHash), detail });
  }

  /** After a transaction: tell the feed if it wrote events. Returns `value`. */
  private committed<T>(value: T): T {
    if (this.revocationsWritten) {
      this.revocationsWritten = false;
      this.revocation.onWrite?.();
    }
    return value;
  }

  /**
   * Inside a transaction: end the user's sessions past the cap, then insert `s`. Returns the ended
   * sessions; throws user_not_found (rolling the evictions back with the transaction).
   */
  private insertSessionUnderCap(s: Session, maxPerUser: number | undefined): Session[] {
    const evicted = this.evictForNewSession(s.userId, maxPerUser);
    const r = this.stmts.insertSession.run(
      s.idHash,
      s.createdAt,
      s.lastSeenAt,
      s.expiresAt,
      this.deviceIdFor(s.device),
      s.ip,
      s.idleTimeoutSeconds ?? null,
      s.userId,
    );
    if (r.changes === 0) throw new LatchkeyError('user_not_found', 'no such user');
    return evicted;
  }

  async createSession(s: Session, opts: SessionLimit = {}): Promise<Session[]> {
    const evicted = this.db.transaction(() => this.insertSessionUnderCap(s, opts.maxPerUser)).immediate();
    return this.committed(evicted);
  }

  async getSession(idHash: Buffer): Promise<SessionWithUser | undefined> {
    const r = this.stmts.getSession.get(idHash) as (SessionUserRow & { user_created_at: number; tokens_not_before: number }) | undefined;
    if (!r) return undefined;
    return {
      session: toSession(r),
      user: {
        id: r.user_id,
        email: r.email,
        roles: JSON.parse(r.roles) as string[],
        disabled: r.disabled === 1,
        createdAt: r.user_created_at,
        tokensNotBefore: r.tokens_not_before,
      },
    };
  }

  async touchSession(idHash: Buffer, lastSeenAt: number, ip: string): Promise<void> {
    this.stmts.touch.run(lastSeenAt, ip, idHash);
  }

  async listSessions(userId: string): Promise<Session[]> {
    return this.stmts.listSessions.all(userId).map(toSession);
  }

  async findSessionByHandle(handle: Buffer, userId?: string): Promise<Session | undefined> {
    const rows = this.stmts.byHandle.all(handle, prefixEnd(handle));
    // two matches would mean a handle collision: refuse rather than guess
    if (rows.length !== 1) return undefined;
    const s = toSession(rows[0]!);
    if (userId !== undefined && s.userId !== userId) return undefined;
    return s;
  }

  async deleteSession(idHash: Buffer): Promise<Session | undefined> {
    const ended = this.db
      .transaction(() => {
        const row = this.stmts.oneSession.get(idHash);
        if (!row) return undefined;
        this.stmts.deleteSession.run(idHash);
        const s = toSession(row);
        this.revokeSession(s, {});
        return s;
      })
      .immediate();
    return this.committed(ended);
  }

  async deleteUserSessions(userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Promise<Session[]> {
    const ended = this.db
      .transaction(() => {
        const gone = this.deleteUserSessionsSync(userId, except);
        // one user-wide cutoff however many sessions ended (the feed's growth is not the user's to choose);
        // the session kept gets fresh tokens, minted after it
        if (gone.length) this.revokeUserTokens('user', userId, { ...(initiator ? { initiator } : {}), reason: 'signed_out_everywhere' }, gone);
        return gone;
      })
      .immediate();
    return this.committed(ended);
  }

  async deleteExpiredSessions(now: number, idleTimeoutSeconds: number): Promise<number> {
    return this.db
      .transaction(() => {
        const n = this.stmts.deleteExpired.run({ now, idle: idleTimeoutSeconds }).changes;
        // labels come from clients' User-Agents: forget those no session shows. Finding them scans
        // every session, so only once the table outgrows what the normalised labels
        // (sessions/device.ts) can fill: then it is labels of another writer or of older versions
        if ((this.stmts.countDevices.get()?.n ?? 0) > DEVICE_PRUNE_ABOVE) this.stmts.pruneDevices.run();
        return n;
      })
      .immediate();
  }

  private prepareTokens() {
    const db = this.db;
    const FAMILY_COLS = `f.session_hash, f.key_hash, f.client_id, f.created_at AS family_created_at, ${SESSION_COLS},
      u.email, u.roles, u.disabled, u.created_at AS user_created_at, u.tokens_not_before`;
    const JOINS = `JOIN sessions s ON s.id_hash = f.session_hash JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;
    return {
      insertFamily: db.prepare(`INSERT INTO refresh_families (session_hash, key_hash, client_id, created_at) VALUES (?, ?, ?, ?)`),
      insertToken: db.prepare(`INSERT INTO refresh_tokens (hash, session_hash, created_at) VALUES (?, ?, ?)`),
      tokenWithFamily: db.prepare<[Buffer], TokenRow & FamilyRow>(
        `SELECT t.hash, t.created_at AS token_created_at, t.rotated_at, t.successor_hash, t.successor_sealed, ${FAMILY_COLS}
         FROM refresh_tokens t JOIN refresh_families f ON f.session_hash = t.session_hash ${JOINS} WHERE t.hash = ?`,
      ),
      token: db.prepare<[Buffer], TokenRow>(
        `SELECT hash, created_at AS token_created_at, rotated_at, successor_hash, successor_sealed FROM refresh_tokens WHERE hash = ?`,
      ),
      familyByKey: db.prepare<[Buffer], FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.key_hash = ?`),
      familyBySession: db.prepare<[Buffer], FamilyRow>(
        `SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.session_hash = ?`,
      ),
      markRotated: db.prepare(
        `UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ?, successor_sealed = ? WHERE hash = ? AND rotated_at IS NULL`,
      ),
      pruneFamily: db.prepare(`DELETE FROM refresh_tokens WHERE session_hash = ? AND rotated_at IS NOT NULL AND rotated_at < ?`),
      prune: db.prepare(`DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND rotated_at < ?`),
      listKeys: db.prepare<[], KeyRow>(`SELECT * FROM signing_keys ORDER BY activates_at, kid`),
      oneKey: db.prepare<[string], KeyRow>(`SELECT * FROM signing_keys WHERE kid = ?`),
      scheduledAfter: db.prepare<[number], { kid: string }>(
        `SELECT kid FROM signing_keys WHERE retired_at IS NULL AND activates_at > ? LIMIT 1`,
      ),
      signingFrom: db.prepare<[string, number], { kid: string }>(
        `SELECT kid FROM signing_keys WHERE retired_at IS NULL AND alg = ? AND (deactivates_at IS NULL OR deactivates_at > ?) LIMIT 1`,
      ),
      nextStart: db.prepare<[number, string], { at: number | null }>(
        `SELECT MIN(activates_at) AS at FROM signing_keys WHERE retired_at IS NULL AND activates_at > ? AND kid != ?`,
      ),
      insertKey: db.prepare(
        `INSERT INTO signing_keys (kid, alg, public_jwk, created_at, activates_at, deactivates_at, retired_at, private_key)
         VALUES (@kid, @alg, @publicJwk, @createdAt, @activatesAt, @deactivatesAt, @retiredAt, @privateKey)`,
      ),
      setStart: db.prepare(`UPDATE signing_keys SET activates_at = ?, deactivates_at = ? WHERE kid = ?`),
      stopOthersAt: db.prepare(
        `UPDATE signing_keys SET deactivates_at = @at WHERE kid != @kid AND retired_at IS NULL
         AND activates_at < @at AND (deactivates_at IS NULL OR deactivates_at > @at)`,
      ),
      // the private half goes with the retirement: a retired key must never sign again
      retireKey: db.prepare(`UPDATE signing_keys SET retired_at = ?, private_key = NULL WHERE kid = ? AND retired_at IS NULL`),
      pruneAudit: db.prepare(`DELETE FROM audit_events WHERE at < ?`),
      insertAudit: db.prepare(
        `INSERT INTO audit_events (at, type, user_id, session, ip, detail) VALUES (?, ?, ?, ?, ?, ?)`,
      ),
    };
  }

  async createRefreshFamily(f: NewRefreshFamily, opts: SessionLimit = {}): Promise<Session[]> {
    const evicted = this.db
      .transaction(() => {
        const s = f.session;
        const evicted = this.insertSessionUnderCap(s, opts.maxPerUser);
        this.tok.insertFamily.run(s.idHash, f.keyHash, f.clientId, s.createdAt);
        this.tok.insertToken.run(f.tokenHash, s.idHash, s.createdAt);
        return evicted;
      })
      .immediate();
    return this.committed(evicted);
  }

  async rotateRefreshToken(r: RefreshRotation): Promise<RotationOutcome> {
    const outcome = this.db
      .transaction((): RotationOutcome => {
        const row = this.tok.tokenWithFamily.get(r.tokenHash);
        if (!row || !row.key_hash.equals(r.familyKeyHash)) {
          // an old token whose row was pruned still names its family by its key
          const family = this.tok.familyByKey.get(r.familyKeyHash);
          if (!family || (r.clientId !== undefined && family.client_id !== r.clientId)) return { outcome: 'unknown' };
          return this.endFamily(family);
        }
        if (r.clientId !== undefined && row.client_id !== r.clientId) return { outcome: 'unknown' };
        if (row.rotated_at === null) {
          if (!familyLive(row, r.now)) return { outcome: 'expired' };
          if (this.tok.markRotated.run(r.now, r.successorHash, r.successorSealed, r.tokenHash).changes !== 1) {
            throw new Error('refresh token row changed inside its transaction');
          }
          this.tok.insertToken.run(r.successorHash, row.session_hash, r.now);
          this.stmts.touch.run(r.now, r.ip, row.session_hash);
          // keep only what the grace window may still need; older replays are caught by the family key
          this.tok.pruneFamily.run(row.session_hash, r.now - r.graceSeconds);
          const session = { ...toSession(row), lastSeenAt: r.now, ip: r.ip };
          return { outcome: 'rotated', session, user: familyUser(row), clientId: row.client_id };
        }
        if (r.now - row.rotated_at < r.graceSeconds) {
          // a fast client may have rotated the successor too: hand out the newest one
          let link: TokenRow = row;
          for (let i = 0; i < 16 && link.successor_hash; i++) {
            const next = this.tok.token.get(link.successor_hash);
            if (!next || next.rotated_at === null) break;
            link = next;
          }
          if (!familyLive(row, r.now)) return { outcome: 'expired' };
          if (link.successor_sealed) {
            return {
              outcome: 'shared',
              session: toSession(row),
              user: familyUser(row),
              clientId: row.client_id,
              successorSealed: link.successor_sealed,
              sealedBy: link.hash,
            };
          }
        }
        return this.endFamily(row);
      })
      .immediate();
    return this.committed(outcome);
  }

  /** Reuse detected: the session goes, and with it (FK cascade) the family and every token of it. */
  private endFamily(family: FamilyRow): RotationOutcome {
    this.stmts.deleteSession.run(family.session_hash);
    const session = toSession(family);
    this.revokeSession(session, { initiator: 'policy', reason: 'refresh_token_reuse' });
    return { outcome: 'reused', session, clientId: family.client_id };
  }

  async findRefreshToken(tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined> {
    const row = this.tok.tokenWithFamily.get(tokenHash);
    if (row && row.key_hash.equals(familyKeyHash)) {
      return { ...familyInfo(row), current: row.rotated_at === null, issuedAt: row.token_created_at };
    }
    const family = this.tok.familyByKey.get(familyKeyHash);
    return family && { ...familyInfo(family), current: false, issuedAt: undefined };
  }

  async revokeRefreshFamily(
    by: { familyKeyHash: Buffer } | { sessionHash: Buffer },
    clientId: string,
  ): Promise<Session | undefined> {
    const ended = this.db
      .transaction(() => {
        const family =
          'familyKeyHash' in by ? this.tok.familyByKey.get(by.familyKeyHash) : this.tok.familyBySession.get(by.sessionHash);
        if (!family || family.client_id !== clientId) return undefined;
        this.stmts.deleteSession.run(family.session_hash);
        const s = toSession(family);
        this.revokeSession(s, { initiator: 'user', reason: 'refresh_token_revoked' });
        return s;
      })
      .immediate();
    return this.committed(ended);
  }

  async pruneRefreshTokens(before: number): Promise<number> {
    return this.tok.prune.run(before).changes;
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.tok.listKeys.all().map(toKey);
  }

  async addSigningKey(key: NewSigningKey, opts: AddKeyGuards = {}): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (opts.unlessScheduledAfter !== undefined && this.tok.scheduledAfter.get(opts.unlessScheduledAfter)) return false;
        if (opts.unlessSigningFrom !== undefined && this.tok.signingFrom.get(key.alg, opts.unlessSigningFrom)) return false;
        this.tok.insertKey.run({ ...key });
        this.scheduleSync(key.kid, key.activatesAt);
        return true;
      })
      .immediate();
  }

  async promoteSigningKey(kid: string, at: number): Promise<boolean> {
    return this.db
      .transaction(() => {
        const row = this.tok.oneKey.get(kid);
        if (!row || row.retired_at !== null) return false;
        this.scheduleSync(kid, at);
        return true;
      })
      .immediate();
  }

  /** Key `kid` signs from `at` until the next scheduled key; every other key signing at `at` stops then. */
  private scheduleSync(kid: string, at: number): void {
    // one signer at a time: if a later key is already scheduled, this one hands over to it
    const next = this.tok.nextStart.get(at, kid)?.at ?? null;
    this.tok.setStart.run(at, next, kid);
    this.tok.stopOthersAt.run({ at, kid });
  }

  async retireSigningKey(kid: string, at: number): Promise<SigningKeyRecord | undefined> {
    const before = this.db
      .transaction(() => {
        const row = this.tok.oneKey.get(kid);
        if (!row) return undefined;
        if (this.tok.retireKey.run(at, kid).changes === 1) this.revoke('key', { kid, detail: { initiator: 'admin' } });
        return toKey(row);
      })
      .immediate();
    return this.committed(before);
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

  async appendAuditEvent(e: NewAuditEvent): Promise<void> {
    this.tok.insertAudit.run(e.at, e.type, e.userId, e.session, e.ip, JSON.stringify(e.detail));
  }

  async pruneAuditEvents(before: number): Promise<number> {
    return this.tok.pruneAudit.run(before).changes;
  }

  async listAuditEvents(q: { userId?: string; type?: string; before?: number; limit: number }): Promise<AuditEvent[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.before !== undefined) {
      where.push('id < ?');
      params.push(q.before);
    }
    if (q.userId !== undefined) {
      where.push('user_id = ?');
      params.push(q.userId);
    }
    if (q.type !== undefined) {
      where.push('type = ?');
      params.push(q.type);
    }
    params.push(Math.max(1, Math.min(q.limit, 1000)));
    const rows = this.db
      .prepare<(string | number)[], AuditRow>(
        `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      )
      .all(...params);
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      type: r.type,
      userId: r.user_id,
      session: r.session,
      ip: r.ip,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }

  /** The caller revokes the user's tokens as a whole (revokeUserTokens) in the same transaction. */
  private deleteUserSessionsSync(userId: string, except?: Buffer): Session[] {
    const ended = this.stmts.listSessions.all(userId).map(toSession).filter((s) => !except || !s.idHash.equals(except));
    for (const s of ended) this.stmts.deleteSession.run(s.idHash);
    return ended;
  }

  /**
   * The id of a device label, inserted if new. Not cached: the sweep forgets labels no
   * session uses, possibly from another process, and a stale id would hide the session.
   * Called inside the session's own transaction, so the sweep cannot remove it in between.
   */
  private deviceIdFor(label: string): number {
    this.stmts.insertDevice.run(label);
    return this.stmts.deviceId.get(label)!.id;
  }

  /**
   * Make room for one more session of `userId` under `maxPerUser`: end the least recently
   * used ones, each with its revocation event. Inside the caller's transaction.
   */
  private evictForNewSession(userId: string, maxPerUser: number | undefined): Session[] {
    if (maxPerUser === undefined) return [];
    const count = this.stmts.countUserSessions.get(userId)?.n ?? 0;
    const excess = count - Math.max(1, maxPerUser) + 1;
    if (excess <= 0) return [];
    const evicted = this.stmts.leastRecentlyUsed.all(userId, excess).map(toSession);
    for (const s of evicted) {
      this.stmts.deleteSession.run(s.idHash);
      this.revokeSession(s, { initiator: 'policy', reason: 'session_limit' });
    }
    return evicted;
  }
}

function toUser(r: UserRow): UserWithSecret {
  return {
    id: r.id,
    email: r.email,
    passwordHash: r.password_hash,
    roles: JSON.parse(r.roles) as string[],
    disabled: r.disabled === 1,
    createdAt: r.created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}

interface RevocationRow {
  seq: number;
  at: number;
  kind: RevocationKind;
  user_id: string | null;
  sid: string | null;
  kid: string | null;
  tokens_issued_before: number | null;
  until: number;
  detail: string;
}

function toRevocation(r: RevocationRow): RevocationEvent {
  return {
    seq: r.seq,
    at: r.at,
    kind: r.kind,
    userId: r.user_id,
    sid: r.sid,
    kid: r.kid,
    tokensIssuedBefore: r.tokens_issued_before,
    until: r.until,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  };
}

/** Smallest blob greater than every blob starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  // all 0xff: longer than any 32-byte hash, so greater than every match
  return Buffer.alloc(33, 0xff);
}

interface FamilyRow extends SessionRow {
  session_hash: Buffer;
  key_hash: Buffer;
  client_id: string;
  family_created_at: number;
  email: string;
  roles: string;
  disabled: number;
  user_created_at: number;
  tokens_not_before: number;
}
interface TokenRow {
  hash: Buffer;
  token_created_at: number;
  rotated_at: number | null;
  successor_hash: Buffer | null;
  successor_sealed: Buffer | null;
}
interface AuditRow {
  id: number;
  at: number;
  type: string;
  user_id: string | null;
  session: string | null;
  ip: string | null;
  detail: string;
}

function familyUser(r: FamilyRow): User {
  return {
    id: r.user_id,
    email: r.email,
    roles: JSON.parse(r.roles) as string[],
    disabled: r.disabled === 1,
    createdAt: r.user_created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}

function familyInfo(r: FamilyRow): Omit<RefreshTokenInfo, 'current' | 'issuedAt'> {
  return { session: toSession(r), user: familyUser(r), clientId: r.client_id, familyCreatedAt: r.family_created_at };
}

