/**
 * The baselines: the same route with no authentication at all, on Express
 * (SEEDS_FRAMEWORK=express) and on Fastify (fastify), so the report can tell
 * what a stack's authentication costs from what its framework costs.
 * `GET /me` answers the same small JSON as every stack's authenticated route.
 */
import express from 'express';
import Fastify from 'fastify';
import { BACKLOG, ready } from './common.js';

const body = { ok: true, sub: 'u_anonymous0000000000000000' };
if (process.env.SEEDS_FRAMEWORK === 'express') {
  const app = express();
  app.get('/me', (_req, res) => {
    res.json(body);
  });
  const server = app.listen(0, '127.0.0.1', BACKLOG, () => ready((server.address() as { port: number }).port));
} else if (process.env.SEEDS_FRAMEWORK === 'fastify') {
  const app = Fastify({ logger: false });
  app.get('/me', async () => body);
  await app.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG });
  ready((app.server.address() as { port: number }).port);
} else {
  throw new Error('SEEDS_FRAMEWORK must be express or fastify');
}
