/** Sessions: create (with the per-user cap), read, touch, end; device labels stored once each. */
import { LatchkeyError } from '../../errors.js';
import { sessionEnded } from '../../revocation/events.js';
import { handleKeyRange } from '../../sessions/ids.js';
import { joinedUser, toSession, USER_COLS, type SessionRow, type SessionUserRow } from '../rows.js';
import type { Session, SessionLimit, SessionWithUser } from '../store.js';
import type { Db } from './db.js';
import { SESSION_COLS, SESSION_FROM } from './rows.js';
import { revokeUserTokens } from './users.js';

/** The sweep forgets unused device labels once there are more than this many. */
export const DEVICE_PRUNE_ABOVE = 1024;

export function createSession(db: Db, s: Session, opts: SessionLimit = {}): Session[] {
  return db.tx(() => insertSessionUnderCap(db, s, opts.maxPerUser));
}

/**
 * Inside a transaction: end the user's sessions past the cap, then insert `s`. Returns the ended
 * sessions; throws user_not_found (rolling the evictions back with the transaction).
 */
export function insertSessionUnderCap(db: Db, s: Session, maxPerUser: number | undefined): Session[] {
  const evicted = evictForNewSession(db, s.userId, maxPerUser);
  const changes = db.run(
    `INSERT INTO sessions (id_hash, user_rowid, created_at, last_seen_at, expires_at, device_id, ip, idle_timeout)
     SELECT ?, rowid, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
    s.idHash,
    s.createdAt,
    s.lastSeenAt,
    s.expiresAt,
    deviceIdFor(db, s.device),
    s.ip,
    s.idleTimeoutSeconds ?? null,
    s.userId,
  );
  if (changes === 0) throw new LatchkeyError('user_not_found', 'no such user');
  return evicted;
}

/**
 * Make room for one more session of `userId` under `maxPerUser`: end the least recently
 * used ones, each with its revocation event. Inside the caller's transaction.
 */
function evictForNewSession(db: Db, userId: string, maxPerUser: number | undefined): Session[] {
  if (maxPerUser === undefined) return [];
  const count =
    db.get<{ n: number }>('SELECT COUNT(*) AS n FROM sessions WHERE user_rowid = (SELECT rowid FROM users WHERE id = ?)', userId)?.n ?? 0;
  const excess = count - Math.max(1, maxPerUser) + 1;
  if (excess <= 0) return [];
  const evicted = db
    .all<SessionRow>(
      `SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE u.id = ? ORDER BY s.last_seen_at, s.created_at, s.id_hash LIMIT ?`,
      userId,
      excess,
    )
    .map(toSession);
  for (const s of evicted) deleteRow(db, s.idHash);
  db.revoke(...evicted.map((s) => sessionEnded(s, 'session_limit')));
  return evicted;
}

/**
 * The id of a device label, inserted if new. Not cached: the sweep forgets labels no
 * session uses, possibly from another process, and a stale id would hide the session.
 * Called inside the session's own transaction, so the sweep cannot remove it in between.
 */
function deviceIdFor(db: Db, label: string): number {
  db.run('INSERT INTO devices (label) VALUES (?) ON CONFLICT(label) DO NOTHING', label);
  return db.get<{ id: number }>('SELECT id FROM devices WHERE label = ?', label)!.id;
}

/** Delete one session row (its refresh family goes with it, FK cascade); how many rows went. */
export function deleteRow(db: Db, idHash: Buffer): number {
  return db.run('DELETE FROM sessions WHERE id_hash = ?', idHash);
}

export function getSession(db: Db, idHash: Buffer): SessionWithUser | undefined {
  const r = db.get<SessionUserRow>(`SELECT ${SESSION_COLS}, ${USER_COLS} FROM ${SESSION_FROM} WHERE s.id_hash = ?`, idHash);
  return r && { session: toSession(r), user: joinedUser(r) };
}

export function touchSession(db: Db, idHash: Buffer, lastSeenAt: number, ip: string): void {
  db.run('UPDATE sessions SET last_seen_at = ?, ip = ? WHERE id_hash = ?', lastSeenAt, ip, idHash);
}

export function listSessions(db: Db, userId: string): Session[] {
  return db
    .all<SessionRow>(`SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE u.id = ? ORDER BY s.created_at DESC, s.id_hash`, userId)
    .map(toSession);
}

export function findSessionByHandle(db: Db, handle: Buffer, userId?: string): Session | undefined {
  // blobs compare bytewise, so the handle's range is a range scan of the primary key
  const { start, end } = handleKeyRange(handle);
  const rows = db.all<SessionRow>(`SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE s.id_hash >= ? AND s.id_hash < ? LIMIT 2`, start, end);
  // two matches would mean a handle collision: refuse rather than guess
  if (rows.length !== 1) return undefined;
  const s = toSession(rows[0]!);
  if (userId !== undefined && s.userId !== userId) return undefined;
  return s;
}

export function deleteSession(db: Db, idHash: Buffer): Session | undefined {
  return db.tx(() => {
    const row = db.get<SessionRow>(`SELECT ${SESSION_COLS} FROM ${SESSION_FROM} WHERE s.id_hash = ?`, idHash);
    if (!row) return undefined;
    deleteRow(db, idHash);
    const s = toSession(row);
    db.revoke(sessionEnded(s, 'deleted'));
    return s;
  });
}

export function deleteUserSessions(db: Db, userId: string, except?: Buffer, initiator?: 'user' | 'admin'): Session[] {
  return db.tx(() => {
    const gone = deleteUserSessionsIn(db, userId, except);
    // one user-wide cutoff however many sessions ended (the feed's growth is not the user's to choose);
    // the session kept gets fresh tokens, minted after it
    if (gone.length) revokeUserTokens(db, userId, { change: 'signed_out_everywhere', ended: gone, ...(initiator ? { initiator } : {}) });
    return gone;
  });
}

/** Delete the user's sessions but `except`, inside the caller's transaction (which revokes the user's tokens as a whole). */
export function deleteUserSessionsIn(db: Db, userId: string, except?: Buffer): Session[] {
  const ended = listSessions(db, userId).filter((s) => !except || !s.idHash.equals(except));
  for (const s of ended) deleteRow(db, s.idHash);
  return ended;
}

export function deleteExpiredSessions(db: Db, now: number, idleTimeoutSeconds: number): number {
  return db.tx(() => {
    const n = db.run(
      'DELETE FROM sessions WHERE expires_at <= @now OR last_seen_at + COALESCE(idle_timeout, @idle) <= @now',
      { now, idle: idleTimeoutSeconds },
    );
    // labels come from clients' User-Agents: forget those no session shows. Finding them scans
    // every session, so only once the table outgrows what the normalised labels
    // (sessions/device.ts) can fill: then it is labels of another writer or of older versions
    if ((db.get<{ n: number }>('SELECT COUNT(*) AS n FROM devices')?.n ?? 0) > DEVICE_PRUNE_ABOVE) {
      db.run('DELETE FROM devices WHERE id NOT IN (SELECT device_id FROM sessions)');
    }
    return n;
  });
}
