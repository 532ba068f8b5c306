/**
 * @latchkey/verify: verify latchkey access tokens (RFC 9068) in-process.
 *
 *   import { createVerifier } from '@latchkey/verify';
 *   const verifier = createVerifier({ issuer: 'https://auth.example.com', audience: 'orders' });
 *   const claims = await verifier.verify(token);
 *
 * Framework adapters: '@latchkey/verify/express', '/fastify', '/hono'.
 */
export { createVerifier, type Verifier } from './verifier.js';
export type { VerifierOptions } from './options.js';
export { VerifyError, type VerifyErrorCode } from './errors.js';
export { createRevocationList, type RevocationList, type RevocationSource, type RevokedReason } from './revocation.js';
export { requestVerifier, refusalResponse } from './http/request.js';
export { bearerToken, type Requirements } from './http/bearer.js';
export type { AccessTokenClaims, Algorithm, JSONWebKeySet, JWK, TokenHeader } from './types.js';
export { createRevocationFeed, type RevocationFeed, type RevocationFeedOptions } from './feed/subscriber.js';
export type { Revocation } from './feed/sets.js';
