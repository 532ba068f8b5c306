/**
 * Express (4 and 5) middleware. Plain function over Node's request and
 * response: no runtime import of express.
 *
 *   app.get('/orders', requireToken(verifier, { scope: 'orders:read' }), (req, res) => res.json(req.claims));
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VerifyError } from '../errors.js';
import { authorize, bearerToken, refusal, requirement, type Requirements } from '../http/bearer.js';
import type { AccessTokenClaims } from '../types.js';
import type { Verifier } from '../verifier.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified access token's claims (set by requireToken). */
      claims?: AccessTokenClaims;
    }
  }
}

type Next = (err?: unknown) => void;

/** Express middleware: sets `req.claims` to the token's claims, or answers 401/403/503 (RFC 6750). */
export function requireToken(
  verifier: Verifier,
  requirements?: Requirements,
): (req: IncomingMessage & { claims?: AccessTokenClaims }, res: ServerResponse, next: Next) => void {
  const need = requirement(requirements);
  // no closure is made per request unless the verification has to wait (keys to fetch, introspection)
  return (req, res, next) => {
    let result: AccessTokenClaims | Promise<AccessTokenClaims>;
    try {
      // synchronous when it can be: a token seen before costs no promise
      result = verifier.verifyNow(bearerToken(req.headers.authorization));
    } catch (err) {
      return refuse(err, res, next);
    }
    if (result instanceof Promise) {
      result.then(
        (claims) => pass(claims, req, res, next),
        (err: unknown) => refuse(err, res, next),
      );
    } else pass(result, req, res, next);
  };

  function pass(claims: AccessTokenClaims, req: IncomingMessage & { claims?: AccessTokenClaims }, res: ServerResponse, next: Next): void {
    try {
      authorize(claims, need);
    } catch (err) {
      return refuse(err, res, next);
    }
    req.claims = claims;
    next();
  }

  function refuse(err: unknown, res: ServerResponse, next: Next): void {
    // anything but a refusal is a bug: Express's error handler answers 500
    if (!(err instanceof VerifyError)) return next(err);
    const r = refusal(err, need);
    res.statusCode = r.status;
    for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
    res.end(r.body);
  }
}
