/**
 * Domain errors. Each failure a caller must tell apart has its own stable `code`;
 * http/errors.ts maps codes to RFC 9457 problem+json (or RFC 6749 error JSON on
 * OAuth endpoints) in one place. Messages never carry internals.
 */
export type ErrorCode =
  | 'invalid_credentials'
  | 'email_taken'
  | 'weak_password'
  | 'password_unchanged'
  | 'invalid_email'
  | 'unauthenticated'
  | 'session_not_found'
  | 'user_not_found'
  | 'user_disabled'
  | 'forbidden'
  | 'csrf_failed'
  | 'rate_limited'
  | 'invalid_grant'
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'key_not_found'
  /** The store cannot answer now (PostgreSQL unreachable, SQLite busy, full or failing): 503 with Retry-After; nothing was decided. */
  | 'store_unavailable';

export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  /** Seconds until retry makes sense (rate limits, store outages). */
  readonly retryAfter: number | undefined;
  /** Per-field reasons a person can act on. */
  readonly fields: Record<string, string> | undefined;
  constructor(code: ErrorCode, message: string, opts: { retryAfter?: number; fields?: Record<string, string> } = {}) {
    super(message);
    this.name = 'LatchkeyError';
    this.code = code;
    this.retryAfter = opts.retryAfter;
    this.fields = opts.fields;
  }
}

export const isLatchkeyError = (e: unknown): e is LatchkeyError => e instanceof LatchkeyError;
