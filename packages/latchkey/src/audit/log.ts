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

/** The most events one read of the log returns (a page of GET /v1/admin/audit, of `latchkey audit`). */
export const AUDIT_PAGE_MAX = 1000;

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
  /** Events a request caused and no account is tied to (failed logins), written per minute at most. */
  anonymousPerMinute: number;
  /** Events a request of one user caused (their logins, refreshes), written per minute and user at most. */
  perUserPerMinute: number;
}

const DEFAULT_LIMITS: AuditLimits = { retentionDays: 90, anonymousPerMinute: 60, perUserPerMinute: 30 };

/**
 * Events a client causes at will (a failed token login: anyone; a successful one: any
 * user, as often as they like) would grow the table as fast as requests arrive. Those
 * (events with an ip, except operators' admin_* actions) are written up to a budget per
 * minute: one for all anonymous events, one per user. The rest are counted, and one
 * `audit_events_suppressed` event per budget and minute says how many of each type were
 * not written (with the user's id for a user's budget).
 */
export class AuditLog {
  private readonly limits: AuditLimits;
  private minute = -1;
  /** Budgets of the current minute by user id ('' for anonymous events). */
  private budgets = new Map<string, { written: number; suppressed: Map<string, number> }>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    limits: Partial<AuditLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  async record(e: AuditInput): Promise<void> {
    if (e.ip !== undefined && !e.type.startsWith('admin_')) {
      await this.rollMinute();
      const key = e.userId ?? '';
      const limit = key === '' ? this.limits.anonymousPerMinute : this.limits.perUserPerMinute;
      let budget = this.budgets.get(key);
      if (!budget) this.budgets.set(key, (budget = { written: 0, suppressed: new Map() }));
      if (budget.written >= limit) {
        budget.suppressed.set(e.type, (budget.suppressed.get(e.type) ?? 0) + 1);
        return;
      }
      budget.written++;
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

  /** On a new minute: reset the budgets, and write what the last one suppressed. */
  private async rollMinute(): Promise<void> {
    const minute = Math.floor(this.now() / 60_000);
    if (minute === this.minute) return;
    const last = this.budgets;
    const from = this.minute;
    this.minute = minute;
    this.budgets = new Map();
    for (const [userId, { suppressed }] of last) {
      if (suppressed.size === 0) continue;
      await this.store.appendAuditEvent({
        at: Math.floor(this.now() / 1000),
        type: 'audit_events_suppressed',
        userId: userId === '' ? null : userId,
        session: null,
        ip: null,
        detail: { since: from * 60, until: (from + 1) * 60, counts: Object.fromEntries(suppressed) },
      });
    }
  }
}
