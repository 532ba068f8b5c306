/**
 * How users and sessions are shown outside latchkey: the JSON of the account and admin APIs
 * and of the CLI's `--json`. Never the password hash or a session's secret hash; a session is
 * named by its public handle.
 */
import type { Session, User } from '../store/store.js';
import { handleOf } from '../sessions/ids.js';

const iso = (t: number) => new Date(t * 1000).toISOString();

export interface UserView {
  id: string;
  email: string;
  roles: string[];
  disabled: boolean;
  createdAt: string;
}

export interface SessionView {
  handle: string;
  device: string;
  ip: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  /** The session the request came with (always false in the admin API). */
  current: boolean;
}

export const userView = (u: User): UserView => ({ id: u.id, email: u.email, roles: u.roles, disabled: u.disabled, createdAt: iso(u.createdAt) });

export const sessionView = (s: Session, currentHandle?: string): SessionView => {
  const handle = handleOf(s.idHash);
  return {
    handle,
    device: s.device,
    ip: s.ip,
    createdAt: iso(s.createdAt),
    lastSeenAt: iso(s.lastSeenAt),
    expiresAt: iso(s.expiresAt),
    current: handle === currentHandle,
  };
};
