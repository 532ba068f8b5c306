/**
 * Row shapes both adapters read (their column names match) and their mapping to the contract's
 * types, written once: a rule such as when a refresh family still lives must not drift between
 * SQLite and PostgreSQL. Where the two store a column differently (roles as JSON text or text[],
 * a flag as 0/1 or boolean, JSON as text or jsonb), the row type says both and the mapping reads
 * either.
 */
import type { NewRevocation } from '../revocation/events.js';
import type {
  AuditEvent,
  RefreshTokenInfo,
  RevocationEvent,
  RevocationKind,
  RevocationPolicy,
  Session,
  SigningAlgorithm,
  SigningKeyRecord,
  User,
  UserWithSecret,
} from './store.js';

/** A JSON object column: SQLite's TEXT, or jsonb as node-postgres parses it. */
type JsonColumn = string | Record<string, unknown>;
const jsonObject = (v: JsonColumn): Record<string, unknown> => (typeof v === 'string' ? (JSON.parse(v) as Record<string, unknown>) : v);
const rolesOf = (v: string | string[]): string[] => (typeof v === 'string' ? (JSON.parse(v) as string[]) : v);

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

export interface UserRow {
  id: string;
  email: string;
  password_hash: string;
  roles: string | string[];
  disabled: number | boolean;
  created_at: number;
  tokens_not_before: number;
}

/** A session row joined with its user's columns (USER_COLS: prefixed where the names clash). */
export interface SessionUserRow extends SessionRow {
  email: string;
  roles: string | string[];
  disabled: number | boolean;
  user_created_at: number;
  tokens_not_before: number;
}

/** The user columns of a SessionUserRow, from a join that calls the users table `u`. */
export const USER_COLS = 'u.email, u.roles, u.disabled, u.created_at AS user_created_at, u.tokens_not_before';

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

/** A refresh family joined with its session and user. */
export interface FamilyRow extends SessionUserRow {
  session_hash: Buffer;
  key_hash: Buffer;
  client_id: string;
  family_created_at: number;
}

/** One refresh token of a family: the current one, or one rotated within the grace window. */
export interface TokenRow {
  hash: Buffer;
  token_created_at: number;
  rotated_at: number | null;
  successor_hash: Buffer | null;
  successor_sealed: Buffer | null;
}

export interface RevocationRow {
  seq: number;
  at: number;
  kind: RevocationKind;
  user_id: string | null;
  sid: string | null;
  kid: string | null;
  tokens_issued_before: number | null;
  until: number;
  detail: JsonColumn;
}

export interface AuditRow {
  id: number;
  at: number;
  type: string;
  user_id: string | null;
  session: string | null;
  ip: string | null;
  detail: JsonColumn;
}

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

export function toUser(r: UserRow): UserWithSecret {
  return {
    id: r.id,
    email: r.email,
    passwordHash: r.password_hash,
    roles: rolesOf(r.roles),
    disabled: Boolean(r.disabled),
    createdAt: r.created_at,
    tokensNotBefore: r.tokens_not_before,
  };
}

/** The user of a session row joined with it. */
export function joinedUser(r: SessionUserRow): User {
  return {
    id: r.user_id,
    email: r.email,
    roles: rolesOf(r.roles),
    disabled: Boolean(r.disabled),
    createdAt: r.user_created_at,
    tokensNotBefore: r.tokens_not_before,
  };
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

/** What findRefreshToken and the rotation outcomes say of a family, but the presented token. */
export function familyInfo(r: FamilyRow): Omit<RefreshTokenInfo, 'current' | 'issuedAt'> {
  return { session: toSession(r), user: joinedUser(r), clientId: r.client_id, familyCreatedAt: r.family_created_at };
}

/**
 * A refresh family lives while its session is inside its idle and absolute ends and its user is
 * enabled.
 */
export function familyLive(r: SessionRow & { disabled: number | boolean }, now: number): boolean {
  return !r.disabled && r.expires_at > now && r.last_seen_at + (r.idle_timeout ?? 0) > now;
}

export function toRevocation(r: RevocationRow): RevocationEvent {
  return {
    seq: r.seq,
    at: r.at,
    kind: r.kind,
    userId: r.user_id,
    sid: r.sid,
    kid: r.kid,
    tokensIssuedBefore: r.tokens_issued_before,
    until: r.until,
    detail: jsonObject(r.detail),
  };
}

/**
 * listAuditEvents' query: newest first, paged by id, filtered by user and type, at most 1000 rows.
 * `param(n)` spells the n-th parameter (SQLite `?`, PostgreSQL `$n`): only fixed column names go
 * into the text, every value is a parameter.
 */
export function auditQuery(
  q: { userId?: string; type?: string; before?: number; limit: number },
  param: (n: number) => string,
): { text: string; values: (string | number)[] } {
  const where: string[] = [];
  const values: (string | number)[] = [];
  const add = (sql: string, value: string | number) => {
    values.push(value);
    where.push(`${sql} ${param(values.length)}`);
  };
  if (q.before !== undefined) add('id <', q.before);
  if (q.userId !== undefined) add('user_id =', q.userId);
  if (q.type !== undefined) add('type =', q.type);
  values.push(Math.max(1, Math.min(q.limit, 1000)));
  const text = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${param(values.length)}`;
  return { text, values };
}

export function toAuditEvent(r: AuditRow): AuditEvent {
  return { id: r.id, at: r.at, type: r.type, userId: r.user_id, session: r.session, ip: r.ip, detail: jsonObject(r.detail) };
}

/** A revocation event's row but its position, as a transaction appends it. */
export interface PendingRevocation {
  /** Unix ms. */
  at: number;
  /** Unix seconds: kept until every token it refers to has expired. */
  until: number;
  kind: RevocationKind;
  userId: string | null;
  sid: string | null;
  kid: string | null;
  tokensIssuedBefore: number | null;
  /** JSON text: the column in both adapters is written from it. */
  detail: string;
}

/** The row for `e`, written now under `policy` (its clock and how long events are kept). */
export function pendingRevocation(policy: RevocationPolicy, e: NewRevocation): PendingRevocation {
  const at = policy.now();
  return {
    at,
    until: Math.floor(at / 1000) + policy.retainSeconds,
    kind: e.kind,
    userId: e.userId ?? null,
    sid: e.sid ?? null,
    kid: e.kid ?? null,
    tokensIssuedBefore: e.tokensIssuedBefore ?? null,
    detail: JSON.stringify(e.detail),
  };
}
