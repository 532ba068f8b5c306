/**
 * Row shapes both adapters read (their column names match) and their mapping to the contract's
 * types, written once: a rule such as when a refresh family still lives must not drift between
 * SQLite and PostgreSQL.
 */
import type { Session, SigningAlgorithm, SigningKeyRecord } from './store.js';

export interface SessionRow {
  id_hash: Buffer;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  device: string;
  ip: string;
  idle_timeout: number | null;
}

export interface KeyRow {
  kid: string;
  alg: SigningAlgorithm;
  public_jwk: string;
  created_at: number;
  activates_at: number;
  deactivates_at: number | null;
  retired_at: number | null;
}

/** The columns of KeyRow: what a key's record reads, never its private half. */
export const KEY_COLS = 'kid, alg, public_jwk, created_at, activates_at, deactivates_at, retired_at';

export function toSession(r: SessionRow): Session {
  const s: Session = {
    idHash: r.id_hash,
    userId: r.user_id,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    expiresAt: r.expires_at,
    device: r.device,
    ip: r.ip,
  };
  if (r.idle_timeout !== null) s.idleTimeoutSeconds = r.idle_timeout;
  return s;
}

export function toKey(r: KeyRow): SigningKeyRecord {
  return {
    kid: r.kid,
    alg: r.alg,
    publicJwk: r.public_jwk,
    createdAt: r.created_at,
    activatesAt: r.activates_at,
    deactivatesAt: r.deactivates_at,
    retiredAt: r.retired_at,
  };
}

/**
 * A refresh family lives while its session is inside its idle and absolute ends and its user is
 * enabled (`disabled` is SQLite's 0/1 or PostgreSQL's boolean).
 */
export function familyLive(r: SessionRow & { disabled: number | boolean }, now: number): boolean {
  return !r.disabled && r.expires_at > now && r.last_seen_at + (r.idle_timeout ?? 0) > now;
}
