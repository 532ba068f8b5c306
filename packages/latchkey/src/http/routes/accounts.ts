import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import type { EndReason } from '../../sessions/service.js';
import type { User } from '../../store/store.js';
import { sessionHooks } from '../auth.js';
import { acceptEmptyJson } from '../bodyless.js';
import type { Context } from '../context.js';
import { Credentials, PasswordChange } from '../schemas.js';
import { deviceCookie, endSession, startSession as start } from '../signin.js';
import { sessionView, userView } from '../../admin/views.js';

/** Sign-up, login, logout, password change: JSON API under /v1. */
export async function accountRoutes(app: FastifyInstance, ctx: Context) {
  const { requireSession } = sessionHooks(ctx);

  /** A fresh session (see http/signin.ts) and its JSON view. */
  async function startSession(request: FastifyRequest, reply: FastifyReply, user: User, reason: EndReason = 'login') {
    const session = await start(ctx, request, reply, user, reason);
    return { user: userView(user), session: sessionView(session, ctx.sessions.handle(session)) };
  }

  app.post<{ Body: Static<typeof Credentials> }>('/v1/signup', { schema: { body: Credentials } }, async (request, reply) => {
    ctx.csrf.check(request);
    const user = await ctx.accounts.signup(request.body.email, request.body.password, request.ip);
    const body = await startSession(request, reply, user);
    return reply.code(201).header('cache-control', 'no-store').send(body);
  });

  app.post<{ Body: Static<typeof Credentials> }>('/v1/login', { schema: { body: Credentials } }, async (request, reply) => {
    ctx.csrf.check(request);
    const user = await ctx.accounts.login(request.body.email, request.body.password, request.ip, deviceCookie(request));
    return reply.header('cache-control', 'no-store').send(await startSession(request, reply, user));
  });

  // bodyless: an empty application/json body is no body (http/bodyless.ts)
  await app.register(async (bodyless) => {
    acceptEmptyJson(bodyless);
    bodyless.post('/v1/logout', async (request, reply) => {
      ctx.csrf.check(request);
      await endSession(ctx, request, reply);
      return reply.code(204).send();
    });
  });

  app.post<{ Body: Static<typeof PasswordChange> }>(
    '/v1/password',
    { schema: { body: PasswordChange }, onRequest: requireSession },
    async (request, reply) => {
      const auth = request.auth!;
      const ended = await ctx.accounts.changePassword(
        auth.user.id,
        request.body.currentPassword,
        request.body.newPassword,
        request.ip,
        auth.session.idHash,
      );
      ctx.sessions.ended(ended, 'password_changed');
      // a privilege-level change: the current session gets a new ID as well
      const body = await startSession(request, reply, auth.user, 'password_changed');
      return reply.header('cache-control', 'no-store').send({ ...body, endedSessions: ended.length });
    },
  );
}
