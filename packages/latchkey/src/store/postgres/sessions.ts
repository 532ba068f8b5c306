/** Sessions: create (with the per-user cap), read, touch, end. */
import { LatchkeyError } from '../../errors.js';
import { sessionEnded } from '../../revocation/events.js';
import { handleKeyRange } from '../../sessions/ids.js';
import { joinedUser, toSession, USER_COLS, type SessionRow, type SessionUserRow } from '../rows.js';
import type { Session, SessionLimit, SessionWithUser } from '../store.js';
import type { Db, Queryable, Tx } from './db.js';
import { leastRecentlyUsedFirst, newestFirst, SESSION_COLS } from './rows.js';
import { lockUser, revokeUserTokens } from './users.js';

const RETURNING = 'RETURNING id_hash, user_id, created_at, last_seen_at, expires_at, device, ip, idle_timeout';

export function createSession(db: Db, s: Session, opts: SessionLimit = {}): Promise<Session[]> {
  return db.tx(async (tx) => {
    const evicted = await evictForNewSession(tx, s.userId, opts.maxPerUser);
    await insertSession(tx, s);
    return evicted;
  });
}

/** Insert a session inside the caller's transaction; a missing user is user_not_found (and rolls everything back). */
export async function insertSession(tx: Tx, s: Session): Promise<void> {
  const r = await tx.query(
    `INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, device, ip, idle_timeout)
     SELECT $1, id, $2, $3, $4, $5, $6, $7 FROM users WHERE id = $8`,
    [s.idHash, s.createdAt, s.lastSeenAt, s.expiresAt, s.device, s.ip, s.idleTimeoutSeconds ?? null, s.userId],
  );
  if (r.rowCount === 0) throw new LatchkeyError('user_not_found', 'no such user');
}

/**
 * Make room for one more session of `userId` under `maxPerUser`: end the least recently used
 * ones, each with its revocation event. The user's row is locked first, so concurrent logins
 * of one user (on any node) count and evict one after another and the cap holds.
 */
export async function evictForNewSession(tx: Tx, userId: string, maxPerUser: number | undefined): Promise<Session[]> {
  if (maxPerUser === undefined) return [];
  if ((await lockUser(tx, userId)) === undefined) throw new LatchkeyError('user_not_found', 'no such user');
  const count = await tx.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM sessions WHERE user_id = $1', [userId]);
  const excess = (count.rows[0]?.n ?? 0) - Math.max(1, maxPerUser) + 1;
  if (excess <= 0) return [];
  const r = await tx.query<SessionRow>(
    `DELETE FROM sessions WHERE id_hash IN (
       SELECT id_hash FROM sessions WHERE user_id = $1 ORDER BY last_seen_at, created_at, id_hash LIMIT $2
     ) ${RETURNING}`,
    [userId, excess],
  );
  const evicted = r.rows.map(toSession).sort(leastRecentlyUsedFirst);
  tx.revoke(...evicted.map((s) => sessionEnded(s, 'session_limit')));
  return evicted;
}

export async function getSession(db: Queryable, idHash: Buffer): Promise<SessionWithUser | undefined> {
  // the hot path on a cache miss: a named statement is parsed and planned once per connection
  const r = await db.query<SessionUserRow>(
    { name: 'latchkey_get_session', text: `SELECT ${SESSION_COLS}, ${USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1` },
    [idHash],
  );
  const row = r.rows[0];
  return row && { session: toSession(row), user: joinedUser(row) };
}

export async function touchSession(db: Queryable, idHash: Buffer, lastSeenAt: number, ip: string): Promise<void> {
  await db.query('UPDATE sessions SET last_seen_at = $1, ip = $2 WHERE id_hash = $3', [lastSeenAt, ip, idHash]);
}

export async function listSessions(db: Queryable, userId: string): Promise<Session[]> {
  const r = await db.query<SessionRow>(
    `SELECT ${SESSION_COLS} FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at DESC, s.id_hash`,
    [userId],
  );
  return r.rows.map(toSession);
}

export async function findSessionByHandle(db: Queryable, handle: Buffer, userId?: string): Promise<Session | undefined> {
  // bytea compares bytewise, so the handle's range is a range scan of the primary key
  const { start, end } = handleKeyRange(handle);
  const r = await db.query<SessionRow>(
    `SELECT ${SESSION_COLS} FROM sessions s WHERE s.id_hash >= $1 AND s.id_hash < $2 ORDER BY s.id_hash LIMIT 2`,
    [start, end],
  );
  // two matches would mean a handle collision: refuse rather than guess
  if (r.rows.length !== 1) return undefined;
  const s = toSession(r.rows[0]!);
  if (userId !== undefined && s.userId !== userId) return undefined;
  return s;
}

export function deleteSession(db: Db, idHash: Buffer): Promise<Session | undefined> {
  return db.tx(async (tx) => {
    // DELETE ... RETURNING: of concurrent deletes of one session only one gets the row, so one event
    const r = await tx.query<SessionRow>(`DELETE FROM sessions WHERE id_hash = $1 ${RETURNING}`, [idHash]);
    const row = r.rows[0];
    if (!row) return undefined;
    const s = toSession(row);
    tx.revoke(sessionEnded(s, 'deleted'));
    return s;
  });
}

export function deleteUserSessions(db: Db, userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Promise<Session[]> {
  return db.tx(async (tx) => {
    const cutoff = await lockUser(tx, userId);
    if (cutoff === undefined) return [];
    const gone = await deleteUserSessionsIn(tx, userId, except);
    // one user-wide cutoff however many sessions ended (the feed's growth is not the user's to choose)
    if (gone.length) await revokeUserTokens(tx, userId, cutoff, { change: 'signed_out_everywhere', ended: gone, ...(initiator ? { initiator } : {}) });
    return gone;
  });
}

/** Delete the user's sessions but `except`, inside the caller's transaction (which revokes the user's tokens as a whole). */
export async function deleteUserSessionsIn(tx: Tx, userId: string, except?: Buffer): Promise<Session[]> {
  const r = except
    ? await tx.query<SessionRow>(`DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2 ${RETURNING}`, [userId, except])
    : await tx.query<SessionRow>(`DELETE FROM sessions WHERE user_id = $1 ${RETURNING}`, [userId]);
  return r.rows.map(toSession).sort(newestFirst);
}

export async function deleteExpiredSessions(db: Queryable, now: number, idleTimeoutSeconds: number): Promise<number> {
  // labels are stored inline (no devices table), so nothing else is left to forget
  const r = await db.query(
    'DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at + COALESCE(idle_timeout, $2) <= $1',
    [now, idleTimeoutSeconds],
  );
  return r.rowCount ?? 0;
}
