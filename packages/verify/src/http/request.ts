/** The framework-free adapter: Fetch API Request in, claims out (Deno, Bun, Workers, Node's fetch handlers). */
import { VerifyError } from '../errors.js';
import type { AccessTokenClaims } from '../types.js';
import type { Verifier } from '../verifier.js';
import { authorize, bearerToken, refusal, requirement, type Requirements } from './bearer.js';

/**
 * `(request) => Promise<claims>` for a Fetch API Request; rejects with a
 * VerifyError (`refusalResponse` turns it into the RFC 6750 answer).
 * @example
 * const auth = requestVerifier(verifier, { scope: 'orders:read' });
 * const claims = await auth(request).catch(refusalResponse);
 * if (claims instanceof Response) return claims;
 */
export function requestVerifier(verifier: Verifier, requirements?: Requirements): (request: Request) => Promise<AccessTokenClaims> {
  const req = requirement(requirements);
  return async (request) => {
    const claims = await verifier.verify(bearerToken(request.headers.get('authorization')));
    authorize(claims, req);
    return claims;
  };
}

/**
 * The Response for a refusal: 401 + WWW-Authenticate, 403 insufficient_scope,
 * or 503. Anything that is not a VerifyError is thrown again (a bug is not a refusal).
 */
export function refusalResponse(error: unknown, requirements?: Requirements): Response {
  if (!(error instanceof VerifyError)) throw error;
  const r = refusal(error, requirement(requirements));
  return new Response(r.body, { status: r.status, headers: r.headers });
}
