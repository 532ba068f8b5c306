/**
 * What 200,000 live sessions cost each stack's store, created directly through
 * the store's own API (not 200,000 HTTP sign-ins): connect-redis's `set` with
 * the session express-session and passport store; latchkey's SessionService
 * (cookie sessions) and RefreshService (token clients' sessions with their
 * refresh families), on SQLite and PostgreSQL. 20,000 users hold them (10 each).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { createClient } from 'redis';
import { createLatchkey, type Latchkey } from '../../packages/latchkey/src/app.js';
import { parseConfig } from '../../packages/latchkey/src/config.js';
import type { User } from '../../packages/latchkey/src/store/store.js';
import type { SqliteStore } from '../../packages/latchkey/src/store/sqlite/index.js';
import { startRedis } from '../../scripts/redis-server.mjs';
import { freshDatabase } from './contenders.js';
import { IDLE_SECONDS } from './stacks/common.js';

const DEVICES = ['Chrome on Windows', 'Safari on iPhone', 'Firefox on Linux', 'Chrome on Android', 'Edge on Windows', 'Safari on macOS'];
const ipOf = (i: number) => `${10 + (i % 200)}.${i % 256}.${(i >> 8) % 256}.${(i * 7) % 256}`;

export interface Measured {
  sessions: number;
  bytes: number;
  /** exactly what was measured, for the report */
  what: string;
  seconds: number;
}

