/**
 * The session cache across processes: two latchkey instances on one store (PostgreSQL, or one
 * SQLite file), each with its own connections, cache and revocation feed, as two nodes would
 * be. A session ended through one is refused by the other once its feed has read the event
 * (the delay is reported, not asserted: it depends on the machine); writes that end nothing
 * (sign-ups) leave the other's cache warm; `sessions.strict` refuses with no delay at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it, type TestContext } from 'node:test';
import pg from 'pg';
import { createLatchkey, type Latchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { ADMIN_KEY, Client, FAST_ARGON2, freePort, json, TEST_KEK } from './helpers.js';
import { createDatabase } from './postgres.js';
import { PASSWORD, newEmail } from './token-helpers.js';

const COOKIE = '__Host-latchkey';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` };
/** Generous: a loaded 2-core machine. The delay is measured and reported (t.diagnostic), not asserted below this. */
const DEADLINE_MS = 10_000;

interface Node {
  lk: Latchkey;
  url: string;
}

/**
 * One node on `dataDir`: on PostgreSQL each node has an empty one of its own (everything it needs is in the
 * database; TEST_KEK seals it), on SQLite they share the directory that holds the database file.
 */
async function startNode(dataDir: string, extra: Record<string, unknown>): Promise<Node> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = parseConfig({
      port,
      dataDir,
      issuer: `http://localhost:${port}`,
      logLevel: 'silent',
      adminKey: ADMIN_KEY,
      passwords: { argon2: FAST_ARGON2 },
      rateLimit: { signupPerIp: 100_000 },
      keys: { encryptionKey: TEST_KEK },
      ...extra,
    });
    const lk = await createLatchkey(config, { logger: false });
    try {
      await lk.http.listen({ port, host: '127.0.0.1' });
      return { lk, url: `http://127.0.0.1:${port}` };
    } catch (err) {
      await lk.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 5) throw err;
    }
  }
}

/** The same browser (its session cookie) talking to another node. */
function on(node: Node, browser: Client): Client {
  const c = new Client(node.url, browser.userAgent);
  c.cookies.set(COOKIE, browser.cookies.get(COOKIE)!);
  return c;
}

/** Milliseconds until `c` is refused on /v1/session (polled), failing after DEADLINE_MS. */
async function untilRefused(c: Client): Promise<number> {
  const start = performance.now();
  for (;;) {
    const res = await c.get('/v1/session');
    await res.arrayBuffer();
    if (res.status === 401) return performance.now() - start;
    assert.equal(res.status, 200);
    assert.ok(performance.now() - start < DEADLINE_MS, `still accepted after ${DEADLINE_MS} ms`);
    await sleep(2);
  }
}

async function accepted(c: Client): Promise<boolean> {
  const res = await c.get('/v1/session');
  await res.arrayBuffer();
  return res.status === 200;
}

