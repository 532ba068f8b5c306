/**
 * SQLite failing under a running instance: real SQLite conditions on the store's own file (a
 * second connection holding the write lock past the busy timeout, a connection that may not
 * write, a page limit reached, a file that is not a database). Requests that need the store
 * answer 503 problem+json `store_unavailable` with Retry-After (RFC 6749 `temporarily_unavailable`
 * under /oauth), never a 500; nothing of a refused request is written; the outage is logged once
 * and its end once; and the same requests succeed once the condition ends, without a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLatchkeyError } from '../src/errors.js';
import { Database } from '../src/store/sqlite/driver.js';
import { isUnavailable } from '../src/store/sqlite/db.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { assertStoreUnavailable, Client, json, startServer, type TestServer } from './helpers.js';
import { form, loginTokens, newEmail, signup } from './token-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-sqlite-outage-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Logged {
  level: 'error' | 'warn';
  msg: string;
  obj: { code?: string };
}

/** An instance whose store's outage log is captured in `logged`, waiting `busyMs` for the write lock. */
async function node(logged: Logged[], busyMs = 200): Promise<{ srv: TestServer; store: SqliteStore; file: string }> {
  const srv = await startServer();
  const store = srv.lk.store as SqliteStore;
  // the default (5 s) blocks the event loop that long per refused write: the condition is the same
  store.db.pragma(`busy_timeout = ${busyMs}`);
  store.setLog({
    error: (obj, msg) => logged.push({ level: 'error', msg, obj }),
    warn: (obj, msg) => logged.push({ level: 'warn', msg, obj }),
  });
  return { srv, store, file: join(srv.config.dataDir, 'latchkey.sqlite') };
}

describe('SQLite failing under a running instance', () => {
  it('another connection holding the write lock past the busy timeout: writes answer 503 with Retry-After (temporarily_unavailable under /oauth), reads go on, nothing is written; all succeed once it lets go', async () => {
    const logged: Logged[] = [];
    const { srv, store, file } = await node(logged);
    const holder = new Database(file);
    try {
      const { browser, email, userId } = await signup(srv);
      const tokens = await loginTokens(srv, email);
      const sessionsBefore = (await store.listSessions(userId)).length;
      const later = newEmail('later');

      holder.exec('BEGIN IMMEDIATE');
      // sign-up: the user row cannot be written
      await assertStoreUnavailable(await new Client(srv.url).signup(later));
      // login: the session cannot be written, and no cookie is set
      const other = new Client(srv.url);
      await assertStoreUnavailable(await other.login(email));
      assert.equal(other.cookies.size, 0);
      // logout: the session cannot be deleted; the browser keeps it
      await assertStoreUnavailable(await browser.post('/v1/logout'));
      // the refresh grant's rotation cannot be written
      const grant = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
      assert.equal(grant.status, 503);
      assert.equal(Number(grant.headers.get('retry-after')), 5);
      assert.equal((await json(grant)).error, 'temporarily_unavailable');
      // WAL: reads do not wait for the writer
      assert.equal((await browser.get('/v1/session')).status, 200);
      assert.deepEqual(
        logged.map((l) => [l.level, l.msg, l.obj.code]),
        [['error', 'sqlite unavailable: requests that need the store answer 503 until it is back', 'SQLITE_BUSY']],
      );

      holder.exec('ROLLBACK');
      // nothing of the refused requests was written: the address is free, the session count is
      // what it was, and the refresh token was never rotated (else presenting it again is reuse)
      assert.equal(await store.getUserByEmail(later), undefined);
      assert.equal((await store.listSessions(userId)).length, sessionsBefore);
      const again = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
      assert.equal(again.status, 200);
      assert.equal((await new Client(srv.url).signup(later)).status, 201);
      assert.equal((await other.login(email)).status, 200);
      assert.equal((await browser.get('/v1/session')).status, 200);
      assert.equal((await browser.post('/v1/logout')).status, 204);
      assert.deepEqual(logged.map((l) => [l.level, l.msg]).at(-1), ['warn', 'sqlite recovered']);
      assert.equal(logged.length, 2);
    } finally {
      if (holder.inTransaction) holder.exec('ROLLBACK');
      holder.close();
      await srv.close();
    }
  });

  it('a connection that may not write (SQLITE_READONLY): 503 with Retry-After, nothing written; served again once it may', async () => {
    const logged: Logged[] = [];
    const { srv, store } = await node(logged);
    try {
      const { browser, email, userId } = await signup(srv);
      assert.equal((await new Client(srv.url).login(email)).status, 200);
      store.db.pragma('query_only = ON');
      const later = newEmail('readonly');
      await assertStoreUnavailable(await new Client(srv.url).signup(later));
      await assertStoreUnavailable(await new Client(srv.url).login(email));
      await assertStoreUnavailable(await browser.post('/v1/sessions/revoke-others'));
      assert.equal(logged[0]?.obj.code, 'SQLITE_READONLY');
      assert.equal(logged.length, 1);

      store.db.pragma('query_only = OFF');
      assert.equal(await store.getUserByEmail(later), undefined);
      assert.equal((await store.listSessions(userId)).length, 2);
      assert.equal((await new Client(srv.url).signup(later)).status, 201);
      assert.equal((await new Client(srv.url).login(email)).status, 200);
      assert.equal((await browser.post('/v1/sessions/revoke-others')).status, 200);
      assert.equal((await store.listSessions(userId)).length, 1);
      assert.deepEqual(logged.map((l) => [l.level, l.msg]).at(-1), ['warn', 'sqlite recovered']);
    } finally {
      await srv.close();
    }
  });

  it('a full database (its page limit reached, SQLITE_FULL): store_unavailable, the write rolled back; stored once there is room', async () => {
    const store = new SqliteStore({ filename: join(dir, 'full.sqlite') });
    try {
      await store.migrate();
      const pages = store.db.pragma('page_count', { simple: true }) as number;
      store.db.pragma(`max_page_count = ${pages}`);
      // far larger than the free space of the file's pages: it needs new ones
      const event = { at: 1, type: 'big', userId: null, session: null, ip: null, detail: { blob: 'x'.repeat(200_000) } };
      await assert.rejects(store.appendAuditEvent(event), (err: unknown) => isLatchkeyError(err) && err.code === 'store_unavailable' && err.retryAfter === 5);
      assert.deepEqual(await store.listAuditEvents({ limit: 10 }), []);
      store.db.pragma(`max_page_count = ${pages * 1000}`);
      await store.appendAuditEvent(event);
      assert.equal((await store.listAuditEvents({ limit: 10 })).length, 1);
    } finally {
      await store.close();
    }
  });
});

