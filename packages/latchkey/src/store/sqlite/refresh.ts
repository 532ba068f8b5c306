/**
 * Refresh families: created with their session, rotated by compare-and-swap, ended with it.
 * The rotation rule itself is ../rotation.ts; this file reads and writes its rows. Every change
 * is one write transaction (BEGIN IMMEDIATE), so concurrent rotations of one family, from this
 * process or another on the file, run one after another: the second reads what the first
 * committed (shared within the grace window, else reuse).
 */
import { sessionEnded } from '../../revocation/events.js';
import { lookupSync, rotateSync, type RefreshIo, type RefreshReads, type TokenFamilyRow } from '../rotation.js';
import { toSession, USER_COLS, type FamilyRow, type TokenRow } from '../rows.js';
import type { NewRefreshFamily, RefreshRotation, RefreshTokenInfo, RotationOutcome, Session, SessionLimit } from '../store.js';
import type { Db } from './db.js';
import { SESSION_COLS } from './rows.js';
import { deleteRow, insertSessionUnderCap } from './sessions.js';

const FAMILY_COLS = `f.session_hash, f.key_hash, f.client_id, f.created_at AS family_created_at, ${SESSION_COLS}, ${USER_COLS}`;
const JOINS = `JOIN sessions s ON s.id_hash = f.session_hash JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;
const TOKEN_COLS = 't.hash, t.created_at AS token_created_at, t.rotated_at, t.successor_hash, t.successor_sealed';

const familyByKey = (db: Db, keyHash: Buffer) => db.get<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.key_hash = ?`, keyHash);
const familyBySession = (db: Db, sessionHash: Buffer) =>
  db.get<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.session_hash = ?`, sessionHash);
const insertToken = (db: Db, hash: Buffer, sessionHash: Buffer, createdAt: number) =>
  db.run('INSERT INTO refresh_tokens (hash, session_hash, created_at) VALUES (?, ?, ?)', hash, sessionHash, createdAt);

/** The rows the refresh rules read. */
const reads = (db: Db): RefreshReads => ({
  token: (hash) =>
    db.get<TokenFamilyRow>(
      `SELECT ${TOKEN_COLS}, ${FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.session_hash = t.session_hash ${JOINS} WHERE t.hash = ?`,
      hash,
    ),
  family: (keyHash) => familyByKey(db, keyHash),
  link: (hash) => db.get<TokenRow>(`SELECT ${TOKEN_COLS} FROM refresh_tokens t WHERE t.hash = ?`, hash),
});

/** The rows the rotation reads and writes, inside a transaction. */
const rows = (db: Db): RefreshIo => ({
  ...reads(db),
  rotate: (row, r) => {
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
  },
  // FK cascade: the session's family and every token of it go with it
  endFamily: (family) => {
    if (deleteRow(db, family.session_hash) === 1) db.revoke(sessionEnded(toSession(family), 'refresh_token_reuse'));
  },
});

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
  return db.tx(() => rotateSync(r, rows(db)));
}

export function findRefreshToken(db: Db, tokenHash: Buffer, familyKeyHash: Buffer): RefreshTokenInfo | undefined {
  return lookupSync(tokenHash, familyKeyHash, reads(db));
}

export function revokeRefreshFamily(db: Db, by: { familyKeyHash: Buffer } | { sessionHash: Buffer }, clientId: string): Session | undefined {
  return db.tx(() => {
    const family = 'familyKeyHash' in by ? familyByKey(db, by.familyKeyHash) : familyBySession(db, by.sessionHash);
    if (!family || family.client_id !== clientId) return undefined;
    if (deleteRow(db, family.session_hash) !== 1) return undefined;
    const s = toSession(family);
    db.revoke(sessionEnded(s, 'refresh_token_revoked'));
    return s;
  });
}

export function pruneRefreshTokens(db: Db, before: number): number {
  return db.run('DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND rotated_at < ?', before);
}
