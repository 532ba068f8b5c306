/**
 * What every adapter shares: the bearer token from an Authorization header
 * (RFC 6750 §2.1; header only, never the query string), the scope and role
 * requirements, and the RFC 6750 §3 answer to a refusal.
 */
import { VerifyError } from '../errors.js';
import type { AccessTokenClaims } from '../types.js';

/** What a route requires beyond a valid token. */
export interface Requirements {
  /** Every one of these scopes must be in the token's `scope` (a space-separated string or a list). */
  scope?: string | readonly string[];
  /** Every one of these roles must be in the token's `roles`. */
  roles?: string | readonly string[];
  /** `realm` of the WWW-Authenticate challenge. */
  realm?: string;
}

export interface Requirement {
  scopes: readonly string[];
  roles: readonly string[];
  realm: string | undefined;
}

/** RFC 6749 §3.3 scope-token characters (also required of roles and realm: they go into a quoted header value). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const REALM = /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/;

function list(v: string | readonly string[] | undefined, what: string): string[] {
  if (v === undefined) return [];
  const xs = typeof v === 'string' ? v.split(' ').filter(Boolean) : [...v];
  for (const x of xs) if (typeof x !== 'string' || !SCOPE_TOKEN.test(x)) throw new TypeError(`${what}: ${JSON.stringify(x)} is not a valid value`);
  return xs;
}

/** Validate requirements once, when the middleware is made. */
export function requirement(r: Requirements = {}): Requirement {
  if (r.realm !== undefined && (typeof r.realm !== 'string' || !REALM.test(r.realm))) throw new TypeError('realm: not a valid quoted-string value');
  return { scopes: list(r.scope, 'scope'), roles: list(r.roles, 'roles'), realm: r.realm };
}

const BEARER = /^bearer /i;

/** token68 (RFC 7235 §2.1). */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The bearer token of an Authorization header value. Throws `missing_token`
 * when there is none (or another scheme), `malformed` when the value is not
 * one token68.
 */
export function bearerToken(authorization: string | null | undefined): string {
  if (typeof authorization !== 'string' || authorization.length < 7) throw new VerifyError('missing_token');
  // the scheme is case-insensitive (RFC 7235 §2.1); the usual spelling is checked without allocating
  if (!authorization.startsWith('Bearer ') && !BEARER.test(authorization)) throw new VerifyError('missing_token');
  const token = authorization.slice(7).trim();
  if (!TOKEN68.test(token)) throw new VerifyError('malformed', 'not a bearer token');
  return token;
}

/** Throw `insufficient_scope` unless the claims meet the requirement. */
export function authorize(claims: AccessTokenClaims, req: Requirement): void {
  if (req.scopes.length) {
    const have = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    for (const s of req.scopes) if (!have.includes(s)) throw new VerifyError('insufficient_scope', `scope ${s}`);
  }
  if (req.roles.length) {
    const have = claims.roles ?? [];
    for (const r of req.roles) if (!have.includes(r)) throw new VerifyError('insufficient_scope', `role ${r}`);
  }
}

export interface Refusal {
  status: 401 | 403 | 503;
  headers: Record<string, string>;
  /** JSON: {"error": <code>, "error_description": <fixed text>}. */
  body: string;
}

/**
 * The HTTP answer to a refusal: 401 with `WWW-Authenticate: Bearer
 * error="invalid_token"` (no error when no token was sent, RFC 6750 §3.1),
 * 403 `insufficient_scope` naming the required scope, 503 when the verifier
 * cannot decide (keys or revocation data unavailable).
 */
export function refusal(err: VerifyError, req: Requirement): Refusal {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  const params: string[] = [];
  if (req.realm !== undefined) params.push(`realm="${req.realm}"`);
  if (err.status === 403) {
    params.push('error="insufficient_scope"', `error_description="${err.description}"`);
    if (req.scopes.length) params.push(`scope="${req.scopes.join(' ')}"`);
  } else if (err.status === 401 && err.code !== 'missing_token') {
    params.push('error="invalid_token"', `error_description="${err.description}"`);
  }
  if (err.status !== 503) headers['www-authenticate'] = params.length ? `Bearer ${params.join(', ')}` : 'Bearer';
  else headers['retry-after'] = '5';
  return { status: err.status, headers, body: JSON.stringify({ error: err.code, error_description: err.description }) };
}
