/**
 * CSRF defence for cookie-authenticated state changes. Three layers:
 * 1. SameSite=Lax (or Strict) session cookie: not sent on cross-site POSTs at all.
 * 2. Fetch metadata / Origin: a browser request whose Sec-Fetch-Site is
 *    cross-site or same-site, or whose Origin is not ours, is refused.
 * 3. JSON APIs accept only application/json (a cross-site form cannot send it
 *    without a CORS preflight we never grant); HTML forms carry a token bound
 *    to the session (web/), checked in constant time.
 * Requests with neither header come from non-browser clients (curl, SDKs),
 * which carry no ambient cookies an attacker could ride on.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { LatchkeyError } from '../errors.js';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export class CsrfGuard {
  private readonly origins: Set<string>;

  constructor(
    issuer: string,
    allowedOrigins: string[],
    private readonly secret: Buffer,
  ) {
    this.origins = new Set([new URL(issuer).origin, ...allowedOrigins.map((o) => new URL(o).origin)]);
  }

  /** Throws csrf_failed for a cross-site state-changing request. */
  check(request: FastifyRequest): void {
    if (SAFE.has(request.method)) return;
    const site = request.headers['sec-fetch-site'];
    if (typeof site === 'string') {
      if (site === 'same-origin' || site === 'none') return;
      // "same-site" is a sibling subdomain: still refused unless its Origin is allow-listed
      if (site !== 'same-site' || !this.originAllowed(request)) throw refused();
      return;
    }
    if (request.headers.origin !== undefined && !this.originAllowed(request)) throw refused();
  }

  private originAllowed(request: FastifyRequest): boolean {
    const origin = request.headers.origin;
    if (typeof origin !== 'string' || origin === 'null') return false;
    if (this.origins.has(origin)) return true;
    // the origin the request itself was addressed to (Host), e.g. 127.0.0.1 vs localhost
    const host = request.headers.host;
    return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
  }

  /** Token for HTML forms, bound to the session so it is useless elsewhere. */
  tokenFor(sessionIdHash: Buffer): string {
    return createHmac('sha256', this.secret).update(sessionIdHash).digest('base64url');
  }

  verifyToken(sessionIdHash: Buffer, token: unknown): boolean {
    if (typeof token !== 'string') return false;
    const expected = Buffer.from(this.tokenFor(sessionIdHash));
    // compare byte lengths, not string lengths: 43 UTF-16 units of a multibyte
    // character are more than 43 bytes, and timingSafeEqual throws on unequal lengths
    const given = Buffer.from(token, 'utf8');
    return given.length === expected.length && timingSafeEqual(expected, given);
  }
}

const refused = () => new LatchkeyError('csrf_failed', 'cross-site request refused');
