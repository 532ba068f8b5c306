/**
 * Redis killed and started again under three `latchkey serve` processes on one PostgreSQL
 * database. Redis holds only rate-limit counters: revocation never depends on it, so what is
 * revoked while it is down is refused on every node; each limit falls back to PostgreSQL's
 * table (shared by the nodes, so it still holds across them); every node says so in its log,
 * once, and again once when Redis is back, when counting moves back to Redis by itself.
 * The Redis server is a private one of this file's (test/redis-helpers.ts), never the runner's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Client, json } from './helpers.js';
import { createDatabase } from './postgres.js';
import { startPrivateRedis, type TestRedis } from './redis-helpers.js';
import { newEmail, PASSWORD } from './token-helpers.js';
import { admin, explained, LEVEL, on, sessionStatus, startCluster, until, type Cluster, type Node } from './cluster/nodes.js';

const DEADLINE_MS = 10_000;
const LOGIN_PER_IP = 4;
const BURST = 12;
const DOWN = /^redis unavailable \(.+\): rate limits fall back/;
const BACK = /^redis recovered/;

let redis: TestRedis;
let cluster: Cluster;
let db: pg.Client;
let probe: Redis;

/** `BURST` wrong-password logins for distinct unknown emails from one client address, all at once, spread over the nodes. */
async function burst(ip: string): Promise<number[]> {
  const res = await Promise.all(
    Array.from({ length: BURST }, (_, i) =>
      new Client(cluster.nodes[i % cluster.nodes.length]!.url).post(
        '/v1/login',
        { email: `burst.${ip}.${i}@example.com`, password: 'wrong password guess' },
        { 'x-forwarded-for': ip },
      ),
    ),
  );
  for (const r of res) if (r.status === 429) assert.equal((await json(r)).code, 'rate_limited');
  return res.map((r) => r.status).sort();
}

const expected = [...Array<number>(LOGIN_PER_IP).fill(401), ...Array<number>(BURST - LOGIN_PER_IP).fill(429)];

/** The per-address login counter in PostgreSQL's rate_limits table (the fallback), or undefined. */
async function fallbackCount(ip: string): Promise<number | undefined> {
  const r = await db.query<{ points: number }>('SELECT points FROM rate_limits WHERE key = $1', [`login-ip:${ip}`]);
  return r.rows[0]?.points;
}

const redisCount = async (ip: string) => probe.get(`${(cluster.config.redis as { keyPrefix: string }).keyPrefix}rl:login-ip:${ip}`);

const lines = (n: Node, re: RegExp) => n.logs().filter((l) => re.test(l.msg));

/** Until every node has logged a line matching `re`. */
async function allLogged(re: RegExp): Promise<void> {
  for (const n of cluster.nodes) await until(async () => lines(n, re).length > 0, true, false, DEADLINE_MS);
}

// in a suite: its hooks run before the root's, so the nodes are gone before postgres.ts drops the database
describe('Redis killed and started again under three nodes', () => {
  before(async () => {
    redis = await startPrivateRedis();
    const databaseUrl = await createDatabase();
    cluster = await startCluster({
      databaseUrl,
      redisUrl: redis.url,
      config: {
        trustProxy: 1,
        rateLimit: { loginPerIp: LOGIN_PER_IP, loginPerAccount: 100 },
      },
    });
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 200 });
    probe.on('error', () => undefined);
  });
  after(async () => {
    probe?.disconnect();
    await db?.end();
    await cluster?.close();
    await redis?.stop();
  });

  it('every node logs the outage once and the recovery once; sessions revoked before and during it are refused on every node; the per-address login limit holds across the nodes throughout (PostgreSQL while Redis is down, Redis again after); no 500', async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
      const nodes = cluster.nodes;
      const email = newEmail('redis');
      const main = new Client(n1.url);
      const signup = await main.signup(email, PASSWORD);
      assert.equal(signup.status, 201);
      const { user } = await json<{ user: { id: string } }>(signup);
      /** A browser signed in through `node`, and its session's handle. */
      const device = async (node: Node, n: number) => {
        const c = new Client(node.url, `Mozilla/5.0 (X11; Linux x86_64; device ${n}) Gecko/20100101 Firefox/128.0`);
        assert.equal((await c.login(email, PASSWORD)).status, 200);
        const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await c.get('/v1/sessions'));
        return { c, handle: list.sessions.find((s) => s.current)!.handle };
      };
      const early = await device(n2, 0);
      const [b, c, d] = [await device(n1, 1), await device(n2, 2), await device(n3, 3)];
      for (const n of nodes) for (const x of [main, early.c, b.c, c.c, d.c]) assert.equal(await sessionStatus(on(n, x)), 200);
      assert.equal((await on(n2, main).delete(`/v1/sessions/${early.handle}`)).status, 204);
      for (const n of nodes) await until(() => sessionStatus(on(n, early.c)), 401, 200, DEADLINE_MS);

      // Redis up: the nodes share the limit through it
      await probe.connect();
      assert.deepEqual(await burst('198.18.60.1'), expected);
      assert.equal(await redisCount('198.18.60.1'), String(BURST));
      assert.equal(await fallbackCount('198.18.60.1'), undefined);

      await redis.kill();
      await allLogged(DOWN);
      for (const n of nodes) assert.equal(lines(n, DOWN)[0]!.level, LEVEL.error);
      // revoked while it is down, through each node in turn
      assert.equal((await on(n1, main).delete(`/v1/sessions/${b.handle}`)).status, 204);
      assert.equal((await admin(n2, 'DELETE', `/v1/admin/sessions/${c.handle}`)).status, 204);
      assert.equal((await on(n3, d.c).post('/v1/logout', undefined, { 'content-type': 'application/json' })).status, 204);
      for (const n of nodes) {
        for (const x of [b.c, c.c, d.c]) await until(() => sessionStatus(on(n, x)), 401, 200, DEADLINE_MS);
        assert.equal(await sessionStatus(on(n, early.c)), 401);
        assert.equal(await sessionStatus(on(n, main)), 200);
      }
      // the limit still holds across the three nodes: counted in PostgreSQL, which they share
      assert.deepEqual(await burst('198.18.60.2'), expected);
      assert.equal(await fallbackCount('198.18.60.2'), BURST);

      await redis.restart();
      await allLogged(BACK);
      assert.deepEqual(await burst('198.18.60.3'), expected);
      assert.equal(await redisCount('198.18.60.3'), String(BURST));
      assert.equal(await fallbackCount('198.18.60.3'), undefined);
      for (const n of nodes) {
        for (const x of [early.c, b.c, c.c, d.c]) assert.equal(await sessionStatus(on(n, x)), 401);
        assert.equal(await sessionStatus(on(n, main)), 200);
      }
      // the admin view agrees: only the main session is left
      const sessions = await json<{ sessions: unknown[] }>(await admin(n3, 'GET', `/v1/admin/users/${user.id}/sessions`));
      assert.equal(sessions.sessions.length, 1);

      for (const n of nodes) {
        const what = `node ${n.index + 1}`;
        assert.equal(lines(n, DOWN).length, 1, `${what}: the outage logged once`);
        assert.equal(lines(n, BACK).length, 1, `${what}: the recovery logged once`);
        assert.deepEqual(
          n.logs().filter((l) => l.level >= LEVEL.error && !DOWN.test(l.msg)).map((l) => l.msg),
          [],
          `${what}: no other error (no 500)`,
        );
      }
    });
  });
});
