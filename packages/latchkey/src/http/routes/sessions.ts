import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { LatchkeyError } from '../../errors.js';
import { sessionHooks } from '../auth.js';
import { acceptEmptyJson } from '../bodyless.js';
import type { Context } from '../context.js';
import { HandleParams } from '../schemas.js';
import { sessionView, userView } from '../../admin/views.js';

/** The signed-in user's own sessions: who am I, my devices, end one or all others. */
export async function sessionRoutes(app: FastifyInstance, ctx: Context) {
  const { requireSession } = sessionHooks(ctx);

  app.get('/v1/session', { onRequest: requireSession }, async (request, reply) => {
    const a = request.auth!;
    return reply.header('cache-control', 'no-store').send({ user: userView(a.user), session: sessionView(a.session, a.handle) });
  });

  app.get('/v1/sessions', { onRequest: requireSession }, async (request, reply) => {
    const a = request.auth!;
    const sessions = await ctx.sessions.list(a.user.id);
    return reply.header('cache-control', 'no-store').send({ sessions: sessions.map((s) => sessionView(s, a.handle)) });
  });

  app.delete<{ Params: Static<typeof HandleParams> }>(
    '/v1/sessions/:handle',
    { onRequest: requireSession, schema: { params: HandleParams } },
    async (request, reply) => {
      const a = request.auth!;
      const ended = await ctx.sessions.endByHandle(request.params.handle, 'revoked', a.user.id);
      if (!ended) throw new LatchkeyError('session_not_found', 'no such session');
      return reply.code(204).send();
    },
  );

  /** "Sign out of all other devices": every session but this one. */
  // bodyless: an empty application/json body is no body (http/bodyless.ts)
  await app.register(async (bodyless) => {
    acceptEmptyJson(bodyless);
    bodyless.post('/v1/sessions/revoke-others', { onRequest: requireSession }, async (request, reply) => {
      const a = request.auth!;
      const ended = await ctx.sessions.endAllForUser(a.user.id, 'signed_out_everywhere', a.session.idHash);
      return reply.header('cache-control', 'no-store').send({ revoked: ended.length });
    });
  });
}