for (const kind of ['postgres', 'sqlite'] as const) {
  describe(`two nodes on one ${kind === 'postgres' ? 'PostgreSQL database' : 'SQLite file'}`, () => {
    const dirs: string[] = [];
    let store: Record<string, unknown> | undefined;
    let a: Node;
    let b: Node;

    before(async () => {
      dirs.push(mkdtempSync(join(tmpdir(), 'latchkey-cluster-')));
      if (kind === 'postgres') dirs.push(mkdtempSync(join(tmpdir(), 'latchkey-cluster-')));
      store = kind === 'postgres' ? { kind: 'postgres', url: await createDatabase() } : undefined;
      a = await startNode(dirs[0]!, store ? { store } : {});
      b = await startNode(dirs.at(-1)!, store ? { store } : {});
    });
    after(async () => {
      await b?.lk.close();
      await a?.lk.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    /** A user signed up on A, plus `extra` more browsers signed in on A. */
    async function user(extra: number) {
      const email = newEmail('c');
      const main = new Client(a.url);
      const res = await main.signup(email, PASSWORD);
      assert.equal(res.status, 201);
      const { user: u } = await json<{ user: { id: string } }>(res);
      const others: Client[] = [];
      for (let i = 0; i < extra; i++) {
        const c = new Client(a.url, `Mozilla/5.0 (device ${i}) Gecko/20100101 Firefox/128.0`);
        assert.equal((await c.login(email, PASSWORD)).status, 200);
        others.push(c);
      }
      return { id: u.id, main, others };
    }

    /** Requests on B until a hit: B's cache holds this session. */
    async function warm(c: Client): Promise<void> {
      assert.ok(await accepted(c));
      const hits = b.lk.sessions.stats().hits;
      assert.ok(await accepted(c));
      assert.equal(b.lk.sessions.stats().hits, hits + 1, 'the second request on B is a cache hit');
    }

    it('a session revoked on A is refused by A, and by B within 10 s from the event (the delay is reported)', async (t: TestContext) => {
      const u = await user(1);
      const laptop = u.others[0]!;
      const onB = on(b, laptop);
      await warm(onB);
      const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await u.main.get('/v1/sessions'));
      const handle = list.sessions.find((s) => !s.current)!.handle;
      const evicted = b.lk.sessions.stats().evictedByEvents;
      assert.equal((await u.main.delete(`/v1/sessions/${handle}`)).status, 204);
      const ms = await untilRefused(onB);
      assert.equal(await accepted(laptop), false, 'A refuses it too');
      assert.ok(await accepted(on(b, u.main)), 'B still accepts the session that revoked it');
      assert.ok(b.lk.sessions.stats().evictedByEvents > evicted, 'B evicted it from the event');
      t.diagnostic(`revoked on A, refused by B after ${ms.toFixed(1)} ms`);
    });

    it('sign out everywhere on A: B refuses every other session, keeps the one that asked', async (t: TestContext) => {
      const u = await user(2);
      const mainOnB = on(b, u.main);
      const othersOnB = u.others.map((c) => on(b, c));
      for (const c of [mainOnB, ...othersOnB]) await warm(c);
      const res = await u.main.post('/v1/sessions/revoke-others');
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { revoked: 2 });
      const ms = await Promise.all(othersOnB.map(untilRefused));
      assert.ok(await accepted(mainOnB));
      t.diagnostic(`signed out everywhere on A, refused by B after ${ms.map((m) => m.toFixed(1)).join(', ')} ms`);
    });

    it('a user disabled on A (admin API) is refused by B within 10 s (the delay is reported)', async (t: TestContext) => {
      const u = await user(0);
      const onB = on(b, u.main);
      await warm(onB);
      assert.equal((await u.main.post(`/v1/admin/users/${u.id}/disable`, undefined, ADMIN)).status, 200);
      const ms = await untilRefused(onB);
      assert.equal(await accepted(u.main), false);
      t.diagnostic(`disabled on A, refused by B after ${ms.toFixed(1)} ms`);
    });

    it('roles changed on A: B serves the new roles within 10 s, not its cached ones', async (t: TestContext) => {
      const u = await user(0);
      const onB = on(b, u.main);
      await warm(onB);
      const res = await u.main.request('PUT', `/v1/admin/users/${u.id}/roles`, { roles: ['ops'] }, ADMIN);
      assert.equal(res.status, 200);
      const start = performance.now();
      for (;;) {
        const me = await json<{ user: { roles: string[] } }>(await onB.get('/v1/session'));
        if (me.user.roles.includes('ops')) break;
        assert.ok(performance.now() - start < DEADLINE_MS, `B still serves roles ${me.user.roles.join(',')}`);
        await sleep(2);
      }
      t.diagnostic(`roles changed on A, served by B after ${(performance.now() - start).toFixed(1)} ms`);
    });

    if (kind === 'postgres') {
      it('the LISTEN connection killed: the node logs it, reconnects by itself, and still refuses a revoked session', async (t: TestContext) => {
        const url = store!.url as string;
        const admin = new pg.Client({ connectionString: url });
        await admin.connect();
        const listeners = async () =>
          (
            await admin.query<{ pid: number }>(
              "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN latchkey_revocations' AND pid <> pg_backend_pid()",
            )
          ).rows.map((r) => r.pid);
        try {
          const before = await listeners();
          assert.equal(before.length, 2, 'one LISTEN connection per node');
          const failures = b.lk.revocations.failures;
          await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [before]);
          const u = await user(1);
          const onB = on(b, u.others[0]!);
          await warm(onB);
          const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await u.main.get('/v1/sessions'));
          assert.equal((await u.main.delete(`/v1/sessions/${list.sessions.find((s) => !s.current)!.handle}`)).status, 204);
          const ms = await untilRefused(onB);
          t.diagnostic(`refused by B ${ms.toFixed(1)} ms after the revoke, its LISTEN connection killed`);
          assert.ok(b.lk.revocations.failures > failures, 'the lost connection was reported');
          // both nodes listen again, on new connections
          const deadline = performance.now() + DEADLINE_MS;
          for (;;) {
            const now = await listeners();
            if (now.length === 2 && now.every((pid) => !before.includes(pid))) break;
            assert.ok(performance.now() < deadline, `listening again: ${now.length}`);
            await sleep(50);
          }
        } finally {
          await admin.end();
        }
      });
    }

    it('a sign-up on A leaves B\'s cache warm: the next request on B is a hit, no store read', async () => {
      const u = await user(0);
      const onB = on(b, u.main);
      await warm(onB);
      const warmAt = performance.now();
      const before = b.lk.sessions.stats();
      assert.equal((await new Client(a.url).signup(newEmail('other'), PASSWORD)).status, 201);
      const wroteAt = performance.now();
      // B's feed has seen everything A committed, and longer than the old 1 s re-read has passed
      const deadline = wroteAt + DEADLINE_MS;
      while (b.lk.revocations.caughtUpAt <= wroteAt || performance.now() - warmAt < 1200) {
        assert.ok(performance.now() < deadline, 'B caught up with the store');
        await sleep(20);
      }
      assert.ok(await accepted(onB));
      const now = b.lk.sessions.stats();
      assert.equal(now.hits, before.hits + 1, 'a cache hit');
      assert.equal(now.misses, before.misses, 'no store read');
      assert.ok(now.size >= before.size, 'nothing was dropped');
    });
  });
}

