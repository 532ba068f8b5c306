/**
 * PostgreSQL outages: a private PostgreSQL server of this file's own (never the suite's shared
 * one) is stopped and started again under running latchkey instances. Requests that need the
 * store answer 503 with Retry-After (problem+json; RFC 6749 `temporarily_unavailable` under
 * /oauth), never a 500; the instance stays up, logs the outage once and its end once, and serves
 * the same session again once the server is back, without a restart. A session the store cannot
 * vouch for is never accepted during the outage (a revoked one included).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../../../scripts/pg-server.mjs';
import { isLatchkeyError } from '../src/errors.js';
import { Db, isUnavailable } from '../src/store/postgres/db.js';
import { PostgresStore } from '../src/store/postgres/index.js';
import { assertStoreUnavailable, Client, json, startServer, type TestServer } from './helpers.js';
import { form, loginTokens, signup } from './token-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-pg-outage-'));
let server: PostgresServer;
before(async () => {
  server = await startPostgres(dir);
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A clock the tests move: the session cache's re-read interval passes without waiting. */
let clock = Date.now();
const now = () => clock;

interface Logged {
  level: 'error' | 'warn';
  msg: string;
  obj: object;
}

/** A new database on the private server; returns its URL. */
async function freshDatabase(): Promise<string> {
  const name = `outage_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const u = new URL(server.url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** An instance on database `url` of the private server, its store's outage log captured in `logged`. */
async function node(url: string, logged: Logged[]): Promise<TestServer> {
  const srv = await startServer({ store: { kind: 'postgres', url, poolSize: 4 } }, { now });
  const store = srv.lk.store as PostgresStore;
  store.db.setLog({
    error: (obj, msg) => logged.push({ level: 'error', msg, obj }),
    warn: (obj, msg) => logged.push({ level: 'warn', msg, obj }),
  });
  return srv;
}

/**
 * The first answer that is not a trusted cache hit once the store is gone: a node trusts its session
 * cache only while its revocation feed has read every event within the last second (real time), so
 * for up to that second a cached, still valid session is answered from memory. Anything but 200 or
 * 503 fails at once.
 */
async function onceUnavailable(request: () => Promise<Response>): Promise<Response> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await request();
    if (res.status !== 200 || Date.now() > deadline) return res;
    await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('PostgreSQL stopped and started again under a running instance', () => {
  it('503 with Retry-After while it is down (problem+json; temporarily_unavailable under /oauth), no 500; the same session works again after, no restart', async () => {
    const logged: Logged[] = [];
    const srv = await node(await freshDatabase(), logged);
    try {
      const { browser, email } = await signup(srv);
      const tokens = await loginTokens(srv, email);
      assert.equal((await browser.get('/v1/session')).status, 200);

      await server.stop();
      clock += 5_000;
      // past the second the session cache may still trust: the store must be asked
      await assertStoreUnavailable(await onceUnavailable(() => browser.get('/v1/session')));
      await assertStoreUnavailable(await browser.get('/v1/sessions'));
      // login (its rate limit is counted in the database first): 503, and no cookie set
      const other = new Client(srv.url);
      await assertStoreUnavailable(await other.login(email));
      assert.equal(other.cookies.size, 0);
      const grant = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
      assert.equal(grant.status, 503);
      assert.equal(Number(grant.headers.get('retry-after')), 5);
      assert.equal((await json(grant)).error, 'temporarily_unavailable');
      // the process is up and answers what needs no store: health, and the signing keys' JWKS
      // (held in memory), so tokens issued before the outage stay verifiable
      assert.equal((await fetch(srv.url + '/healthz')).status, 200);
      const jwks = await fetch(srv.url + '/.well-known/jwks.json');
      assert.equal(jwks.status, 200);
      assert.ok((await json<{ keys: unknown[] }>(jwks)).keys.length >= 1);
      // logged once for the whole outage, without the URL's password
      assert.deepEqual(logged.map((l) => [l.level, l.msg]), [['error', 'postgres unavailable: requests that need the store answer 503 until it is back']]);
      const password = new URL(server.url).password;
      assert.ok(!JSON.stringify(logged).includes(password));

      await server.start();
      assert.equal((await browser.get('/v1/session')).status, 200);
      assert.equal((await other.login(email)).status, 200);
      const again = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
      assert.equal(again.status, 200);
      assert.deepEqual(logged.map((l) => [l.level, l.msg]).at(-1), ['warn', 'postgres recovered']);
      assert.equal(logged.length, 2);
    } finally {
      await server.start();
      await srv.close();
    }
  });

  it('a session revoked on another instance just before the outage is never accepted during it, nor after', async () => {
    const logged: Logged[] = [];
    const url = await freshDatabase();
    const a = await node(url, logged);
    // a data dir of its own (keys and secrets are in the database)
    const b = await node(url, logged);
    try {
      const { browser, email } = await signup(a);
      const laptop = new Client(a.url);
      assert.equal((await laptop.login(email)).status, 200);
      // both sessions are in b's cache
      const onB = (c: Client) => new Client(b.url).request('GET', '/v1/session', undefined, { cookie: [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ') });
      assert.equal((await onB(laptop)).status, 200);
      assert.equal((await onB(browser)).status, 200);
      const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await browser.get('/v1/sessions'));
      const laptopHandle = list.sessions.find((s) => !s.current)!.handle;
      assert.equal((await browser.delete(`/v1/sessions/${laptopHandle}`)).status, 204);
      // b drops the revoked session from its cache when its feed reads the event (NOTIFY)
      const deadline = Date.now() + 10_000;
      while ((await onB(laptop)).status === 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

      await server.stop();
      clock += 5_000;
      // b cannot check either session: the revoked one is not in its cache (503, never 200), and the
      // live one is refused too once b's feed has not read for a second
      await assertStoreUnavailable(await onB(laptop));
      await assertStoreUnavailable(await onceUnavailable(() => onB(browser)));

      await server.start();
      assert.equal((await onB(laptop)).status, 401);
      assert.equal((await onB(browser)).status, 200);
    } finally {
      await server.start();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('which errors are an unreachable database', () => {
  it('a connection ended by the server (57P01) and a refused connection are; a failed statement is not', async () => {
    const c = new pg.Client({ connectionString: server.url });
    c.on('error', () => undefined);
    await c.connect();
    const killed = await c.query('SELECT pg_terminate_backend(pg_backend_pid())').then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.equal((killed as { code?: string }).code, '57P01');
    assert.equal(isUnavailable(killed), true);
    await c.end().catch(() => undefined);

    const db = new Db(server.url, 1);
    try {
      const syntax = await db.query('SELEC 1').then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.equal((syntax as { code?: string }).code, '42601');
      assert.equal(isUnavailable(syntax), false);
      assert.equal(isLatchkeyError(syntax), false);
    } finally {
      await db.pool.end();
    }

    const closed = new URL(server.url);
    closed.port = '1';
    const nowhere = new Db(closed.toString(), 1);
    try {
      await assert.rejects(nowhere.query('SELECT 1'), (err: unknown) => isLatchkeyError(err) && err.code === 'store_unavailable' && err.retryAfter === 5);
      assert.equal(nowhere.unavailable, true);
    } finally {
      await nowhere.pool.end();
    }
  });

  it('a pool whose connections are all busy past the connection timeout: store_unavailable, not a request held open', async () => {
    const db = new Db(server.url, 1);
    const held = await db.pool.connect();
    try {
      await assert.rejects(db.query('SELECT 1'), (err: unknown) => isLatchkeyError(err) && err.code === 'store_unavailable');
    } finally {
      held.release();
      await db.pool.end();
    }
  });
});
