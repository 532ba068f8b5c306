/**
 * Refresh families: created with their session, rotated by compare-and-swap, ended with it.
 * The rotation rule itself is ../rotation.ts; this file reads and writes its rows. Concurrent
 * rotations of one family (on one node or several) are serialised by the lock on the family's
 * session row, taken before anything of the family is read: the second caller reads what the
 * first committed (rotated: shared within the grace window, else reuse).
 */
import { sessionEnded } from '../../revocation/events.js';
import { lookupAsync, rotateAsync, type Async, type RefreshIo, type RefreshReads, type TokenFamilyRow } from '../rotation.js';
import { toSession, USER_COLS, type FamilyRow, type TokenRow } from '../rows.js';
import type { NewRefreshFamily, RefreshRotation, RefreshTokenInfo, RotationOutcome, Session, SessionLimit } from '../store.js';
import type { Db, Queryable, Tx } from './db.js';
import { SESSION_COLS } from './rows.js';
import { evictForNewSession, insertSession } from './sessions.js';

const FAMILY_COLS = `f.session_hash, f.key_hash, f.client_id, f.created_at AS family_created_at, ${SESSION_COLS}, ${USER_COLS}`;
const JOINS = 'JOIN sessions s ON s.id_hash = f.session_hash JOIN users u ON u.id = s.user_id';
const TOKEN_COLS = 't.hash, t.created_at AS token_created_at, t.rotated_at, t.successor_hash, t.successor_sealed';

const first = <R>(r: { rows: R[] }): R | undefined => r.rows[0];
const tokenWithFamily = (db: Queryable, hash: Buffer) =>
  db
    .query<TokenFamilyRow>(
      `SELECT ${TOKEN_COLS}, ${FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.session_hash = t.session_hash ${JOINS} WHERE t.hash = $1`,
      [hash],
    )
    .then(first);
const familyByKey = (db: Queryable, keyHash: Buffer) =>
  db.query<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.key_hash = $1`, [keyHash]).then(first);
const familyBySession = (db: Queryable, sessionHash: Buffer) =>
  db.query<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.session_hash = $1`, [sessionHash]).then(first);

/** The rows the refresh rules read. */
const reads = (db: Queryable): Async<RefreshReads> => ({
  token: (hash) => tokenWithFamily(db, hash),
  family: (keyHash) => familyByKey(db, keyHash),
  link: (hash) => db.query<TokenRow>(`SELECT ${TOKEN_COLS} FROM refresh_tokens t WHERE t.hash = $1`, [hash]).then(first),
});

/** The rows the rotation reads and writes, inside `tx`. */
const rows = (tx: Tx): Async<RefreshIo> => ({
  ...reads(tx),
  rotate: async (row, r) => {
    const marked = await tx.query(
      'UPDATE refresh_tokens SET rotated_at = $1, successor_hash = $2, successor_sealed = $3 WHERE hash = $4 AND rotated_at IS NULL',
      [r.now, r.successorHash, r.successorSealed, r.tokenHash],
    );
    if (marked.rowCount !== 1) throw new Error('refresh token row changed under its session lock');
    await tx.query('INSERT INTO refresh_tokens (hash, session_hash, created_at) VALUES ($1, $2, $3)', [r.successorHash, row.session_hash, r.now]);
    await tx.query('UPDATE sessions SET last_seen_at = $1, ip = $2 WHERE id_hash = $3', [r.now, r.ip, row.session_hash]);
    // keep only what the grace window may still need; older replays are caught by the family key
    await tx.query('DELETE FROM refresh_tokens WHERE session_hash = $1 AND rotated_at IS NOT NULL AND rotated_at < $2', [
      row.session_hash,
      r.now - r.graceSeconds,
    ]);
  },
  // FK cascade: the session's family and every token of it go with it
  endFamily: async (family) => {
    const r = await tx.query('DELETE FROM sessions WHERE id_hash = $1', [family.session_hash]);
    if (r.rowCount === 1) tx.revoke(sessionEnded(toSession(family), 'refresh_token_reuse'));
  },
});

/** Lock a family's session row (see the file comment); false if the session is gone. */
async function lockSession(tx: Tx, sessionHash: Buffer): Promise<boolean> {
  return (await tx.query('SELECT 1 FROM sessions WHERE id_hash = $1 FOR UPDATE', [sessionHash])).rowCount === 1;
}

export function createRefreshFamily(db: Db, f: NewRefreshFamily, opts: SessionLimit = {}): Promise<Session[]> {
  return db.tx(async (tx) => {
    const s = f.session;
    const evicted = await evictForNewSession(tx, s.userId, opts.maxPerUser);
    await insertSession(tx, s);
    await tx.query('INSERT INTO refresh_families (session_hash, key_hash, client_id, created_at) VALUES ($1, $2, $3, $4)', [
      s.idHash,
      f.keyHash,
      f.clientId,
      s.createdAt,
    ]);
    await tx.query('INSERT INTO refresh_tokens (hash, session_hash, created_at) VALUES ($1, $2, $3)', [f.tokenHash, s.idHash, s.createdAt]);
    return evicted;
  });
}

export function rotateRefreshToken(db: Db, r: RefreshRotation): Promise<RotationOutcome> {
  return db.tx(async (tx): Promise<RotationOutcome> => {
    // find the family without locking, lock its session, then run the rule on what is now stable
    const peek = await tokenWithFamily(tx, r.tokenHash);
    const sessionHash = peek?.key_hash.equals(r.familyKeyHash) ? peek.session_hash : (await familyByKey(tx, r.familyKeyHash))?.session_hash;
    if (!sessionHash || !(await lockSession(tx, sessionHash))) return { outcome: 'unknown' };
    return rotateAsync(r, rows(tx));
  });
}

export function findRefreshToken(db: Queryable, tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined> {
  return lookupAsync(tokenHash, familyKeyHash, reads(db));
}

export function revokeRefreshFamily(
  db: Db,
  by: { familyKeyHash: Buffer } | { sessionHash: Buffer },
  clientId: string,
): Promise<Session | undefined> {
  return db.tx(async (tx) => {
    const family = 'familyKeyHash' in by ? await familyByKey(tx, by.familyKeyHash) : await familyBySession(tx, by.sessionHash);
    if (!family || family.client_id !== clientId) return undefined;
    // of concurrent revocations only the one that deletes the row reports (and publishes) it
    const r = await tx.query('DELETE FROM sessions WHERE id_hash = $1', [family.session_hash]);
    if (r.rowCount !== 1) return undefined;
    const s = toSession(family);
    tx.revoke(sessionEnded(s, 'refresh_token_revoked'));
    return s;
  });
}

export async function pruneRefreshTokens(db: Queryable, before: number): Promise<number> {
  return (await db.query('DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND rotated_at < $1', [before])).rowCount ?? 0;
}
