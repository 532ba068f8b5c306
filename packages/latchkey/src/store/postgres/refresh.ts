/**
 * Refresh families: created with their session, rotated by compare-and-swap, ended with it.
 * Concurrent rotations of one family (on one node or several) are serialised by the lock on
 * the family's session row, taken before anything of the family is read: the second caller
 * reads what the first committed (rotated: shared within the grace window, else reuse).
 */
import type { NewRefreshFamily, RefreshRotation, RefreshTokenInfo, RotationOutcome, Session, SessionLimit, User } from '../store.js';
import type { Db, Queryable, Tx } from './db.js';
import { joinedUser, SESSION_COLS, toSession, USER_COLS, type SessionUserRow } from './rows.js';
import { familyLive } from '../rows.js';
import { evictForNewSession, insertSession, revokeSession } from './sessions.js';

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
const JOINS = 'JOIN sessions s ON s.id_hash = f.session_hash JOIN users u ON u.id = s.user_id';
const TOKEN_COLS = 't.hash, t.created_at AS token_created_at, t.rotated_at, t.successor_hash, t.successor_sealed';

const tokenWithFamily = (db: Queryable, hash: Buffer) =>
  db
    .query<TokenRow & FamilyRow>(
      `SELECT ${TOKEN_COLS}, ${FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.session_hash = t.session_hash ${JOINS} WHERE t.hash = $1`,
      [hash],
    )
    .then((r) => r.rows[0]);
const familyByKey = (db: Queryable, keyHash: Buffer) =>
  db.query<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.key_hash = $1`, [keyHash]).then((r) => r.rows[0]);
const familyBySession = (db: Queryable, sessionHash: Buffer) =>
  db.query<FamilyRow>(`SELECT ${FAMILY_COLS} FROM refresh_families f ${JOINS} WHERE f.session_hash = $1`, [sessionHash]).then((r) => r.rows[0]);

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
    // find the family without locking, lock its session, then read again what is now stable
    const peek = await tokenWithFamily(tx, r.tokenHash);
    const sessionHash = peek?.key_hash.equals(r.familyKeyHash) ? peek.session_hash : (await familyByKey(tx, r.familyKeyHash))?.session_hash;
    if (!sessionHash || !(await lockSession(tx, sessionHash))) return { outcome: 'unknown' };
    const row = await tokenWithFamily(tx, r.tokenHash);
    if (!row || !row.key_hash.equals(r.familyKeyHash)) {
      // an old token whose row was pruned still names its family by its key
      const family = await familyByKey(tx, r.familyKeyHash);
      if (!family || (r.clientId !== undefined && family.client_id !== r.clientId)) return { outcome: 'unknown' };
      return endFamily(tx, family);
    }
    if (r.clientId !== undefined && row.client_id !== r.clientId) return { outcome: 'unknown' };
    if (row.rotated_at === null) {
      if (!familyLive(row, r.now)) return { outcome: 'expired' };
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
      const session = { ...toSession(row), lastSeenAt: r.now, ip: r.ip };
      return { outcome: 'rotated', session, user: joinedUser(row), clientId: row.client_id };
    }
    if (r.now - row.rotated_at < r.graceSeconds) {
      // a fast client may have rotated the successor too: hand out the newest one
      let link: TokenRow = row;
      for (let i = 0; i < 16 && link.successor_hash; i++) {
        const next = (
          await tx.query<TokenRow>(
            `SELECT ${TOKEN_COLS} FROM refresh_tokens t WHERE t.hash = $1`,
            [link.successor_hash],
          )
        ).rows[0];
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
    return endFamily(tx, row);
  });
}

/** Reuse detected: the session goes, and with it (FK cascade) the family and every token of it. */
async function endFamily(tx: Tx, family: FamilyRow): Promise<RotationOutcome> {
  const session = toSession(family);
  const r = await tx.query('DELETE FROM sessions WHERE id_hash = $1', [family.session_hash]);
  if (r.rowCount === 1) revokeSession(tx, session, { initiator: 'policy', reason: 'refresh_token_reuse' });
  return { outcome: 'reused', session, clientId: family.client_id };
}

export async function findRefreshToken(db: Queryable, tokenHash: Buffer, familyKeyHash: Buffer): Promise<RefreshTokenInfo | undefined> {
  const row = await tokenWithFamily(db, tokenHash);
  if (row && row.key_hash.equals(familyKeyHash)) {
    return { ...familyInfo(row), current: row.rotated_at === null, issuedAt: row.token_created_at };
  }
  const family = await familyByKey(db, familyKeyHash);
  return family && { ...familyInfo(family), current: false, issuedAt: undefined };
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
    revokeSession(tx, s, { initiator: 'user', reason: 'refresh_token_revoked' });
    return s;
  });
}

export async function pruneRefreshTokens(db: Queryable, before: number): Promise<number> {
  return (await db.query('DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND rotated_at < $1', [before])).rowCount ?? 0;
}

function familyInfo(r: FamilyRow): Omit<RefreshTokenInfo, 'current' | 'issuedAt'> {
  const user: User = joinedUser(r);
  return { session: toSession(r), user, clientId: r.client_id, familyCreatedAt: r.family_created_at };
}


