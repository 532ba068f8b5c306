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
  rememberDevice(ctx, request, reply, user);
  return session;
}

/**
 * The known-device cookie (accounts/known-devices.ts): `__Host-` (Secure,
 * Path=/, no Domain), HttpOnly, SameSite=Strict, kept for a year. Signing out
 * keeps it: it says this browser has proved the password before, nothing more.
 */
export const DEVICE_COOKIE = '__Host-latchkey-device';
const DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600;

export const deviceCookie = (request: FastifyRequest): string | undefined => request.cookies[DEVICE_COOKIE];

/** After a right password: mark this browser as a known device of `user`. */
export function rememberDevice(ctx: Context, request: FastifyRequest, reply: FastifyReply, user: User): void {
  const token = ctx.accounts.deviceToken(user.id, deviceCookie(request));
  reply.setCookie(DEVICE_COOKIE, token, { path: '/', httpOnly: true, secure: true, sameSite: 'strict', maxAge: DEVICE_COOKIE_MAX_AGE });
}

/** End the session behind the cookie, if any, and clear the cookie either way. */
export async function endSession(ctx: Context, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const cookie = ctx.config.sessions;
  const secret = sessionCookie(request, cookie);
  if (secret) await ctx.sessions.endBySecret(secret, 'logout');
  clearSessionCookie(reply, cookie);
}
