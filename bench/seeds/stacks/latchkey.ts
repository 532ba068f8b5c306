/**
 * latchkey as bench/seeds.ts runs it: its own sign-in endpoints (/v1/login for
 * the cookie, /v1/tokens for access tokens), its admin API for revocation, and
 * GET /bench/me, the same small JSON as the Express stacks' /me behind
 * latchkey's session hook (what every cookie-authenticated route uses).
 *
 * SEEDS_STORE=sqlite: the embedded store in SEEDS_DATA_DIR. SEEDS_STORE=postgres:
 * SEEDS_DATABASE_URL, with Redis (SEEDS_REDIS_URL) for the rate-limit counters.
 * SEEDS_FEED_SECRET: a client that may follow the revocation feed (id seeds-feed).
 *
 * Settings left at their defaults except: the per-IP login limit, raised
 * because every virtual user signs in from 127.0.0.1 (2,000 users would come
 * from 2,000 addresses; the limiter still runs and counts every attempt), and
 * logging off.
 */
import type { FastifyInstance } from 'fastify';
import { randomBytes } from 'node:crypto';
import { createLatchkey } from '../../../packages/latchkey/src/app.js';
import { parseConfig } from '../../../packages/latchkey/src/config.js';
import { sessionHooks } from '../../../packages/latchkey/src/http/auth.js';
import type { Context } from '../../../packages/latchkey/src/http/context.js';
import { accounts, BACKLOG, ready } from './common.js';

const port = Number(process.env.SEEDS_PORT);
const kind = process.env.SEEDS_STORE;
if (kind !== 'sqlite' && kind !== 'postgres') throw new Error('SEEDS_STORE must be sqlite or postgres');

async function benchRoute(app: FastifyInstance, ctx: Context) {
  const { requireSession } = sessionHooks(ctx);
  app.get('/bench/me', { onRequest: requireSession }, async (request) => ({ ok: true, sub: request.auth!.user.id }));
}

const config = parseConfig({
  port,
  issuer: `http://127.0.0.1:${port}`,
  dataDir: process.env.SEEDS_DATA_DIR,
  logLevel: 'silent',
  adminKey: process.env.SEEDS_ADMIN_KEY,
  rateLimit: { loginPerIp: 1_000_000 },
  ...(process.env.SEEDS_FEED_SECRET ? { clients: [{ id: 'seeds-feed', secret: process.env.SEEDS_FEED_SECRET, introspect: false, revocationFeed: true }] } : {}),
  // PostgreSQL requires a key-encryption key (the signing keys and secrets are sealed in the database)
  ...(kind === 'postgres'
    ? {
        store: { kind: 'postgres', url: process.env.SEEDS_DATABASE_URL },
        redis: { url: process.env.SEEDS_REDIS_URL },
        keys: { encryptionKey: randomBytes(32).toString('base64') },
      }
    : {}),
});
const lk = await createLatchkey(config, { logger: false, plugins: [benchRoute] });
const now = Math.floor(Date.now() / 1000);
for (const a of accounts()) await lk.store.createUser({ ...a, createdAt: now });
await lk.http.listen({ port, host: '127.0.0.1', backlog: BACKLOG });
process.on('SIGTERM', () => {
  lk.close().finally(() => process.exit(0));
});
ready(port);