/** Run `fn(i)` for i < n, `parallel` at a time. */
async function each(n: number, parallel: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** Calls in flight on PostgreSQL, and the pool's size. */
const PG_PARALLEL = 32;

/** express-session's Cookie class; its typings declare no constructor, the class takes the cookie options. */
const Cookie = session.Cookie as unknown as new (options: session.CookieOptions) => session.Cookie;

const usersFor = (n: number) => Math.max(1, Math.round(n / 10));

/** connect-redis: Redis INFO used_memory before and after `n` sessions, in a Redis of its own. */
export async function redisSessions(dir: string, n: number): Promise<Measured> {
  const redis = await startRedis(join(dir, 'memory-redis'));
  const client = createClient({ url: redis.url });
  try {
    await client.connect();
    const store = new RedisStore({ client });
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    const users = Array.from({ length: usersFor(n) }, () => `u_${randomBytes(16).toString('base64url')}`);
    const before = await usedMemory();
    const t0 = performance.now();
    await each(n, 2000, (i) => {
      // what express-session stores after passport's login: its Cookie (the stack's options) and passport.user;
      // ids as express-session makes them (uid-safe, 24 bytes: 32 characters)
      const cookie = new Cookie({ httpOnly: true, secure: false, sameSite: 'lax', maxAge: IDLE_SECONDS * 1000 });
      const data = { cookie, passport: { user: users[i % users.length]! } } as unknown as session.SessionData;
      return store.set(randomBytes(24).toString('base64url'), data);
    });
    const seconds = (performance.now() - t0) / 1000;
    const after = await usedMemory();
    return { sessions: n, bytes: after - before, seconds, what: 'Redis `INFO memory` used_memory after minus before (keys, values, TTLs, the keyspace\'s own structures)' };
  } finally {
    await client.quit().catch(() => undefined);
    await redis.stop();
  }
}

async function latchkeyFor(dataDir: string, store: unknown): Promise<Latchkey> {
  mkdirSync(dataDir, { mode: 0o700 });
  // PostgreSQL requires a key-encryption key (the signing keys and secrets are sealed in the database)
  const keys = store ? { keys: { encryptionKey: randomBytes(32).toString('base64') } } : {};
  return createLatchkey(parseConfig({ dataDir, logLevel: 'silent', ...(store ? { store } : {}), ...keys }), { logger: false });
}

async function createUsers(lk: Latchkey, n: number, parallel: number): Promise<User[]> {
  const now = Math.floor(Date.now() / 1000);
  const users: User[] = new Array(n);
  await each(n, parallel, async (i) => {
    users[i] = await lk.store.createUser({ id: `u_${randomBytes(16).toString('base64url')}`, email: `mem${i}@example.com`, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$' + randomBytes(16).toString('base64') + '$' + randomBytes(32).toString('base64'), createdAt: now });
  });
  return users;
}

const cookieSessions = (lk: Latchkey, users: User[]) => (i: number) =>
  lk.sessions.create(users[i % users.length]!.id, { userAgent: undefined, ip: ipOf(i) }, DEVICES[i % DEVICES.length]!);
const tokenSessions = (lk: Latchkey, users: User[]) => (i: number) =>
  lk.context.refresh.issue(users[i % users.length]!, { clientId: lk.config.tokens.clientId, ip: ipOf(i), device: DEVICES[i % DEVICES.length]! });

/** latchkey on SQLite: the database file's growth (after a WAL checkpoint) for `n` cookie sessions, then `n` token logins. */
export async function latchkeySqlite(dir: string, n: number): Promise<{ cookie: Measured; tokens: Measured }> {
  const dataDir = join(dir, 'memory-sqlite');
  const lk = await latchkeyFor(dataDir, undefined);
  try {
    const db = (lk.store as SqliteStore).db;
    const users = await createUsers(lk, usersFor(n), 1);
    const size = () => {
      db.pragma('wal_checkpoint(TRUNCATE)');
      return statSync(join(dataDir, 'latchkey.sqlite')).size;
    };
    /**
     * The service's calls, 10,000 to a transaction: each call's store write runs before its first
     * await, so they all land in the open transaction. Batching changes what a commit costs, not
     * what a row takes.
     */
    const batched = async (fn: (i: number) => Promise<unknown>) => {
      for (let from = 0; from < n; from += 10_000) {
        const pending: Promise<unknown>[] = [];
        db.transaction(() => {
          for (let i = from; i < Math.min(n, from + 10_000); i++) pending.push(fn(i));
        })();
        await Promise.all(pending);
      }
    };
    const s0 = size();
    let t0 = performance.now();
    await batched(cookieSessions(lk, users));
    const cookieSeconds = (performance.now() - t0) / 1000;
    const s1 = size();
    t0 = performance.now();
    await batched(tokenSessions(lk, users));
    const tokenSeconds = (performance.now() - t0) / 1000;
    const s2 = size();
    const what = 'growth of the SQLite database file (tables and indexes, after a WAL checkpoint)';
    return {
      cookie: { sessions: n, bytes: s1 - s0, seconds: cookieSeconds, what: `${what}: session rows` },
      tokens: { sessions: n, bytes: s2 - s1, seconds: tokenSeconds, what: `${what}: session rows, refresh families and their current refresh tokens` },
    };
  } finally {
    await lk.close();
  }
}

/**
 * latchkey on PostgreSQL: pg_total_relation_size('sessions') (heap, indexes, TOAST) before and after
 * `n` cookie sessions. 200,000 single-row transactions through the store take minutes on a small
 * machine, so the `n` rows are written by one INSERT in the shape SessionService writes (a 32-byte
 * hash key, a user's id, its times, a device label, an address, no idle override), in random key
 * order as the service's are, with times spread as a day of sign-ins spreads them (equal times
 * would let PostgreSQL's B-tree deduplication shrink the indexes below what real sessions take);
 * then `check` more sessions go through SessionService itself, one after another, and their bytes
 * per session are reported beside, so the shortcut is checked in every run.
 */
export async function latchkeyPostgres(dir: string, clusterUrl: string, n: number, check: number): Promise<Measured & { checkSessions: number; checkBytes: number }> {
  const url = await freshDatabase(clusterUrl, 'seeds_memory');
  const lk = await latchkeyFor(join(dir, 'memory-postgres'), { kind: 'postgres', url, poolSize: PG_PARALLEL });
  try {
    const db = (lk.store as unknown as { db: { query(q: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> } }).db;
    const now = Math.floor(Date.now() / 1000);
    const userCount = usersFor(n + check);
    await db.query(
      `INSERT INTO users (id, email, password_hash, created_at)
       SELECT 'u_' || md5(random()::text || g), 'mem' || g || '@example.com', '$argon2id$v=19$m=19456,t=2,p=1$' || md5(g::text), $1::bigint
       FROM generate_series(0, $2::int - 1) g`,
      [now, userCount],
    );
    const ids = (await db.query('SELECT id FROM users ORDER BY id')).rows.map((r) => r.id as string);
    const size = async () => Number((await db.query(`SELECT pg_total_relation_size('sessions') AS bytes`)).rows[0]!.bytes);
    const s0 = await size();
    const t0 = performance.now();
    await db.query(
      `INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, device, ip)
       SELECT decode(md5(random()::text || g) || md5(g || random()::text), 'hex'), ($1::text[])[1 + g % cardinality($1::text[])],
              $2::bigint - g % 86400, $2::bigint - g % 3600, $2::bigint - g % 86400 + $3::bigint, ($4::text[])[1 + g % cardinality($4::text[])],
              (10 + g % 200) || '.' || (g % 256) || '.' || ((g >> 8) % 256) || '.' || ((g * 7) % 256)
       FROM generate_series(0, $5::int - 1) g`,
      [ids, now, lk.config.sessions.absoluteLifetimeSeconds, DEVICES, n],
    );
    const seconds = (performance.now() - t0) / 1000;
    const s1 = await size();
    const users = ids.map((id) => ({ id }) as User);
    await each(check, 1, (i) => cookieSessions(lk, users)(n + i));
    const s2 = await size();
    return {
      sessions: n,
      bytes: s1 - s0,
      seconds,
      checkSessions: check,
      checkBytes: s2 - s1,
      what: "pg_total_relation_size('sessions') after minus before: the table, its three indexes and TOAST",
    };
  } finally {
    await lk.close();
  }
}
