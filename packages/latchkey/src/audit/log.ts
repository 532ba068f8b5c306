/**
 * The audit log: security-relevant events (refresh-token reuse, key rotation and
 * retirement, token logins, password changes, operators' actions) kept in the
 * store. Deliberately tiny: record, list, and the retention sweep; operators read
 * it at GET /v1/admin/audit.
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
  'audit_events_suppressed',
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

export interface AuditLimits {
  /** Events older than this are deleted by `sweep`. */
  retentionDays: number;
  /** Events tied to no account but caused by a request, written per minute at most. */
  anonymousPerMinute: number;
}

const DEFAULT_LIMITS: AuditLimits = { retentionDays: 90, anonymousPerMinute: 60 };

/**
 * Anyone can cause an event tied to no account (a failed token login with an unknown
 * email): one row each would let a client grow the table as fast as it can send. Those
 * are written up to a budget per minute; the rest are counted, and one
 * `audit_events_suppressed` event per minute says how many of which type were not written.
 */
export class AuditLog {
  private readonly limits: AuditLimits;
  private minute = -1;
  private written = 0;
  private suppressed = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    limits: Partial<AuditLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  async record(e: AuditInput): Promise<void> {
    // an event with an ip but no user: a request nobody has authenticated caused it
    if (e.userId === undefined && e.ip !== undefined) {
      await this.rollMinute();
      if (this.written >= this.limits.anonymousPerMinute) {
        this.suppressed.set(e.type, (this.suppressed.get(e.type) ?? 0) + 1);
        return;
      }
      this.written++;
    }
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

  /** Periodic: report last minute's suppressed events, delete events past the retention. Returns how many were deleted. */
  async sweep(): Promise<number> {
    await this.rollMinute();
    const cutoff = Math.floor(this.now() / 1000) - this.limits.retentionDays * 86400;
    return this.store.pruneAuditEvents(cutoff);
  }

  /** On a new minute: reset the budget, and write what the last one suppressed. */
  private async rollMinute(): Promise<void> {
    const minute = Math.floor(this.now() / 60_000);
    if (minute === this.minute) return;
    const suppressed = this.suppressed;
    const from = this.minute;
    this.minute = minute;
    this.written = 0;
    this.suppressed = new Map();
    if (suppressed.size === 0) return;
    await this.store.appendAuditEvent({
      at: Math.floor(this.now() / 1000),
      type: 'audit_events_suppressed',
      userId: null,
      session: null,
      ip: null,
      detail: { since: from * 60, until: (from + 1) * 60, counts: Object.fromEntries(suppressed) },
    });
  }
}
