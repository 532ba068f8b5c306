import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import pg from 'pg';
import { PostgresStore } from '../src/store/postgres/index.js';
import { migrations } from '../src/store/postgres/migrations.js';
import type { Session } from '../src/store/store.js';
import { createDatabase } from './postgres.js';
import { atRestStoreContract } from './store.at-rest.contract.js';
import { storeContract } from './store.contract.js';

// a fresh database per test: the contract counts keys, events and audit rows from zero
storeContract('postgres', async () => new PostgresStore({ url: await createDatabase(), poolSize: 4 }));
// each peer a pool of its own, as another node's: its calls are concurrent transactions
atRestStoreContract('postgres', async () => {
  const url = await createDatabase();
  return { store: new PostgresStore({ url, poolSize: 4 }), peer: () => new PostgresStore({ url, poolSize: 2 }) };
});

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('postgres store', () => {
  it('concurrent migrations of one fresh database (nodes starting together) all succeed and apply each version once', async () => {
    const url = await createDatabase();
    const nodes = Array.from({ length: 6 }, () => new PostgresStore({ url, poolSize: 2 }));
    try {
      const reports = await Promise.all(nodes.map((s) => s.migrateWithReport()));
      // exactly one of them found the database empty; the others waited and found nothing to do
      assert.equal(reports.filter((r) => r.from === 0).length, 1);
      assert.ok(reports.every((r) => r.to === migrations.length && (r.from === 0 || r.from === migrations.length)));
      const versions = await withClient(url, async (c) => (await c.query('SELECT version FROM latchkey_migrations ORDER BY version')).rows);
      assert.deepEqual(versions.map((r) => r.version as number), migrations.map((_, i) => i + 1));
      // and the schema works from every node
      await nodes[0]!.createUser({ id: 'u_m', email: 'm@example.com', passwordHash: 'h', createdAt: 1 });
      assert.equal((await nodes[5]!.getUserById('u_m'))?.email, 'm@example.com');
    } finally {
      await Promise.all(nodes.map((s) => s.close()));
    }
  });

  it('refuses a database from a newer version, changing nothing', async () => {
    const url = await createDatabase();
    const a = new PostgresStore({ url });
    await a.migrate();
    await withClient(url, (c) => c.query('INSERT INTO latchkey_migrations (version) VALUES (999)'));
    await assert.rejects(a.migrate(), /version 999 is newer than this latchkey/);
    const versions = await withClient(url, async (c) => (await c.query('SELECT COUNT(*)::int AS n FROM latchkey_migrations')).rows[0].n as number);
    assert.equal(versions, migrations.length + 1);
    await a.close();
  });

  it('a wrong password or an unreachable server fails without the password in the error', async () => {
    const url = new URL(await createDatabase());
    const secret = `wrong-${randomBytes(8).toString('hex')}`;
    url.password = secret;
    const wrong = new PostgresStore({ url: url.toString(), poolSize: 1 });
    const err = await wrong.migrate().then(
      () => assert.fail('connected with a wrong password'),
      (e: unknown) => e,
    );
    await wrong.close();
    assert.equal((err as { code?: string }).code, '28P01', 'invalid_password');
    for (const text of [String(err), inspect(err, { depth: 5 }), JSON.stringify(err)]) assert.ok(!text.includes(secret), text);

    const closedPort = new URL(url);
    closedPort.port = '1';
    const down = new PostgresStore({ url: closedPort.toString(), poolSize: 1 });
    const err2 = await down.getUserById('u').then(
      () => assert.fail('reached a closed port'),
      (e: unknown) => e,
    );
    await down.close();
    for (const text of [String(err2), inspect(err2, { depth: 5 }), JSON.stringify(err2)]) assert.ok(!text.includes(secret), text);
  });

  it('refuses a URL that is not a postgres:// URL without repeating it', () => {
    for (const bad of ['http://user:s3cret-pw@host/db', 'postgres//user:s3cret-pw@host', 'not a url s3cret-pw']) {
      assert.throws(
        () => new PostgresStore({ url: bad }),
        (e: Error) => e.message === 'the database URL is not a postgres:// URL' && !inspect(e).includes('s3cret-pw'),
      );
    }
  });

  it('watchRevocations: a commit with events on another node wakes the listener, one without does not; once stopped, nothing wakes it', async () => {
    const url = await createDatabase();
    const a = new PostgresStore({ url, poolSize: 2 });
    const b = new PostgresStore({ url, poolSize: 2 });
    try {
      await a.migrate();
      await b.migrate();
      let wakes = 0;
      let woken: () => void = () => undefined;
      const nextWake = () => new Promise<void>((r) => (woken = r));
      const errors: unknown[] = [];
      let listening = nextWake();
      const stop = a.watchRevocations(
        () => {
          wakes++;
          woken();
        },
        (err) => errors.push(err),
      );
      // the listener wakes once when its LISTEN is in place (whatever was missed before)
      await listening;
      wakes = 0;
      const settle = () => new Promise((r) => setTimeout(r, 300));
      await b.createUser({ id: 'u_w', email: 'w@example.com', passwordHash: 'h', createdAt: 1 });
      const s = { idHash: randomBytes(32), userId: 'u_w', createdAt: 1, lastSeenAt: 1, expiresAt: 9999, device: 'x', ip: '192.0.2.1' };
      const t = { ...s, idHash: randomBytes(32) };
      await b.createSession(s);
      await b.createSession(t);
      listening = nextWake();
      await b.deleteSession(s.idHash);
      await listening;
      // notifications arrive in commit order: one for an event-less commit would have come first
      await settle();
      assert.equal(wakes, 1);
      stop();
      await b.deleteSession(t.idHash);
      await settle();
      assert.equal(wakes, 1);
      assert.deepEqual(errors, []);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('revocation positions are gap-free in commit order: writers on several nodes, a reader polling after its last position misses nothing', async () => {
    const url = await createDatabase();
    const setup = new PostgresStore({ url, poolSize: 2 });
    await setup.migrate();
    // four nodes: separate pools, as separate processes would have
    const nodes = Array.from({ length: 4 }, () => new PostgresStore({ url, poolSize: POOL_PER_NODE }));
    try {
      await gapFree(setup, nodes);
    } finally {
      await Promise.all([setup, ...nodes].map((s) => s.close()));
    }
  });
});

const POOL_PER_NODE = 6;

/** Revocation-writing transactions on every node at once, and a reader polling as the feed does. */
async function gapFree(setup: PostgresStore, nodes: PostgresStore[]): Promise<void> {
  const base = { createdAt: 1000, lastSeenAt: 1000, expiresAt: 100_000, device: 'Firefox on Linux', ip: '192.0.2.1' };
  const users: { id: string; sessions: Session[] }[] = [];
  for (let u = 0; u < 16; u++) {
    const id = `u_gap${u}`;
    await setup.createUser({ id, email: `gap${u}@example.com`, passwordHash: 'h', createdAt: 1 });
    const sessions: Session[] = [];
    for (let i = 0; i < 12; i++) {
      const s = { ...base, userId: id, idHash: randomBytes(32) };
      await setup.createSession(s);
      sessions.push(s);
    }
    users.push({ id, sessions });
  }
  const seen: number[] = [];
  let last = 0;
  let writing = true;
  const reader = (async () => {
    const poll = async () => {
      const events = await setup.listRevocations(last, 1000, 0);
      for (const e of events) seen.push(e.seq);
      if (events.length) last = events[events.length - 1]!.seq;
    };
    while (writing) await poll();
    await poll();
  })();
  // every kind of revocation-writing transaction at once, spread over the nodes: transactions
  // with one event and with several, short and long (ending many sessions, moving cutoffs)
  // each node runs as many at once as its pool holds: enough to contend for the position counter
  // on every connection, without queueing for a connection past the pool's timeout on a loaded
  // machine (that would be a 503, which is right for production but not what this test is about)
  const queues = nodes.map(() => [] as (() => Promise<unknown>)[]);
  users.forEach((u, i) => {
    const node = (k: number) => (i + k) % nodes.length;
    const on = (k: number, op: (n: PostgresStore) => Promise<unknown>) => queues[node(k)]!.push(() => op(nodes[node(k)]!));
    for (const s of u.sessions.slice(0, 6)) on(0, (n) => n.deleteSession(s.idHash));
    on(1, (n) => n.setUserRoles(u.id, ['r1']));
    on(2, (n) => n.setUserRoles(u.id, ['r2']));
    on(3, (n) => (i % 2 ? n.changePassword(u.id, 'h2') : n.setUserDisabled(u.id, true)));
  });
  const results: PromiseSettledResult<unknown>[] = [];
  const worker = async (queue: (() => Promise<unknown>)[]) => {
    for (let op = queue.shift(); op; op = queue.shift()) {
      results.push(...(await Promise.allSettled([op()])));
    }
  };
  // every writer finishes (or fails) before the checks and the close
  await Promise.all(queues.flatMap((q) => Array.from({ length: POOL_PER_NODE }, () => worker(q))));
  writing = false;
  await reader;
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  const all = await setup.listRevocations(0, 100_000, 0);
  // per user: 2 claims events, 1 or 2 for the password change or disabling, and one per session
  // ended by deleteSession before the user-wide change took the rest (a session ends once)
  assert.ok(all.length >= users.length * 3 && all.length <= users.length * (4 + 6), `${all.length} events`);
  assert.deepEqual(seen, all.map((e) => e.seq), 'the reader saw every position, in order, by polling after its last one');
  assert.deepEqual(all.map((e) => e.seq), all.map((_, i) => i + 1), 'positions 1..n without gaps');
  assert.equal(await setup.lastRevocationSeq(), all.length);
}
