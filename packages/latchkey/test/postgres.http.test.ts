/**
 * latchkey on PostgreSQL end to end: the config that selects it, `latchkey migrate`, and the
 * HTTP server's account, session and token flows with every row in the database (not the
 * SQLite file of the data dir).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ConfigError, loadConfig, parseConfig } from '../src/config.js';
import { migrations } from '../src/store/postgres/migrations.js';
import { Client, freePort, json, startServer, TEST_KEK, type TestServer } from './helpers.js';
import { createDatabase } from './postgres.js';
import { form, loginTokens, PASSWORD, signup, type TokenResponse } from './token-helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;

async function sql<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

function cli(args: string[], env: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-pg-cli-'));
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LATCHKEY_DATA_DIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited: exited.finally(() => rmSync(dir, { recursive: true, force: true })),
  };
}

describe('config: store', () => {
  it('is the embedded SQLite file by default', () => {
    assert.deepEqual(parseConfig({}).store, { kind: 'sqlite' });
    assert.deepEqual(loadConfig({}, {}).store, { kind: 'sqlite' });
  });

  it('LATCHKEY_DATABASE_URL selects PostgreSQL', () => {
    const url = 'postgres://lk:pw@db.internal:5432/latchkey';
    assert.deepEqual(loadConfig({}, { LATCHKEY_DATABASE_URL: url }).store, { kind: 'postgres', url, poolSize: 10 });
    assert.deepEqual(parseConfig({ store: { kind: 'postgres', url, poolSize: 4 } }).store, { kind: 'postgres', url, poolSize: 4 });
  });

  it('refuses a URL that is not postgres:// without repeating it (it holds the password)', () => {
    for (const url of ['mysql://lk:hunter2-secret@db/latchkey', 'postgres://lk:hunter2-secret@', 'hunter2-secret']) {
      assert.throws(
        () => loadConfig({}, { LATCHKEY_DATABASE_URL: url }),
        (e: Error) => e instanceof ConfigError && e.message.startsWith('invalid config: store.url:') && !e.message.includes('hunter2-secret'),
      );
    }
    assert.throws(() => parseConfig({ store: { kind: 'postgres' } }), /store\.url/);
    assert.throws(() => parseConfig({ store: { kind: 'mongodb' } }), /invalid config: store/);
  });
});

describe('latchkey migrate on PostgreSQL', () => {
  it('three nodes migrating one fresh database at once all succeed; the schema is applied once', async () => {
    const url = await createDatabase();
    const runs = [0, 1, 2].map(() => cli(['migrate'], { LATCHKEY_DATABASE_URL: url }));
    const codes = await Promise.all(runs.map((r) => r.exited));
    assert.deepEqual(codes, [0, 0, 0], runs.map((r) => r.output()).join('\n'));
    const outputs = runs.map((r) => r.output());
    assert.equal(outputs.filter((o) => o.includes(`migrated from version 0 to ${migrations.length}`)).length, 1, outputs.join('\n'));
    const password = new URL(url).password;
    for (const o of outputs) assert.ok(!o.includes(password), 'the password is never printed');
    const rows = await sql<{ version: number }>(url, 'SELECT version FROM latchkey_migrations ORDER BY version');
    assert.deepEqual(rows.map((r) => r.version), migrations.map((_, i) => i + 1));
  });

  it('a wrong password fails with exit 1 and without the password', async () => {
    const u = new URL(await createDatabase());
    u.password = 'not-the-password-4711';
    const run = cli(['migrate'], { LATCHKEY_DATABASE_URL: u.toString() });
    assert.equal(await run.exited, 1);
    assert.match(run.output(), /password authentication failed/);
    assert.ok(!run.output().includes('not-the-password-4711'), run.output());
  });

  it('serve refuses to start without a key-encryption key (exit 2, naming keys.encryptionKey), touching neither the database nor the data dir', async () => {
    const url = await createDatabase();
    const dataDir = join(mkdtempSync(join(tmpdir(), 'latchkey-pg-cli-')), 'data');
    const run = cli(['serve', '--port', String(await freePort()), '--data-dir', dataDir], {
      LATCHKEY_DATABASE_URL: url,
      LATCHKEY_KEY_ENCRYPTION_KEY: '',
    });
    assert.equal(await run.exited, 2, run.output());
    assert.match(run.output(), /invalid config: keys\.encryptionKey: required with the PostgreSQL store/);
    assert.match(run.output(), /openssl rand -base64 32/);
    const tables = await sql<{ n: number }>(url, "SELECT COUNT(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'");
    assert.equal(tables[0]!.n, 0, 'nothing migrated');
    assert.equal(existsSync(dataDir), false, 'no data dir created');
  });

  it('serve migrates at start and logs where the store is, without the password', async () => {
    const url = await createDatabase();
    const port = await freePort();
    const run = cli(['serve', '--port', String(port)], { LATCHKEY_DATABASE_URL: url, LATCHKEY_LOG_LEVEL: 'info', LATCHKEY_KEY_ENCRYPTION_KEY: TEST_KEK });
    try {
      const end = Date.now() + 20_000;
      while (!run.output().includes('latchkey ready')) {
        if (Date.now() > end) throw new Error(`serve did not start:\n${run.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      const u = new URL(url);
      assert.ok(run.output().includes(`"store":"postgres://${u.username}@${u.host}${u.pathname}"`), run.output());
      assert.ok(!run.output().includes(u.password));
      assert.equal((await sql<{ n: number }>(url, 'SELECT COUNT(*)::int AS n FROM latchkey_migrations'))[0]!.n, migrations.length);
    } finally {
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0);
    }
  });
});

describe('the HTTP server on PostgreSQL', () => {
  let srv: TestServer;
  let url: string;
  before(async () => {
    url = await createDatabase();
    srv = await startServer({ store: { kind: 'postgres', url } });
  });
  after(() => srv.close());

  it('keeps its state in PostgreSQL, not in a SQLite file', async () => {
    assert.equal(srv.lk.store.constructor.name, 'PostgresStore');
    assert.equal(existsSync(join(srv.config.dataDir, 'latchkey.sqlite')), false);
  });

  it('sign up, log in, list sessions, revoke one: the revoked browser is refused at once', async () => {
    const { browser, email, userId } = await signup(srv);
    const laptop = new Client(srv.url, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15');
    assert.equal((await laptop.login(email, PASSWORD)).status, 200);
    const list = await json<{ sessions: { handle: string; current: boolean; device: string }[] }>(await browser.get('/v1/sessions'));
    assert.equal(list.sessions.length, 2);
    const rows = await sql<{ n: number }>(url, 'SELECT COUNT(*)::int AS n FROM sessions WHERE user_id = $1', [userId]);
    assert.equal(rows[0]!.n, 2, 'both sessions are rows in PostgreSQL');
    const other = list.sessions.find((s) => !s.current)!;
    assert.equal((await laptop.get('/v1/session')).status, 200);
    assert.equal((await browser.delete(`/v1/sessions/${other.handle}`)).status, 204);
    assert.equal((await laptop.get('/v1/session')).status, 401);
    assert.equal((await browser.get('/v1/session')).status, 200);
    // the end of the session is published on the feed's table, with its handle
    const events = await sql<{ kind: string; sid: string }>(url, 'SELECT kind, sid FROM revocations ORDER BY seq');
    assert.deepEqual(events.at(-1), { kind: 'session', sid: other.handle });
  });

  it('token login and refresh grants rotate in PostgreSQL', async () => {
    const { email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    const grant = (rt: string) => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: rt, client_id: 'latchkey' });
    const r1 = await grant(tokens.refresh_token!);
    assert.equal(r1.status, 200);
    const next = await json<TokenResponse>(r1);
    assert.ok(next.refresh_token && next.refresh_token !== tokens.refresh_token);
    const r2 = await grant(next.refresh_token);
    assert.equal(r2.status, 200);
    // the family's rows: the current token and the ones rotated within the grace window
    const rows = await sql<{ n: number; current: number }>(
      url,
      'SELECT COUNT(*)::int AS n, COUNT(*) FILTER (WHERE rotated_at IS NULL)::int AS current FROM refresh_tokens',
    );
    assert.deepEqual(rows[0], { n: 3, current: 1 });
  });

  it('latchkey keys works against the database with no data dir at all: a key rotated from the CLI signs on the server', async () => {
    const { email } = await signup(srv);
    const missing = join(mkdtempSync(join(tmpdir(), 'latchkey-pg-cli-')), 'none');
    const run = cli(['keys', 'rotate', '--now', '--data-dir', missing], { LATCHKEY_DATABASE_URL: url, LATCHKEY_KEY_ENCRYPTION_KEY: TEST_KEK });
    assert.equal(await run.exited, 0, run.output());
    const kid = /created (\S+)/.exec(run.output())![1]!;
    assert.equal(existsSync(missing), false, 'no data dir created');
    await srv.lk.context.keys.reload();
    const tokens = await loginTokens(srv, email);
    assert.equal(JSON.parse(Buffer.from(tokens.access_token.split('.')[0]!, 'base64url').toString()).kid, kid);
  });
});