describe('which SQLite errors are the store failing', () => {
  it('busy, read-only, full and not-a-database are; a constraint and a wrong statement are not', () => {
    const file = join(dir, 'codes.sqlite');
    const a = new Database(file);
    a.pragma('journal_mode = WAL');
    a.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    const b = new Database(file);
    b.pragma('busy_timeout = 0');
    const failure = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      assert.fail('expected an error');
    };
    try {
      a.exec('BEGIN IMMEDIATE');
      const busy = failure(() => b.prepare("INSERT INTO t VALUES ('x')").run());
      a.exec('ROLLBACK');
      b.pragma('query_only = ON');
      const readonly = failure(() => b.prepare("INSERT INTO t VALUES ('x')").run());
      b.pragma('query_only = OFF');
      b.pragma(`max_page_count = ${b.pragma('page_count', { simple: true }) as number}`);
      const full = failure(() => b.prepare('INSERT INTO t VALUES (?)').run('x'.repeat(100_000)));
      a.prepare("INSERT INTO t VALUES ('y')").run();
      const constraint = failure(() => a.prepare("INSERT INTO t VALUES ('y')").run());
      const syntax = failure(() => a.prepare('SELEC 1'));
      const garbage = join(dir, 'garbage.sqlite');
      writeFileSync(garbage, Buffer.alloc(8192, 0x5a));
      const damaged = new Database(garbage);
      const notDb = failure(() => damaged.prepare('SELECT * FROM sqlite_master').all());
      damaged.close();

      const codes = (errs: unknown[]) => errs.map((e) => [(e as { code?: string }).code, isUnavailable(e)]);
      assert.deepEqual(codes([busy, readonly, full, notDb]), [
        ['SQLITE_BUSY', true],
        ['SQLITE_READONLY', true],
        ['SQLITE_FULL', true],
        ['SQLITE_NOTADB', true],
      ]);
      assert.deepEqual(codes([constraint, syntax]), [
        ['SQLITE_CONSTRAINT_PRIMARYKEY', false],
        ['SQLITE_ERROR', false],
      ]);
    } finally {
      a.close();
      b.close();
    }
  });
});