describe('sessions.strict', () => {
  const dirs = [mkdtempSync(join(tmpdir(), 'latchkey-cluster-')), mkdtempSync(join(tmpdir(), 'latchkey-cluster-'))];
  let a: Node;
  let b: Node;
  before(async () => {
    const store = { kind: 'postgres', url: await createDatabase() };
    a = await startNode(dirs[0]!, { store, sessions: { strict: true } });
    b = await startNode(dirs[1]!, { store, sessions: { strict: true } });
  });
  after(async () => {
    await b?.lk.close();
    await a?.lk.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('is off by default', () => {
    assert.equal(parseConfig({}).sessions.strict, false);
  });

  it('B refuses a session revoked on A on the very next request, with no wait; every request reads the store', async () => {
    const email = newEmail('strict');
    const main = new Client(a.url);
    assert.equal((await main.signup(email, PASSWORD)).status, 201);
    const laptop = new Client(a.url, 'Mozilla/5.0 (Macintosh) Safari/605.1.15');
    assert.equal((await laptop.login(email, PASSWORD)).status, 200);
    const onB = on(b, laptop);
    const before = b.lk.sessions.stats();
    assert.ok(await accepted(onB));
    assert.ok(await accepted(onB));
    const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await main.get('/v1/sessions'));
    assert.equal((await main.delete(`/v1/sessions/${list.sessions.find((s) => !s.current)!.handle}`)).status, 204);
    assert.equal(await accepted(onB), false);
    const now = b.lk.sessions.stats();
    assert.equal(now.hits, before.hits, 'no cache hit');
    assert.equal(now.misses, before.misses + 3, 'one store read per request');
    assert.equal(now.size, 0);
  });
});
