/**
 * A service that trusts latchkey's access tokens: Fastify with
 * @latchkey/verify's plugin (as users get the package: its build), the
 * revocation feed on (createRevocationFeed, client seeds-feed), keys from the
 * issuer's JWKS. GET /me answers the same small JSON as the other stacks'.
 * SEEDS_ISSUER, SEEDS_FEED_SECRET.
 */
import Fastify from 'fastify';
import { createRevocationFeed, createVerifier } from '@latchkey/verify';
import { latchkeyAuth } from '@latchkey/verify/fastify';
import { BACKLOG, ready } from './common.js';

const issuer = process.env.SEEDS_ISSUER!;
const feed = createRevocationFeed({ issuer, clientId: 'seeds-feed', clientSecret: process.env.SEEDS_FEED_SECRET! });
await feed.ready(30_000);
const verifier = createVerifier({ issuer, audience: 'latchkey', revocation: feed });

const app = Fastify({ logger: false });
await app.register(async (guarded) => {
  await guarded.register(latchkeyAuth, { verifier });
  guarded.get('/me', async (request) => ({ ok: true, sub: request.claims!.sub }));
});
await app.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG });
process.on('SIGTERM', () => {
  feed.close();
  app.close().finally(() => process.exit(0));
});
ready((app.server.address() as { port: number }).port);
