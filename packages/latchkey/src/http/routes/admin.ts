import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { LatchkeyError } from '../../errors.js';
import { normaliseEmail } from '../../accounts/email.js';
import type { Context } from '../context.js';
import { HandleParams, Roles, UserParams } from '../schemas.js';
import { sessionView, userView } from '../views.js';

const EmailQuery = Type.Object({ email: Type.String({ minLength: 1, maxLength: 320 }) }, { additionalProperties: false });

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
    return { revoked: ended.length };
  });

  app.delete<{ Params: Static<typeof HandleParams> }>('/v1/admin/sessions/:handle', { schema: { params: HandleParams } }, async (request, reply) => {
    const ended = await ctx.sessions.endByHandle(request.params.handle, 'revoked_by_admin');
    if (!ended) throw new LatchkeyError('session_not_found', 'no such session');
    return reply.code(204).send();
  });

  /** Disabling ends every session at once, in the same transaction. */
  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/disable', { schema: { params: UserParams } }, async (request) => {
    const ended = await ctx.store.setUserDisabled(request.params.id, true);
    ctx.sessions.forgetUser(request.params.id);
    ctx.sessions.ended(ended, 'user_disabled');
    return { user: userView(await getUser(request.params.id)), revoked: ended.length };
  });

  app.post<{ Params: Static<typeof UserParams> }>('/v1/admin/users/:id/enable', { schema: { params: UserParams } }, async (request) => {
    await ctx.store.setUserDisabled(request.params.id, false);
    ctx.sessions.forgetUser(request.params.id);
    return { user: userView(await getUser(request.params.id)) };
  });

  app.put<{ Params: Static<typeof UserParams>; Body: Static<typeof Roles> }>(
    '/v1/admin/users/:id/roles',
    { schema: { params: UserParams, body: Roles } },
    async (request) => {
      if (!(await ctx.store.setUserRoles(request.params.id, request.body.roles))) {
        throw new LatchkeyError('user_not_found', 'no such user');
      }
      ctx.sessions.forgetUser(request.params.id);
      return { user: userView(await getUser(request.params.id)) };
    },
  );
}
