/**
 * The audit log: security-relevant events (refresh-token reuse, key rotation and
 * retirement, token logins, password changes, operators' actions) kept in the
 * store. Deliberately tiny: record and list; operators read it at
 * GET /v1/admin/audit.
 */
import type { AuditEvent, Store } from '../store/store.js';

export const AUDIT_TYPES = [
  'refresh_reuse_detected',
  'refresh_family_revoked',
  'token_login_succeeded',
  'token_login_failed',
  'key_created',
  'key_rotated',
  'key_retired',
  'password_changed',
  'admin_sessions_revoked',
  'admin_session_revoked',
  'admin_user_disabled',
  'admin_user_enabled',
  'admin_roles_changed',
] as const;

export type AuditType = (typeof AUDIT_TYPES)[number];

export interface AuditInput {
  type: AuditType;
  userId?: string | undefined;
  /** Public session handle. */
  session?: string | undefined;
  ip?: string | undefined;
  detail?: Record<string, unknown>;
}

export class AuditLog {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async record(e: AuditInput): Promise<void> {
    await this.store.appendAuditEvent({
      at: Math.floor(this.now() / 1000),
      type: e.type,
      userId: e.userId ?? null,
      session: e.session ?? null,
      ip: e.ip ?? null,
      detail: e.detail ?? {},
    });
  }

  /** Newest first; `before`: only events with a smaller id (the next page). */
  list(query: { userId?: string; type?: AuditType; before?: number; limit?: number } = {}): Promise<AuditEvent[]> {
    return this.store.listAuditEvents({ ...query, limit: query.limit ?? 100 });
  }
}
