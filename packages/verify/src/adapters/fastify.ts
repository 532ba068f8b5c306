/**
 * Fastify (4 and 5): a plugin that guards every route of the scope it is
 * registered in, and an onRequest hook for single routes. No runtime import
 * of fastify.
 *
 *   await app.register(latchkeyAuth, { verifier, scope: 'orders:read' });
 *   app.get('/admin', { onRequest: tokenHook(verifier, { roles: 'admin' }) }, handler);  // request.claims
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { VerifyError } from '../errors.js';
import { authorize, bearerToken, refusal, requirement, type Requirements } from '../http/bearer.js';
import type { AccessTokenClaims } from '../types.js';
import type { Verifier } from '../verifier.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified access token's claims (set by latchkeyAuth / tokenHook). */
    claims?: AccessTokenClaims;
  }
}

export interface LatchkeyAuthOptions extends Requirements {
  verifier: Verifier;
}

/** An onRequest hook: sets `request.claims`, or answers 401/403/503 (RFC 6750). */
export function tokenHook(
  verifier: Verifier,
  requirements?: Requirements,
): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  const need = requirement(requirements);
  const refuse = (err: unknown, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    if (!(err instanceof VerifyError)) return done(err as Error);
    const r = refusal(err, need);
    void reply.code(r.status).headers(r.headers).send(r.body);
  };
  const pass = (claims: AccessTokenClaims, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    try {
      authorize(claims, need);
    } catch (err) {
      return refuse(err, reply, done);
    }
    request.claims = claims;
    done();
  };
  // no closure is made per request unless the verification has to wait (keys to fetch, introspection)
  return (request, reply, done) => {
    let result: AccessTokenClaims | Promise<AccessTokenClaims>;
    try {
      // synchronous when it can be: a token seen before costs no promise
      result = verifier.verifyNow(bearerToken(request.headers.authorization));
    } catch (err) {
      return refuse(err, reply, done);
    }
    if (result instanceof Promise) {
      result.then(
        (claims) => pass(claims, request, reply, done),
        (err: unknown) => refuse(err, reply, done),
      );
    } else pass(result, request, reply, done);
  };
}

/**
 * The plugin. It is not encapsulated (like fastify-plugin), so its hook guards
 * the routes of the scope that registers it: register it inside the scope of
 * the routes to protect, and leave public routes outside.
 */
export function latchkeyAuth(instance: FastifyInstance, options: LatchkeyAuthOptions, done: (err?: Error) => void): void {
  const { verifier, ...requirements } = options;
  if (!instance.hasRequestDecorator('claims')) instance.decorateRequest('claims', undefined);
  instance.addHook('onRequest', tokenHook(verifier, requirements));
  done();
}
// what fastify-plugin sets: the hook applies to the registering scope, not a child scope of its own
(latchkeyAuth as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(latchkeyAuth as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = '@latchkey/verify';
