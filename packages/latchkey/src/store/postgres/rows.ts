/** PostgreSQL's session columns and the orders its DELETE ... RETURNING rows are put in; the rest is ../rows.ts. */
import type { Session } from '../store.js';

export const SESSION_COLS = 's.id_hash, s.user_id, s.created_at, s.last_seen_at, s.expires_at, s.device, s.ip, s.idle_timeout';

/** Sessions in the order listSessions gives them: newest first, then by hash. */
export function newestFirst(a: Session, b: Session): number {
  return b.createdAt - a.createdAt || Buffer.compare(a.idHash, b.idHash);
}

/** Least recently used first: the order the per-user cap evicts in. */
export function leastRecentlyUsedFirst(a: Session, b: Session): number {
  return a.lastSeenAt - b.lastSeenAt || a.createdAt - b.createdAt || Buffer.compare(a.idHash, b.idHash);
}
