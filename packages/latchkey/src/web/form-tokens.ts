/**
 * Anti-CSRF tokens for the account pages' forms, on top of CsrfGuard.check
 * (Origin / Sec-Fetch-Site) and the SameSite session cookie:
 * - signed-in forms carry CsrfGuard.tokenFor(session hash): an HMAC only
 *   this server can compute, useless with any other session;
 * - the signed-out forms (sign in, sign up) have no session to bind to, yet
 *   need a token too, or another site could sign a browser into the
 *   attacker's account (login CSRF). They use a double-submit token: a random
 *   value in a `__Host-` cookie, echoed by the form. The prefix means no
 *   sibling subdomain can plant a known value; HttpOnly keeps it from scripts.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { looksLikeSecret } from '../sessions/ids.js';

export const PRESESSION_COOKIE = '__Host-latchkey-csrf';

/** The signed-out forms' token: the browser's current one, or a new one set as a cookie. */
export function presessionToken(request: FastifyRequest, reply: FastifyReply): string {
  const existing = request.cookies[PRESESSION_COOKIE];
  if (existing && looksLikeSecret(existing)) return existing;
  const token = randomBytes(32).toString('base64url');
  // no Max-Age: it goes with the browser session; the form re-issues one when missing
  reply.setCookie(PRESESSION_COOKIE, token, { path: '/', httpOnly: true, secure: true, sameSite: 'strict' });
  return token;
}

/** Does the submitted token match the cookie? Constant time. */
export function presessionTokenValid(request: FastifyRequest, submitted: unknown): boolean {
  const cookie = request.cookies[PRESESSION_COOKIE];
  // both 43 base64url characters, so equal byte lengths, as timingSafeEqual needs
  if (typeof submitted !== 'string' || cookie === undefined || !looksLikeSecret(cookie) || !looksLikeSecret(submitted)) {
    return false;
  }
  return timingSafeEqual(Buffer.from(cookie), Buffer.from(submitted));
}
