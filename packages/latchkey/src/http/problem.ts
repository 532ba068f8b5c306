/**
 * The one place errors become HTTP: RFC 9457 problem+json with a stable `type`
 * and `code`. OAuth endpoints map to RFC 6749 error JSON instead (tokens/).
 * Client mistakes never become 500; internals never reach the body.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isLatchkeyError, type ErrorCode } from '../errors.js';

const STATUS: Record<ErrorCode, number> = {
  invalid_credentials: 401,
  email_taken: 409,
  weak_password: 400,
  password_unchanged: 400,
  invalid_email: 400,
  unauthenticated: 401,
  session_not_found: 404,
  user_not_found: 404,
  user_disabled: 403,
  forbidden: 403,
  csrf_failed: 403,
  rate_limited: 429,
  invalid_grant: 400,
  invalid_request: 400,
  invalid_client: 401,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  key_not_found: 404,
  store_unavailable: 503,
};

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  errors?: { pointer: string; detail: string }[];
  [ext: string]: unknown;
}

export const problemType = (code: string): string => `urn:latchkey:problem:${code}`;

export function problem(status: number, code: string, detail?: string, extra: Record<string, unknown> = {}): Problem {
  return { type: problemType(code), title: TITLES[status] ?? 'Error', status, code, ...(detail ? { detail } : {}), ...extra };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').header('cache-control', 'no-store').send(p);
}

export const isStoreUnavailable = (err: unknown): boolean => isLatchkeyError(err) && err.code === 'store_unavailable';

/** Translate any thrown error to a problem. */
export function toProblem(err: unknown): Problem {
  if (isLatchkeyError(err)) {
    const extra: Record<string, unknown> = {};
    if (err.fields) extra.errors = Object.entries(err.fields).map(([k, v]) => ({ pointer: `/${k}`, detail: v }));
    return problem(STATUS[err.code], err.code, err.message, extra);
  }
  const e = err as Partial<FastifyError> & { validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] };
  if (e.validation) {
    return problem(400, 'invalid_request', 'the request does not match the schema', {
      errors: e.validation.slice(0, 10).map((v) => ({
        pointer: v.instancePath || (v.params?.missingProperty ? `/${String(v.params.missingProperty)}` : ''),
        detail: v.message ?? 'invalid',
      })),
    });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'payload_too_large', 'the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'unsupported_media_type', 'send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem(400, 'invalid_json', 'the body is not valid JSON');
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return problem(status, 'bad_request', 'the request could not be processed');
  return problem(500, 'internal_error', 'something went wrong on our side');
}

/** The OAuth endpoints (RFC 6749 error JSON rather than problem+json). */
export const isOauthPath = (url: string | undefined): boolean => url !== undefined && url.startsWith('/oauth/');

/** An RFC 6749 `error` for a status the OAuth endpoints answer outside their own handlers. */
export const oauthError = (status: number): string =>
  status === 503 ? 'temporarily_unavailable' : status >= 500 ? 'server_error' : 'invalid_request';

/** RFC 6749 §5.2 error JSON, never cached. */
export function sendOauthError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply
    .code(status)
    .headers({ 'cache-control': 'no-store', pragma: 'no-cache' })
    .type('application/json')
    .send({ error, error_description: description });
}

export function errorHandler(this: unknown, err: unknown, request: FastifyRequest, reply: FastifyReply) {
  const p = toProblem(err);
  // a store outage is logged once by the store (start and end), not once per request
  if (p.status >= 500 && !isStoreUnavailable(err)) request.log.error({ err }, 'request failed');
  if (isLatchkeyError(err) && err.retryAfter) reply.header('retry-after', String(err.retryAfter));
  return sendProblem(reply, p);
}
