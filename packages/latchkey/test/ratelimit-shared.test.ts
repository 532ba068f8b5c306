/**
 * Rate limits outside process memory, against real processes: `latchkey serve`
 * children on one data dir (SQLite counters) or on separate data dirs and one
 * Redis, a restart after SIGKILL, Redis killed and started again mid-test, and
 * the expired-counter sweep.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SqliteLimiterBackend } from '../src/accounts/limiters.js';
import { Database } from '../src/store/sqlite/driver.js';
import { ConfigError, loadConfig, parseConfig } from '../src/config.js';
import { Client, FAST_ARGON2, freePort, json, startServer } from './helpers.js';
import { startPrivateRedis, testRedis } from './redis-helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;
const PASSWORD = 'correct horse battery staple';

const tmp = mkdtempSync(join(tmpdir(), 'latchkey-rl-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Node {
  url: string;
  /** SIGKILL (a crash) or SIGTERM (a shutdown); resolves when the process has exited. */
  stop(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  output(): string;
}

/** `latchkey serve` as a child process on `dataDir`, with `config` as its config file. */
async function serve(dataDir: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Node> {
  const port = await freePort();
  const file = join(tmp, `config-${randomBytes(6).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify({ issuer: `http://localhost:${port}`, passwords: { argon2: FAST_ARGON2 }, ...config }));
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--port', String(port), '--data-dir', dataDir], {
    env: { ...process.env, LATCHKEY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`latchkey serve exited: ${out}`);
    try {
      if ((await fetch(url + '/healthz')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 400) throw new Error(`latchkey serve did not become healthy: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      await exited;
    },
  };
}

const wrongLogin = (url: string, email: string, ip: string) =>
  new Client(url).post('/v1/login', { email, password: 'wrong password guess' }, { 'x-forwarded-for': ip });

/** `n` wrong-password logins for distinct unknown emails from one address, all at once, spread over `urls`. */
async function burst(urls: string[], n: number, ip: string): Promise<number[]> {
  const tag = randomBytes(4).toString('hex');
  const res = await Promise.all(Array.from({ length: n }, (_, i) => wrongLogin(urls[i % urls.length]!, `burst.${tag}.${i}@example.com`, ip)));
  for (const r of res) if (r.status === 429) assert.equal((await json(r)).code, 'rate_limited');
  return res.map((r) => r.status).sort();
}

const count = (statuses: number[], s: number) => statuses.filter((x) => x === s).length;

/** Rows of a data dir's rate-limit file (read with a connection of the test's own). */
function limiterRows(dataDir: string): number {
  const db = new Database(join(dataDir, 'ratelimits.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM rate_limits').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('rate limits without Redis: SQLite in the data dir', () => {
  it('a lockout survives a crash and restart of latchkey on the same data dir', async () => {
    const dataDir = join(tmp, 'restart');
    const config = { trustProxy: 1, rateLimit: { accountFreeFailures: 2, loginPerAccount: 100, accountBackoffSeconds: 600 } };
    const first = await serve(dataDir, config);
    assert.equal((await new Client(first.url).signup('locked@example.com')).status, 201);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await wrongLogin(first.url, 'locked@example.com', `198.18.7.${i}`)).status);
    // two free failures, the one attempt the first backoff period allows, then refused
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    await first.stop('SIGKILL');

    const second = await serve(dataDir, config);
    try {
      const c = new Client(second.url);
      const res = await c.post('/v1/login', { email: 'locked@example.com', password: PASSWORD }, { 'x-forwarded-for': '198.18.7.99' });
      assert.equal(res.status, 429);
      assert.equal((await json(res)).code, 'rate_limited');
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      // refused: no session was made
      assert.equal(c.cookies.size, 0);
    } finally {
      await second.stop();
    }
  });

  it('two processes on one data dir share each limit: of concurrent guesses over both, exactly the limit are checked', async () => {
    const dataDir = join(tmp, 'shared-dir');
    const config = { trustProxy: 1, rateLimit: { loginPerIp: 6, loginPerAccount: 100, accountFreeFailures: 3 } };
    const a = await serve(dataDir, config);
    const b = await serve(dataDir, config);
    try {
      const statuses = await burst([a.url, b.url], 24, '203.0.113.77');
      assert.equal(count(statuses, 401), 6, statuses.join(' '));
      assert.equal(count(statuses, 429), 18, statuses.join(' '));
      // and a later guess at either is refused
      assert.equal((await wrongLogin(a.url, 'later@example.com', '203.0.113.77')).status, 429);
      assert.equal((await wrongLogin(b.url, 'later@example.com', '203.0.113.77')).status, 429);

      // the per-account gate across both: of 16 concurrent guesses from 16 addresses, the free
      // failures and the one attempt the backoff allows are checked, no more
      assert.equal((await new Client(a.url).signup('gate@example.com')).status, 201);
      const gate = await Promise.all(Array.from({ length: 16 }, (_, i) => wrongLogin([a.url, b.url][i % 2]!, 'gate@example.com', `198.18.30.${i}`)));
      const gateStatuses = gate.map((r) => r.status);
      assert.equal(count(gateStatuses, 401), 3 + 1, gateStatuses.join(' '));
      assert.equal(count(gateStatuses, 429), 12, gateStatuses.join(' '));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('unknown emails\' counters are rows in ratelimits.sqlite (0600), and the sweep deletes them once expired', async () => {
    const srv = await startServer({ trustProxy: 1, rateLimit: { loginPerAccount: 100, loginPerIp: 1000 } });
    try {
      const limiters = srv.lk.limiters;
      assert.ok(limiters instanceof SqliteLimiterBackend);
      assert.equal(statSync(join(srv.config.dataDir, 'ratelimits.sqlite')).mode & 0o777, 0o600);
      const before = limiters.rows();
      for (let i = 0; i < 20; i++) assert.equal((await wrongLogin(srv.url, `nobody.${i}@example.com`, `198.18.8.${i}`)).status, 401);
      const keys = limiters.db.prepare('SELECT key FROM rate_limits').pluck().all() as string[];
      for (let i = 0; i < 20; i++) assert.ok(keys.includes(`login-account:nobody.${i}@example.com`), `nobody.${i}`);
      // per attempt: (network, email), network, account
      assert.equal(limiters.rows(), before + 60);
      // nothing has expired yet: the sweep keeps everything
      assert.equal(await limiters.sweep(Date.now()), 0);
      assert.equal(limiters.rows(), before + 60);
      // past the window the per-network rows go; past the account window, the rest
      const { windowSeconds, accountWindowSeconds } = srv.config.rateLimit;
      assert.equal(await limiters.sweep(Date.now() + windowSeconds * 1000 + 1000), 40);
      assert.equal(await limiters.sweep(Date.now() + accountWindowSeconds * 1000 + 1000), 20);
      assert.equal(limiters.rows(), 0);
    } finally {
      await srv.close();
    }
  });
});

describe('rate limits with Redis', () => {
  it('config: redis.url from LATCHKEY_REDIS_URL; only redis:// and rediss:// URLs; off by default', () => {
    assert.equal(parseConfig({}).redis, undefined);
    const cfg = loadConfig({}, { LATCHKEY_REDIS_URL: 'redis://:secret@10.0.0.5:6380/2' });
    assert.deepEqual(cfg.redis, { url: 'redis://:secret@10.0.0.5:6380/2', keyPrefix: 'latchkey:', commandTimeoutMs: 500 });
    assert.throws(() => parseConfig({ redis: { url: 'http://10.0.0.5' } }), /^ConfigError: invalid config: redis\.url: /);
    assert.throws(() => parseConfig({ redis: { url: 'redis://x', keyPrefix: 'a b' } }), /^ConfigError: invalid config: redis\.keyPrefix: /);
    assert.throws(() => parseConfig({ redis: { url: 'redis://x', extra: 1 } }), ConfigError);
  });

  it('two nodes with separate data dirs and one Redis share each limit (and write nothing locally)', async () => {
    const redis = await testRedis();
    const env = { LATCHKEY_REDIS_URL: redis.url };
    const config = { trustProxy: 1, rateLimit: { loginPerIp: 5, loginPerAccount: 100 }, redis: { keyPrefix: `t${randomBytes(4).toString('hex')}:`, commandTimeoutMs: 10000 } };
    const dirA = join(tmp, 'node-a');
    const dirB = join(tmp, 'node-b');
    const a = await serve(dirA, config, env);
    const b = await serve(dirB, config, env);
    try {
      const statuses = await burst([a.url, b.url], 20, '203.0.113.88');
      assert.equal(count(statuses, 401), 5, statuses.join(' '));
      assert.equal(count(statuses, 429), 15, statuses.join(' '));
      assert.equal(limiterRows(dirA), 0);
      assert.equal(limiterRows(dirB), 0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await redis.stop();
    }
  });

  it('Redis killed mid-test: limits still enforced on the node\'s own limiter, no 500, one log line; restarted: shared again', async () => {
    const redis = await startPrivateRedis();
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const srv = await startServer({ trustProxy: 1, rateLimit: { loginPerIp: 3, loginPerAccount: 100 }, redis: { url: redis.url, keyPrefix: prefix, commandTimeoutMs: 10000 } });
    const logged: string[] = [];
    const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 200 });
    probe.on('error', () => undefined);
    try {
      const conn = srv.lk.redis!;
      conn.setLog({ error: (_o, msg) => logged.push(`error ${msg}`), warn: (msg) => logged.push(`warn ${msg}`) });
      const guesses = async (ip: string, n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push((await wrongLogin(srv.url, `outage.${ip}.${i}@example.com`, ip)).status);
        return out;
      };
      // Redis up: counted there
      assert.deepEqual(await guesses('198.18.20.1', 4), [401, 401, 401, 429]);
      await probe.connect();
      assert.equal(await probe.get(`${prefix}rl:login-ip:198.18.20.1`), '4');

      await redis.kill();
      // Redis down: the node's SQLite limiter counts and refuses; nothing 500s
      assert.deepEqual(await guesses('198.18.20.2', 5), [401, 401, 401, 429, 429]);
      const local = srv.lk.limiters;
      assert.equal(local.kind, 'redis');
      assert.ok(limiterRows(srv.config.dataDir) > 0);
      assert.equal(logged.filter((l) => l.startsWith('error redis unavailable')).length, 1, logged.join('\n'));
      assert.ok(conn.isDown);

      await redis.restart();
      // the connection comes back by itself
      for (let i = 0; conn.isDown; i++) {
        assert.ok(i < 200, 'redis connection did not recover');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(await guesses('198.18.20.3', 4), [401, 401, 401, 429]);
      assert.equal(await probe.get(`${prefix}rl:login-ip:198.18.20.3`), '4');
      // one line when it went, one when it came back
      assert.equal(logged.length, 2, logged.join('\n'));
      assert.match(logged[0]!, /^error redis unavailable \(.+\): rate limits fall back/);
      assert.match(logged[1]!, /^warn redis recovered/);
    } finally {
      probe.disconnect();
      await srv.close();
      await redis.stop();
    }
  });

  it('Redis that stops answering (connection held open): commands time out, the node\'s own limiter answers, and it recovers', async () => {
    const redis = await startPrivateRedis();
    const srv = await startServer({ trustProxy: 1, rateLimit: { loginPerIp: 2, loginPerAccount: 100 }, redis: { url: redis.url, commandTimeoutMs: 1000 } });
    const logged: string[] = [];
    try {
      const conn = srv.lk.redis!;
      conn.setLog({ error: (_o, msg) => logged.push(`error ${msg}`), warn: (msg) => logged.push(`warn ${msg}`) });
      assert.equal((await wrongLogin(srv.url, 'hung.0@example.com', '198.18.40.1')).status, 401);
      // on a starved machine a command can time out before the pause: start from a connection that answers
      for (let i = 0; conn.isDown; i++) {
        assert.ok(i < 100, 'redis did not answer');
        await wrongLogin(srv.url, `hung.before.${i}@example.com`, `198.18.42.${i}`);
      }
      logged.length = 0;
      redis.pause();
      const during: number[] = [];
      for (let i = 1; i <= 3; i++) during.push((await wrongLogin(srv.url, `hung.${i}@example.com`, '198.18.40.2')).status);
      assert.deepEqual(during, [401, 401, 429]);
      assert.equal(logged.length, 1, logged.join('\n'));
      assert.match(logged[0]!, /^error redis unavailable \(.+\): rate limits fall back/);
      redis.resume();
      // the first answered command ends the outage
      for (let i = 0; conn.isDown; i++) {
        assert.ok(i < 100, 'redis did not answer again');
        await wrongLogin(srv.url, `hung.after.${i}@example.com`, `198.18.41.${i}`);
      }
      assert.match(logged[1]!, /^warn redis recovered/);
    } finally {
      await srv.close();
      await redis.stop();
    }
  });
});
