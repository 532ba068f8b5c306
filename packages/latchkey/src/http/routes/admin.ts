import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { AUDIT_TYPES } from '../../audit/log.js';
import { LatchkeyError } from '../../errors.js';
import { normaliseEmail } from '../../accounts/email.js';
import type { Context } from '../context.js';
import { HandleParams, Roles, UserParams } from '../schemas.js';
import { sessionView, userView } from '../views.js';

const EmailQuery = Type.Object({ email: Type.String({ minLength: 1, maxLength: 320 }) }, { additionalProperties: false });
const AuditQuery = Type.Object(
  {
    userId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    type: Type.Optional(Type.Union(AUDIT_TYPES.map((t) => Type.Literal(t)))),
    /** The `next` of the previous page: events older than it. Query strings are not coerced: digits. */
    before: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,14}$' })),
    /** 1 to 1000, default 100. */
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })),
  },
  { additionalProperties: false },
);

/**
 * Operator API, authenticated by `Authorization: Bearer <adminKey>`. Off (404)
 * when no admin key is configured.
 */
export async function adminRoutes(app: FastifyInstance, ctx: Context) {
  const key = ctx.config.adminKey;
  if (!key) return;
  // compare digests so the comparison is constant-time whatever the input length
  const expected = createHash('sha256').update(key).digest();

  app.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    const digest = createHash('sha256').update(given).digest();
    if (!timingSafeEqual(digest, expected) || given.length === 0) {
      throw new LatchkeyError('unauthenticated', 'admin key required');
    }
  });

  const getUser = async (id: string) => {
    const u = await ctx.store.getUserById(id);
    if (!u) throw new LatchkeyError('user_not_found', 'no such user');
    return u;
  };

  app.get<{ Querystring: Static<typeof EmailQuery> }>('/v1/admin/users', { schema: { querystring: EmailQuery } }, async (request) => {
    let email: string;
    try {
      email = normaliseEmail(request.query.email);
    } catch {
      throw new LatchkeyError('user_not_found', 'no such user');
    }
    const u = await ctx.store.getUserByEmail(email);
    if (!u) throw new LatchkeyError('user_not_found', 'no such user');
    return { user: userView(u) };
  });

  /** The audit log, newest first, a page at a time: `next` is the `before` of the following page (null at the end). */
  app.get<{ Querystring: Static<typeof AuditQuery> }>('/v1/admin/audit', { schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { userId, type } = request.query;
    const limit = request.query.limit === undefined ? 100 : Number(request.query.limit);
    if (limit > 1000) throw new LatchkeyError('invalid_request', 'limit is at most 1000');
    const before = request.query.before === undefined ? undefined : Number(request.query.before);
    const events = await ctx.audit.list({
      limit,
      ...(userId === undefined ? {} : { userId }),
      ...(type === undefined ? {} : { type }),
      ...(before === undefined ? {} : { before }),
    });
    const next = events.length === limit ? events[events.length - 1]!.id : null;
    return reply.header('cache-control', 'no-store').send({ events, next });
  });

  app.get<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id', { schema: { params: UserParams } }, async (request) => ({
    user: userView(await getUser(request.params.id)),
  }));

  app.get<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/sessions', { schema: { params: UserParams } }, async (request) => {
    await getUser(request.params.id);
    return { sessions: (await ctx.sessions.list(request.params.id)).map((s) => sessionView(s)) };
  });

  app.delete<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/sessions', { schema: { params: UserParams } }, async (request) => {
    await getUser(request.params.id);
    const ended = await ctx.sessions.endAllForUser(request.params.id, 'revoked_by_admin');
    await ctx.audit.record({ type: 'admin_sessions_revoked', userId: request.params.id, ip: request.ip, detail: { revoked: ended.length } });
    return { revoked: ended.length };
  });

  app.delete<{ Params: Static<typeof HandleParams> }>('/v1/admin/sessions/:handle', { schema: { params: HandleParams } }, async (request, reply) => {
    const ended = await ctx.sessions.endByHandle(request.params.handle, 'revoked_by_admin');
    if (!ended) throw new LatchkeyError('session_not_found', 'no such session');
    await ctx.audit.record({ type: 'admin_session_revoked', userId: ended.userId, session: request.params.handle, ip: request.ip });
    return reply.code(204).send();
  });

  /** Disabling ends every session at once, in the same transaction. */
  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/disable', { schema: { params: UserParams } }, async (request) => {
    const ended = await ctx.store.setUserDisabled(request.params.id, true);
    ctx.sessions.forgetUser(request.params.id);
    ctx.sessions.ended(ended, 'user_disabled');
    const user = userView(await getUser(request.params.id));
    await ctx.audit.record({ type: 'admin_user_disabled', userId: request.params.id, ip: request.ip, detail: { revoked: ended.length } });
    return { user, revoked: ended.length };
  });

  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/enable', { schema: { params: UserParams } }, async (request) => {
    await ctx.store.setUserDisabled(request.params.id, false);
    ctx.sessions.forgetUser(request.params.id);
    const user = userView(await getUser(request.params.id));
    await ctx.audit.record({ type: 'admin_user_enabled', userId: request.params.id, ip: request.ip });
    return { user };
  });

  app.put<{ Params: Static<typeof UserParams>; Body: Static<typeof Roles> }>(
    '/v1/admin/users/:id/roles',
    { schema: { params: UserParams, body: Roles } },
    async (request) => {
      if (!(await ctx.store.setUserRoles(request.params.id, request.body.roles))) {
        throw new LatchkeyError('user_not_found', 'no such user');
      }
      ctx.sessions.forgetUser(request.params.id);
      await ctx.audit.record({ type: 'admin_roles_changed', userId: request.params.id, ip: request.ip, detail: { roles: request.body.roles } });
      return { user: userView(await getUser(request.params.id)) };
    },
  );
}
