import type { Session, User } from '../store/store.js';
import { handleOf } from '../sessions/ids.js';

const iso = (t: number) => new Date(t * 1000).toISOString();

export const userView = (u: User) => ({ id: u.id, email: u.email, roles: u.roles, disabled: u.disabled, createdAt: iso(u.createdAt) });

export const sessionView = (s: Session, currentHandle?: string) => {
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
