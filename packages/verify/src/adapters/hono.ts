/**
 * Hono middleware (any runtime). No runtime import of hono.
 *
 *   app.use('/api/*', honoAuth(verifier)); app.get('/api/me', (c) => c.json(c.get('claims')));
 */
import type { MiddlewareHandler } from 'hono';
import { VerifyError } from '../errors.js';
import { authorize, bearerToken, refusal, requirement, type Requirements } from '../http/bearer.js';
import type { AccessTokenClaims } from '../types.js';
import type { Verifier } from '../verifier.js';

/** Hono middleware: `c.get('claims')` is the token's claims, or it answers 401/403/503 (RFC 6750). */
export function honoAuth(verifier: Verifier, requirements?: Requirements): MiddlewareHandler<{ Variables: { claims: AccessTokenClaims } }> {
  const need = requirement(requirements);
  return async (c, next) => {
    let claims: AccessTokenClaims;
    try {
      claims = await verifier.verify(bearerToken(c.req.header('authorization')));
      authorize(claims, need);
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      const r = refusal(err, need);
      return new Response(r.body, { status: r.status, headers: r.headers });
    }
    c.set('claims', claims);
    await next();
  };
}
