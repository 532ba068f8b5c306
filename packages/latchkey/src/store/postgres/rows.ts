/** Rows to contract types, shared by the aggregates. */
import type { Session, User, UserWithSecret } from '../store.js';
import { toSession, type SessionRow } from '../rows.js';

export { toSession, type SessionRow };

export interface UserRow {
  id: string;
  email: string;
  password_hash: string;
  roles: string[];
  disabled: boolean;
  created_at: number;
  tokens_not_before: number;
}


/** A session row joined with its user's columns (prefixed where the names clash). */
export interface SessionUserRow extends SessionRow {
  email: string;
  roles: string[];
  disabled: boolean;
  user_created_at: number;
  tokens_not_before: number;
}

export const SESSION_COLS = 's.id_hash, s.user_id, s.created_at, s.last_seen_at, s.expires_at, s.device, s.ip, s.idle_timeout';
export const USER_COLS = 'u.email, u.roles, u.disabled, u.created_at AS user_created_at, u.tokens_not_before';

export function toUser(r: UserRow): UserWithSecret {
  return {
    id: r.id,
    email: r.email,
    passwordHash: r.password_hash,
    roles: r.roles,
    disabled: r.disabled,
    createdAt: r.created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}


export function joinedUser(r: SessionUserRow): User {
  return {
    id: r.user_id,
    email: r.email,
    roles: r.roles,
    disabled: r.disabled,
    createdAt: r.user_created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}

/** Sessions in the order listSessions gives them: newest first, then by hash. */
export function newestFirst(a: Session, b: Session): number {
  return b.createdAt - a.createdAt || Buffer.compare(a.idHash, b.idHash);
}

/** Least recently used first: the order the per-user cap evicts in. */
export function leastRecentlyUsedFirst(a: Session, b: Session): number {
  return a.lastSeenAt - b.lastSeenAt || a.createdAt - b.createdAt || Buffer.compare(a.idHash, b.idHash);
}
