/**
 * Assemble a latchkey instance from a config: store, domain services, HTTP.
 * Used by `latchkey serve`, by tests, and by benchmarks.
 */
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AccountService } from './accounts/service.js';
import { AdminService } from './admin/service.js';
import { defaultHashConcurrency, PasswordHasher } from './accounts/passwords.js';
import type { Config } from './config.js';
import type { Context } from './http/context.js';
import { CsrfGuard } from './http/csrf.js';
import { buildHttp, type HttpOptions } from './http/server.js';
import { SessionService } from './sessions/service.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { oauthRoutes } from './http/routes/oauth.js';
import { createTokenServices, revocationRetention } from './tokens/services.js';
import { RevocationFeed } from './revocation/feed.js';
import { revocationRoutes } from './http/routes/revocations.js';
import { GatewayTokens } from './gateway/tokens.js';
import { gatewayRoutes } from './http/routes/gateway.js';
import { webRoutes } from './web/routes.js';
import { parseEncryptionKey } from './keys/material.js';
import { prepareDataDir, type SecretName } from './keys/secrets.js';
import { openAtRest, requireEncryptionKey } from './keys/at-rest.js';
import { PostgresLimiterBackend, RedisLimiterBackend, SqliteLimiterBackend, type LimiterBackend } from './accounts/limiters.js';
import { PostgresStore } from './store/postgres/index.js';
import type { RedisConnection } from './redis.js';
import { isStoreUnavailable } from './http/problem.js';

export interface Latchkey {
  config: Config;
  /** The BFF's token minting and cache (stats for operators and benchmarks). */
  gateway: GatewayTokens;
  /** The session service (its cache's stats for operators, tests and benchmarks). */
  sessions: SessionService;
  /** The revocation feed (subscriber count for operators and benchmarks). */
  revocations: RevocationFeed;
  store: Store;
  /** Where rate-limit counters live: the data dir's ratelimits.sqlite (PostgreSQL's rate_limits table with that store), or Redis over it. */
  limiters: LimiterBackend;
  /** The Redis connection when `redis.url` is set. */
  redis: RedisConnection | undefined;
  context: Context;
  /** Warnings logged once at start (secrets stored unencrypted, permissions tightened, values sealed, files imported). */
  notices: readonly string[];
  http: FastifyInstance;
  /** Stop timers, close HTTP and the store. */
  close(): Promise<void>;
}

export interface CreateOptions extends HttpOptions {
  /** Clock in ms (tests move time; production uses Date.now). */
  now?: () => number;
  /** Use this store instead of the one the config names (config.store). */
  store?: Store;
}

