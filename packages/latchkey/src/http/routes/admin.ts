import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { AUDIT_TYPES } from '../../audit/log.js';
import { LatchkeyError } from '../../errors.js';
import type { Context } from '../context.js';
import { Roles } from '../../admin/service.js';
import { HandleParams, UserParams } from '../schemas.js';

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

  const actor = (request: FastifyRequest) => ({ ip: request.ip });

  app.get<{ Querystring: Static<typeof EmailQuery> }>('/v1/admin/users', { schema: { querystring: EmailQuery } }, async (request) =>
    ctx.admin.findUser(request.query.email),
  );

  /** The audit log, newest first, a page at a time: `next` is the `before` of the following page (null at the end). */
  app.get<{ Querystring: Static<typeof AuditQuery> }>('/v1/admin/audit', { schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { userId, type, limit, before } = request.query;
    const page = await ctx.admin.auditPage({
      ...(userId === undefined ? {} : { userId }),
      ...(type === undefined ? {} : { type }),
      ...(limit === undefined ? {} : { limit: Number(limit) }),
      ...(before === undefined ? {} : { before: Number(before) }),
    });
    return reply.header('cache-control', 'no-store').send(page);
  });

  app.get<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id', { schema: { params: UserParams } }, async (request) =>
    ctx.admin.showUser(request.params.id),
  );

  app.get<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/sessions', { schema: { params: UserParams } }, async (request) =>
    ctx.admin.listSessions(request.params.id),
  );

  app.delete<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/sessions', { schema: { params: UserParams } }, async (request) =>
    ctx.admin.revokeUserSessions(request.params.id, actor(request)),
  );

  app.delete<{ Params: Static<typeof HandleParams> }>('/v1/admin/sessions/:handle', { schema: { params: HandleParams } }, async (request, reply) => {
    await ctx.admin.revokeSession(request.params.handle, actor(request));
    return reply.code(204).send();
  });

  /** Disabling ends every session at once, in the same transaction. */
  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/disable', { schema: { params: UserParams } }, async (request) =>
    ctx.admin.disableUser(request.params.id, actor(request)),
  );

  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/enable', { schema: { params: UserParams } }, async (request) =>
    ctx.admin.enableUser(request.params.id, actor(request)),
  );

  app.put<{ Params: Static<typeof UserParams>; Body: Static<typeof Roles> }>(
    '/v1/admin/users/:id/roles',
    { schema: { params: UserParams, body: Roles } },
    async (request) => ctx.admin.setRoles(request.params.id, request.body, actor(request)),
  );
}
