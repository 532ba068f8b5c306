/**
 * Refresh families: created with their session, rotated by compare-and-swap, ended with it.
 * Every change is one write transaction (BEGIN IMMEDIATE), so concurrent rotations of one
 * family, from this process or another on the file, run one after another: the second reads
 * what the first committed (shared within the grace window, else reuse).
 */
import type { NewRefreshFamily, RefreshRotation, RefreshTokenInfo, RotationOutcome, Session, SessionLimit } from '../store.js';
import { familyLive, toSession } from '../rows.js';
import type { Db } from './db.js';
import { joinedUser, SESSION_COLS, USER_COLS, type SessionUserRow } from './rows.js';
import { deleteRow, insertSessionUnderCap, revokeSession } from './sessions.js';

interface FamilyRow extends SessionUserRow {
  session_hash: Buffer;
  key_hash: Buffer;
  client_id: string;
  family_created_at: number;
}
interface TokenRow {
  hash: Buffer;
  token_created_at: number;
  rotated_at: number | null;
  successor_hash: Buffer | null;
  successor_sealed: Buffer | null;
}

const FAMILY_COLS = `f.session_hash, f.key_hash, f.client_id, f.created_at AS family_created_at, ${SESSION_COLS}, ${USER_COLS}`;
const JOINS = `JOIN sessions s ON s.id_hash = f.session_hash JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;
const TOKEN_COLS = 't.hash, t.created_at AS token_created_at, t.rotated_at, t.successor_hash, t.successor_sealed';

const tokenWithFamily = (db: Db, hash: Buffer) =>
  db.get<TokenRow & FamilyRow>(
    `SELECT ${TOKEN_COLS}, ${FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.session_hash = t.session_hash ${JOINS} WHERE t.hash = ?`,
    hash,
  );
const familyByKey = (db: Db, keyHash: Buffer) =>
  db.get<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.key_hash = ?`, keyHash);
const familyBySession = (db: Db, sessionHash: Buffer) =>
  db.get<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.session_hash = ?`, sessionHash);

const insertToken = (db: Db, hash: Buffer, sessionHash: Buffer, createdAt: number) =>
  db.run('INSERT INTO refresh_tokens (hash, session_hash, created_at) VALUES (?, ?, ?)', hash, sessionHash, createdAt);

export function createRefreshFamily(db: Db, f: NewRefreshFamily, opts: SessionLimit = {}): Session[] {
  return db.tx(() => {
    const s = f.session;
    const evicted = insertSessionUnderCap(db, s, opts.maxPerUser);
    db.run('INSERT INTO refresh_families (session_hash, key_hash, client_id, created_at) VALUES (?, ?, ?, ?)', s.idHash, f.keyHash, f.clientId, s.createdAt);
    insertToken(db, f.tokenHash, s.idHash, s.createdAt);
    return evicted;
  });
}

export function rotateRefreshToken(db: Db, r: RefreshRotation): RotationOutcome {
  return db.tx((): RotationOutcome => {
    const row = tokenWithFamily(db, r.tokenHash);
    if (!row || !row.key_hash.equals(r.familyKeyHash)) {
      // an old token whose row was pruned still names its family by its key
      const family = familyByKey(db, r.familyKeyHash);
      if (!family || (r.clientId !== undefined && family.client_id !== r.clientId)) return { outcome: 'unknown' };
      return endFamily(db, family);
    }
    if (r.clientId !== undefined && row.client_id !== r.clientId) return { outcome: 'unknown' };
    if (row.rotated_at === null) {
      if (!familyLive(row, r.now)) return { outcome: 'expired' };
      const marked = db.run(
        'UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ?, successor_sealed = ? WHERE hash = ? AND rotated_at IS NULL',
        r.now,
        r.successorHash,
        r.successorSealed,
        r.tokenHash,
      );
      if (marked !== 1) throw new Error('refresh token row changed inside its transaction');
      insertToken(db, r.successorHash, row.session_hash, r.now);
      db.run('UPDATE sessions SET last_seen_at = ?, ip = ? WHERE id_hash = ?', r.now, r.ip, row.session_hash);
      // keep only what the grace window may still need; older replays are caught by the family key
      db.run('DELETE FROM refresh_tokens WHERE session_hash = ? AND rotated_at IS NOT NULL AND rotated_at < ?', row.session_hash, r.now - r.graceSeconds);
      const session = { ...toSession(row), lastSeenAt: r.now, ip: r.ip };
      return { outcome: 'rotated', session, user: joinedUser(row), clientId: row.client_id };
    }
    if (r.now - row.rotated_at < r.graceSeconds) {
      // a fast client may have rotated the successor too: hand out the newest one
      let link: TokenRow = row;
      for (let i = 0; i < 16 && link.successor_hash; i++) {
        const next = db.get<TokenRow>(`SELECT ${TOKEN_COLS} FROM refresh_tokens t WHERE t.hash = ?`, link.successor_hash);
        if (!next || next.rotated_at === null) break;
        link = next;
      }
      if (!familyLive(row, r.now)) return { outcome: 'expired' };
      if (link.successor_sealed) {
        return {
          outcome: 'shared',
          session: toSession(row),
          user: joinedUser(row),
          clientId: row.client_id,
          successorSealed: link.successor_sealed,
          sealedBy: link.hash,
        };
      }
    }
    return endFamily(db, row);
  });
}

/** Reuse detected: the session goes, and with it (FK cascade) the family and every token of it. */
function endFamily(db: Db, family: FamilyRow): RotationOutcome {
  deleteRow(db, family.session_hash);
  const session = toSession(family);
  revokeSession(db, session, { initiator: 'policy', reason: 'refresh_token_reuse' });
  return { outcome: 'reused', session, clientId: family.client_id };
}

export function findRefreshToken(db: Db, tokenHash: Buffer, familyKeyHash: Buffer): RefreshTokenInfo | undefined {
  const row = tokenWithFamily(db, tokenHash);
  if (row && row.key_hash.equals(familyKeyHash)) {
    return { ...familyInfo(row), current: row.rotated_at === null, issuedAt: row.token_created_at };
  }
  const family = familyByKey(db, familyKeyHash);
  return family && { ...familyInfo(family), current: false, issuedAt: undefined };
}

export function revokeRefreshFamily(db: Db, by: { familyKeyHash: Buffer } | { sessionHash: Buffer }, clientId: string): Session | undefined {
  return db.tx(() => {
    const family = 'familyKeyHash' in by ? familyByKey(db, by.familyKeyHash) : familyBySession(db, by.sessionHash);
    if (!family || family.client_id !== clientId) return undefined;
    deleteRow(db, family.session_hash);
    const s = toSession(family);
    revokeSession(db, s, { initiator: 'user', reason: 'refresh_token_revoked' });
    return s;
  });
}

export function pruneRefreshTokens(db: Db, before: number): number {
  return db.run('DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND rotated_at < ?', before);
}

function familyInfo(r: FamilyRow): Omit<RefreshTokenInfo, 'current' | 'issuedAt'> {
  return { session: toSession(r), user: joinedUser(r), clientId: r.client_id, familyCreatedAt: r.family_created_at };
}