export async function createLatchkey(config: Config, opts: CreateOptions = {}): Promise<Latchkey> {
  const now = opts.now ?? Date.now;
  const dataDir = resolve(config.dataDir);
  const kek = parseEncryptionKey(config.keys.encryptionKey);
  const postgres = opts.store ? opts.store instanceof PostgresStore : config.store.kind === 'postgres';
  requireEncryptionKey(postgres, kek);
  // permissions, and an earlier latchkey's secret and key files read and checked, before anything is written;
  // on PostgreSQL nothing is kept in the data dir, so none is created
  const { legacy, notices } = prepareDataDir(dataDir, kek, postgres ? 'skip' : 'create');
  const store = opts.store ?? openStore(config);
  let secrets: Record<SecretName, Buffer>;
  try {
    // PostgreSQL: under an advisory lock, so nodes starting together apply each migration once
    await store.migrate();
    // the secrets and private keys live in the store: the first node creates them, every node reads them
    const atRest = await openAtRest(store, { kek, legacy });
    secrets = atRest.secrets;
    notices.push(...atRest.notices);
  } catch (err) {
    await store.close();
    throw err;
  }
  // revocation events live as long as the tokens they refer to, plus clock skew
  let wakeFeed = (): void => undefined;
  store.setRevocationPolicy({ retainSeconds: revocationRetention(config), now, onWrite: () => wakeFeed() });

  // rate limits outlive restarts and are shared by every process on this data dir (on PostgreSQL:
  // by every node on the database); with Redis, by every node, and these count while Redis is down
  // (never memory; on PostgreSQL still shared, so no node gets limits of its own during the outage)
  const localLimiters: LimiterBackend =
    store instanceof PostgresStore ? new PostgresLimiterBackend(store.db) : new SqliteLimiterBackend(join(dataDir, 'ratelimits.sqlite'));
  // loaded only when configured: ioredis is not free to import, and most deployments have no Redis
  const redis = config.redis ? new (await import('./redis.js')).RedisConnection(config.redis) : undefined;
  await redis?.settled(2000);
  const limiters: LimiterBackend = redis ? new RedisLimiterBackend(redis.client, localLimiters, redis, config.redis!.keyPrefix) : localLimiters;

  // libuv's pool has UV_THREADPOOL_SIZE threads (4 unless the operator set it before start)
  const hasher = new PasswordHasher(config.passwords.argon2, defaultHashConcurrency(Number(process.env.UV_THREADPOOL_SIZE) || 4));
  const closeLimiters = async () => {
    await redis?.close();
    await limiters.close();
  };
  const sessions = new SessionService(store, config.sessions, now);
  const csrf = new CsrfGuard(config.issuer, config.allowedOrigins, secrets['csrf.key']);
  let tokenServices: Awaited<ReturnType<typeof createTokenServices>>;
  try {
    tokenServices = await createTokenServices({ config, store, sessions, sealKey: secrets['refresh.key'], now });
  } catch (err) {
    // e.g. a key whose private half does not open: stop with nothing left running
    await store.close();
    await closeLimiters();
    throw err;
  }
  const { keys, tokens, refresh, clients, audit } = tokenServices;
  const accounts = new AccountService(store, hasher, config.passwords, config.rateLimit, limiters, audit, now, secrets['device.key']);
  const admin = new AdminService(store, sessions, audit);
  const context: Context = { config, store, accounts, sessions, csrf, keys, tokens, refresh, clients, audit, admin };

  // the BFF: session cookie in, a short-lived token per upstream audience out
  const gateway = new GatewayTokens(tokens, sessions, now);
  const revocations = new RevocationFeed(store, keys, { issuer: config.issuer, ...config.revocation }, now);
  // the session cache evicts what other processes end from the events the feed reads (one reader)
  sessions.followRevocations(revocations);
  await revocations.start();
  wakeFeed = () => revocations.wake();
  let http: FastifyInstance;
  try {
    http = await buildHttp(context, {
      ...opts,
      // the gateway last: it checks its prefixes against every built-in route registered before it
      plugins: [oauthRoutes, revocationRoutes(revocations), webRoutes, gatewayRoutes(gateway), ...(opts.plugins ?? [])],
    });
  } catch (err) {
    // e.g. a gateway prefix over a built-in route: nothing is left running behind the ConfigError
    revocations.stop();
    await store.close();
    await closeLimiters();
    throw err;
  }
  // a store outage is logged once when it starts and once when it ends (store/outage.ts),
  // not by every timer and request that meets it
  store.setLog?.(http.log);
  const logError = (err: unknown, what: string) => {
    if (!isStoreUnavailable(err)) http.log.error({ err }, what);
  };
  tokenServices.start(logError);
  // once per start, where operators look: plaintext secrets, modes that had to be tightened
  for (const notice of notices) http.log.warn(notice);
  revocations.onError = logError;
  redis?.setLog(http.log);

  // expired sessions are refused on read; the sweep only reclaims space (and unused device labels),
  // and deletes audit events past audit.retentionDays
  const sweep = setInterval(() => {
    sessions.sweep().catch((err: unknown) => logError(err, 'session sweep failed'));
    audit.sweep().catch((err: unknown) => logError(err, 'audit sweep failed'));
    // limiter rows carry wall-clock expiry (rate-limiter-flexible reads Date.now), not the injected clock
    limiters.sweep(Date.now()).catch((err: unknown) => logError(err, 'rate-limit sweep failed'));
  }, 60_000);
  sweep.unref();

  return {
    config,
    gateway,
    sessions,
    revocations,
    store,
    limiters,
    redis,
    context,
    notices,
    http,
    async close() {
      clearInterval(sweep);
      tokenServices.stop();
      revocations.stop();
      await http.close();
      await store.close();
      await closeLimiters();
    },
  };
}
