import type { FastifyReply, FastifyRequest } from 'fastify';
import { LatchkeyError } from '../errors.js';
import { MISS } from '../sessions/service.js';
import type { Context } from './context.js';
import { clearSessionCookie, sessionCookie } from './cookies.js';

/**
 * onRequest hooks for cookie-authenticated routes. `requireSession` refuses
 * with 401 (and clears a dead cookie); state-changing methods also pass the
 * CSRF guard.
 */
export function sessionHooks(ctx: Context) {
  const s = ctx.config.sessions;
  const cookieName = s.cookieName;

  async function load(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const secret = sessionCookie(request, s);
    const found = await ctx.sessions.authenticate(secret, request.ip);
    if (!found) {
      if (secret !== undefined) clearSessionCookie(reply, s);
      return false;
    }
    request.auth = found;
    return true;
  }

  return {
    /**
     * Callback-style hook: a cached session is answered synchronously with no
     * promise per request (the hot path of every authenticated route).
     */
    requireSession(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
      const method = request.raw.method;
      if (method !== 'GET' && method !== 'HEAD') {
        try {
          ctx.csrf.check(request);
        } catch (err) {
          done(err as Error);
          return;
        }
      }
      const secret = request.cookies[cookieName];
      const hit = ctx.sessions.authenticateCached(secret);
      if (hit !== MISS) {
        if (hit) {
          request.auth = hit;
          done();
          return;
        }
        if (secret !== undefined) clearSessionCookie(reply, s);
        done(new LatchkeyError('unauthenticated', 'no valid session'));
        return;
      }
      load(request, reply).then(
        (ok) => done(ok ? undefined : new LatchkeyError('unauthenticated', 'no valid session')),
        (err: Error) => done(err),
      );
    },
    async optionalSession(request: FastifyRequest, reply: FastifyReply) {
      await load(request, reply);
    },
  };
}
