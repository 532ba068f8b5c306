/**
 * What an operator does to accounts, sessions and the audit log, whoever asks: the admin
 * HTTP API (http/routes/admin.ts) and the `latchkey users|sessions|audit` commands against a
 * local store both call this, and both print what it returns, so the two cannot drift.
 * Every change is written to the audit log as the operator's action.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { normaliseEmail } from '../accounts/email.js';
import { AUDIT_PAGE_MAX, AUDIT_TYPES, type AuditLog, type AuditType } from '../audit/log.js';
import { LatchkeyError } from '../errors.js';
import type { SessionService } from '../sessions/service.js';
import type { AuditEvent, Store, UserWithSecret } from '../store/store.js';
import { sessionView, userView, type SessionView, type UserView } from './views.js';

/** A user's roles as the admin API takes them (the body of PUT /v1/admin/users/{id}/roles). */
export const Roles = Type.Object(
  { roles: Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9:._-]+$' }), { maxItems: 32, uniqueItems: true }) },
  { additionalProperties: false },
);
export type RolesInput = Static<typeof Roles>;

export interface AuditQuery {
  userId?: string;
  type?: AuditType;
  /** Only events older than this id: the `next` of the previous page. */
  before?: number;
  /** 1 to AUDIT_PAGE_MAX, default 100. */
  limit?: number;
}

export interface AuditPage {
  /** Newest first. */
  events: AuditEvent[];
  /** The `before` of the following page; null at the end. */
  next: number | null;
}

/** Who acted, for the audit log: the client's address over HTTP, nothing from the CLI. */
export interface Actor {
  ip?: string | undefined;
}

const isAuditType = (t: string): t is AuditType => (AUDIT_TYPES as readonly string[]).includes(t);

export class AdminService {
  constructor(
    private readonly store: Store,
    private readonly sessions: SessionService,
    private readonly audit: AuditLog,
  ) {}

  /** The user with this email (normalised as at sign-up); `user_not_found` when none, or when it cannot be an email. */
  async findUser(email: string): Promise<{ user: UserView }> {
    let normalised: string;
    try {
      normalised = normaliseEmail(email);
    } catch {
      // no account can have it: the same answer as an unknown address, nothing about why
      throw notFound();
    }
    const u = await this.store.getUserByEmail(normalised);
    if (!u) throw notFound();
    return { user: userView(u) };
  }

  async showUser(id: string): Promise<{ user: UserView }> {
    return { user: userView(await this.user(id)) };
  }

  /** The user's live sessions, newest first. */
  async listSessions(userId: string): Promise<{ sessions: SessionView[] }> {
    await this.user(userId);
    return { sessions: (await this.sessions.list(userId)).map((s) => sessionView(s)) };
  }

  /** End every session of the user (their tokens with them: one user-wide revocation event). */
  async revokeUserSessions(userId: string, actor: Actor = {}): Promise<{ revoked: number }> {
    await this.user(userId);
    const ended = await this.sessions.endAllForUser(userId, 'revoked_by_admin');
    await this.audit.record({ type: 'admin_sessions_revoked', userId, ip: actor.ip, detail: { revoked: ended.length } });
    return { revoked: ended.length };
  }

  /** End one session by its public handle; `session_not_found` when there is none. */
  async revokeSession(handle: string, actor: Actor = {}): Promise<void> {
    const ended = await this.sessions.endByHandle(handle, 'revoked_by_admin');
    if (!ended) throw new LatchkeyError('session_not_found', 'no such session');
    await this.audit.record({ type: 'admin_session_revoked', userId: ended.userId, session: handle, ip: actor.ip });
  }

  /** Disable the user: every session ends in the same transaction. */
  async disableUser(id: string, actor: Actor = {}): Promise<{ user: UserView; revoked: number }> {
    const ended = await this.store.setUserDisabled(id, true);
    this.sessions.forgetUser(id);
    this.sessions.ended(ended, 'user_disabled');
    const user = userView(await this.user(id));
    await this.audit.record({ type: 'admin_user_disabled', userId: id, ip: actor.ip, detail: { revoked: ended.length } });
    return { user, revoked: ended.length };
  }

  async enableUser(id: string, actor: Actor = {}): Promise<{ user: UserView }> {
    await this.store.setUserDisabled(id, false);
    this.sessions.forgetUser(id);
    const user = userView(await this.user(id));
    await this.audit.record({ type: 'admin_user_enabled', userId: id, ip: actor.ip });
    return { user };
  }

  /** Replace the user's roles (tokens issued before carry the old ones: a claims revocation event says so). */
  async setRoles(id: string, input: RolesInput, actor: Actor = {}): Promise<{ user: UserView }> {
    if (!Value.Check(Roles, input)) {
      const first = Value.Errors(Roles, input).First();
      const where = (first?.path ?? '').slice(1).replaceAll('/', '.') || 'roles';
      throw new LatchkeyError('invalid_request', `${where}: ${first?.message ?? 'invalid'}`);
    }
    if (!(await this.store.setUserRoles(id, input.roles))) throw notFound();
    this.sessions.forgetUser(id);
    await this.audit.record({ type: 'admin_roles_changed', userId: id, ip: actor.ip, detail: { roles: input.roles } });
    return { user: userView(await this.user(id)) };
  }

  /** The audit log, newest first, a page at a time. */
  async auditPage(query: AuditQuery = {}): Promise<AuditPage> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_PAGE_MAX) {
      throw new LatchkeyError('invalid_request', `limit is at most ${AUDIT_PAGE_MAX}`);
    }
    if (query.type !== undefined && !isAuditType(query.type)) throw new LatchkeyError('invalid_request', 'unknown audit event type');
    const events = await this.audit.list({
      limit,
      ...(query.userId === undefined ? {} : { userId: query.userId }),
      ...(query.type === undefined ? {} : { type: query.type }),
      ...(query.before === undefined ? {} : { before: query.before }),
    });
    return { events, next: events.length === limit ? events[events.length - 1]!.id : null };
  }

  private async user(id: string): Promise<UserWithSecret> {
    const u = await this.store.getUserById(id);
    if (!u) throw notFound();
    return u;
  }
}

const notFound = () => new LatchkeyError('user_not_found', 'no such user');
