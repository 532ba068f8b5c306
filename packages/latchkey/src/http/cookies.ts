import type { FastifyReply, FastifyRequest } from 'fastify';

export interface CookieSettings {
  cookieName: string;
  sameSite: 'lax' | 'strict';
  absoluteLifetimeSeconds: number;
}

/**
 * The session cookie: `__Host-` prefix (Secure, Path=/, no Domain: a sibling
 * subdomain cannot set or shadow it), HttpOnly (page script never sees it),
 * SameSite (not sent on cross-site subrequests or POSTs).
 */
export function setSessionCookie(reply: FastifyReply, s: CookieSettings, secret: string, maxAge = s.absoluteLifetimeSeconds) {
  reply.setCookie(s.cookieName, secret, {
    path: '/',
    httpOnly: true,
    secure: true,
    sameSite: s.sameSite,
    maxAge,
  });
}

export function clearSessionCookie(reply: FastifyReply, s: CookieSettings) {
  reply.setCookie(s.cookieName, '', { path: '/', httpOnly: true, secure: true, sameSite: s.sameSite, maxAge: 0 });
}

export const sessionCookie = (request: FastifyRequest, s: CookieSettings): string | undefined => request.cookies[s.cookieName];
