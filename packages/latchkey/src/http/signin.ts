/**
 * Starting and ending the browser session behind the cookie, shared by the
 * JSON API (routes/accounts.ts) and the account pages (web/) so both sign in
 * and out the same way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { deviceLabel } from '../sessions/device.js';
import type { EndReason } from '../sessions/service.js';
import type { Session, User } from '../store/store.js';
import type { Context } from './context.js';
import { clearSessionCookie, sessionCookie, setSessionCookie } from './cookies.js';

/**
 * Start a fresh session for `user`: always a new ID (fixation defence), and
 * any session the browser already presented is ended.
 */
export async function startSession(
  ctx: Context,
  request: FastifyRequest,
  reply: FastifyReply,
  user: User,
  reason: EndReason = 'login',
): Promise<Session> {
  const cookie = ctx.config.sessions;
  const previous = sessionCookie(request, cookie);
  if (previous) await ctx.sessions.endBySecret(previous, reason);
  const { secret, session } = await ctx.sessions.create(
    user.id,
    { userAgent: request.headers['user-agent'], ip: request.ip },
    deviceLabel(request.headers['user-agent']),
  );
  setSessionCookie(reply, cookie, secret);
  return session;
}

/** End the session behind the cookie, if any, and clear the cookie either way. */
export async function endSession(ctx: Context, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const cookie = ctx.config.sessions;
  const secret = sessionCookie(request, cookie);
  if (secret) await ctx.sessions.endBySecret(secret, 'logout');
  clearSessionCookie(reply, cookie);
}
