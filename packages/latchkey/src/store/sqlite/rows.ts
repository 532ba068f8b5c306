/** SQLite's row shapes (roles as JSON text, flags as 0/1, device labels in their own table) and their mapping. */
import type { User, UserWithSecret } from '../store.js';
import type { SessionRow } from '../rows.js';

export interface UserRow {
  rowid: number;
  id: string;
  email: string;
  password_hash: string;
  roles: string;
  disabled: number;
  created_at: number;
  tokens_not_before: number;
}

/** A session row joined with its user's columns (prefixed where the names clash). */
export interface SessionUserRow extends SessionRow {
  email: string;
  roles: string;
  disabled: number;
  user_created_at: number;
  tokens_not_before: number;
}

export const SESSION_COLS = `s.id_hash, u.id AS user_id, s.created_at, s.last_seen_at, s.expires_at, d.label AS device, s.ip, s.idle_timeout`;
export const USER_COLS = 'u.email, u.roles, u.disabled, u.created_at AS user_created_at, u.tokens_not_before';
export const SESSION_FROM = `sessions s JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;

export function toUser(r: UserRow): UserWithSecret {
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

export function joinedUser(r: SessionUserRow): User {
  return {
    id: r.user_id,
    email: r.email,
    roles: JSON.parse(r.roles) as string[],
    disabled: r.disabled === 1,
    createdAt: r.user_created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}
