/**
 * Rate limits on PostgreSQL: with the PostgreSQL store, counters live in its database (table
 * rate_limits), so latchkey instances with separate data directories share each limit without
 * Redis, and a lockout outlives the instance. Real servers on loopback, a real database.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { PostgresLimiterBackend } from '../src/accounts/limiters.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { Client, freePort, json, startServer, type TestServer } from './helpers.js';
import { createDatabase } from './postgres.js';

const PASSWORD = 'correct horse battery staple';

const wrongLogin = (url: string, email: string, ip: string) =>
  new Client(url).post('/v1/login', { email, password: 'wrong password guess' }, { 'x-forwarded-for': ip });

const count = (statuses: number[], s: number) => statuses.filter((x) => x === s).length;

async function sql<R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}


/** A latchkey instance on database `url`, with a fresh, empty data directory of its own (as every node has). */
function node(url: string, rateLimit: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer({ store: { kind: 'postgres', url }, trustProxy: 1, rateLimit, ...extra });
}

describe('rate limits with the PostgreSQL store', () => {
  it('two instances with separate data dirs on one database share each limit: of concurrent guesses over both, exactly the limit are checked', async () => {
    const url = await createDatabase();
    const limits = { loginPerIp: 6, loginPerAccount: 100, accountFreeFailures: 3 };
    const a = await node(url, limits);
    const b = await node(url, limits);
    try {
      assert.notEqual(a.config.dataDir, b.config.dataDir);
      const tag = randomBytes(4).toString('hex');
      const res = await Promise.all(
        Array.from({ length: 24 }, (_, i) => wrongLogin([a.url, b.url][i % 2]!, `burst.${tag}.${i}@example.com`, '203.0.113.77')),
      );
      for (const r of res) if (r.status === 429) assert.equal((await json(r)).code, 'rate_limited');
      const statuses = res.map((r) => r.status);
      assert.equal(count(statuses, 401), 6, statuses.join(' '));
      assert.equal(count(statuses, 429), 18, statuses.join(' '));

      // the per-account gate across both: the free failures and the one attempt the backoff allows
      assert.equal((await new Client(a.url).signup('gate@example.com')).status, 201);
      const gate = await Promise.all(Array.from({ length: 16 }, (_, i) => wrongLogin([a.url, b.url][i % 2]!, 'gate@example.com', `198.18.30.${i}`)));
      const gateStatuses = gate.map((r) => r.status);
      assert.equal(count(gateStatuses, 401), 3 + 1, gateStatuses.join(' '));
      assert.equal(count(gateStatuses, 429), 12, gateStatuses.join(' '));

      // counted in the database, not in a file of either data dir
      for (const s of [a, b]) assert.equal(existsSync(join(s.config.dataDir, 'ratelimits.sqlite')), false);
      assert.ok((await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM rate_limits'))[0]!.n > 0);
      assert.equal(a.lk.limiters.kind, 'postgres');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('Redis configured but down: both instances fall back to the database and still share each limit', async () => {
    const url = await createDatabase();
    // nothing listens there: every Redis operation fails at once (no offline queue)
    const redis = { redis: { url: `redis://127.0.0.1:${await freePort()}` } };
    const limits = { loginPerIp: 5, loginPerAccount: 100 };
    const a = await node(url, limits, redis);
    const b = await node(url, limits, redis);
    try {
      assert.equal(a.lk.limiters.kind, 'redis');
      const tag = randomBytes(4).toString('hex');
      const res = await Promise.all(
        Array.from({ length: 20 }, (_, i) => wrongLogin([a.url, b.url][i % 2]!, `down.${tag}.${i}@example.com`, '203.0.113.90')),
      );
      const statuses = res.map((r) => r.status);
      assert.equal(count(statuses, 401), 5, statuses.join(' '));
      assert.equal(count(statuses, 429), 15, statuses.join(' '));
      for (const s of [a, b]) assert.equal(existsSync(join(s.config.dataDir, 'ratelimits.sqlite')), false);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a lockout survives the instance: a new one on another data dir refuses the right password', async () => {
    const url = await createDatabase();
    const limits = { accountFreeFailures: 2, loginPerAccount: 100, accountBackoffSeconds: 600 };
    const first = await node(url, limits);
    try {
      assert.equal((await new Client(first.url).signup('locked@example.com')).status, 201);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await wrongLogin(first.url, 'locked@example.com', `198.18.7.${i}`)).status);
      assert.deepEqual(statuses, [401, 401, 401, 429]);
    } finally {
      await first.close();
    }
    const second = await node(url, limits);
    try {
      assert.equal(existsSync(join(second.config.dataDir, 'ratelimits.sqlite')), false);
      const c = new Client(second.url);
      const res = await c.post('/v1/login', { email: 'locked@example.com', password: PASSWORD }, { 'x-forwarded-for': '198.18.7.99' });
      assert.equal(res.status, 429);
      assert.equal((await json(res)).code, 'rate_limited');
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.equal(c.cookies.size, 0);
    } finally {
      await second.close();
    }
  });

  it('a 254-character email is counted like any other (its key is longer than 255): 401, not a 500', async () => {
    const url = await createDatabase();
    const srv = await node(url, {});
    try {
      const email = `${'l'.repeat(64)}@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(57)}.com`;
      assert.equal(email.length, 254);
      const res = await wrongLogin(srv.url, email, '198.18.40.1');
      assert.equal(res.status, 401);
      assert.equal((await json(res)).code, 'invalid_credentials');
      const keys = await sql<{ key: string }>(url, 'SELECT key FROM rate_limits WHERE key LIKE $1', [`%${email}`]);
      assert.ok(keys.length >= 1 && keys.every((k) => k.key.length > 255), JSON.stringify(keys.map((k) => k.key.length)));
      // and the same address as an account: signs up and logs in
      const c = new Client(srv.url);
      assert.equal((await c.signup(email)).status, 201);
      const ok = await new Client(srv.url).post('/v1/login', { email, password: PASSWORD }, { 'x-forwarded-for': '198.18.40.2' });
      assert.equal(ok.status, 200);
    } finally {
      await srv.close();
    }
  });

  it('the sweep deletes counters once expired, and only those', async () => {
    const url = await createDatabase();
    const store = new PostgresStore({ url, poolSize: 2 });
    try {
      await store.migrate();
      const backend = new PostgresLimiterBackend(store.db);
      const short = backend.limiter({ points: 5, durationSeconds: 60, keyPrefix: 'short' });
      const long = backend.limiter({ points: 5, durationSeconds: 600, keyPrefix: 'long' });
      const start = Date.now();
      for (let i = 0; i < 10; i++) await short.consume(`k${i}`);
      for (let i = 0; i < 4; i++) await long.consume(`k${i}`);
      assert.equal(await backend.rows(), 14);
      assert.equal(await backend.sweep(start), 0);
      assert.equal(await backend.rows(), 14);
      // past the short window (and the time the consumes took): the short ones only
      assert.equal(await backend.sweep(Date.now() + 61_000), 10);
      assert.equal(await backend.rows(), 4);
      assert.equal((await long.get('k0'))?.consumedPoints, 1);
      assert.equal(await backend.sweep(Date.now() + 601_000), 4);
      assert.equal(await backend.rows(), 0);
    } finally {
      await store.close();
    }
  });

  it('consume with a custom duration, reward and delete on PostgreSQL', async () => {
    const url = await createDatabase();
    const store = new PostgresStore({ url, poolSize: 2 });
    try {
      await store.migrate();
      const backend = new PostgresLimiterBackend(store.db);
      const gate = backend.limiter({ points: 1, durationSeconds: 10, keyPrefix: 'gate' });
      const first = await gate.consume('acct', 1, { customDuration: 3600 });
      assert.ok(first.msBeforeNext > 3_000_000, String(first.msBeforeNext));
      await assert.rejects(gate.consume('acct', 1, { customDuration: 3600 }), (r: { msBeforeNext: number }) => r.msBeforeNext > 3_000_000);
      // 8 concurrent takes of a fresh key's single point: exactly one succeeds (one atomic upsert each)
      const takes = await Promise.allSettled(Array.from({ length: 8 }, () => gate.consume('race', 1)));
      assert.equal(takes.filter((t) => t.status === 'fulfilled').length, 1);
      const counter = backend.limiter({ points: 100, durationSeconds: 60, keyPrefix: 'count' });
      await Promise.all(Array.from({ length: 10 }, () => counter.consume('n')));
      await counter.reward('n', 3);
      assert.equal((await counter.get('n'))?.consumedPoints, 7);
      assert.equal(await counter.delete('n'), true);
      assert.equal(await counter.get('n'), null);
    } finally {
      await store.close();
    }
  });
});
