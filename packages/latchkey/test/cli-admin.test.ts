/**
 * `latchkey users|sessions|audit` against a real store while the server runs: the local SQLite
 * file, PostgreSQL (LATCHKEY_DATABASE_URL), and the running server's admin API (--url). The JSON
 * each prints is compared with what the admin API answers for the same question, and each change
 * is checked where it matters: the running server refuses what the CLI ended.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ADMIN_KEY, Client, freePort, json, startServer, type TestServer } from './helpers.js';
import { assertNoJsonInStrings, cliJson, runCli, startCli } from './cli-helpers.js';
import { createDatabase } from './postgres.js';
import { MOBILE_UA, newEmail, PASSWORD } from './token-helpers.js';

interface UserJson {
  user: { id: string; email: string; roles: string[]; disabled: boolean; createdAt: string };
}
interface SessionsJson {
  sessions: { handle: string; device: string; current: boolean }[];
}
interface AuditJson {
  events: { id: number; type: string; userId: string | null; session: string | null; ip: string | null; detail: Record<string, unknown> }[];
  next: number | null;
}

async function api<T>(srv: TestServer, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(srv.url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  assert.equal(res.ok, true, `${method} ${path}: ${res.status}`);
  return json<T>(res);
}

/** Until `fn` returns true, or fail after `ms`. */
async function eventually(what: string, fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

/** A user signed in from a browser (one session) and from a phone (a token client's session). */
async function userWithSessions(srv: TestServer): Promise<{ id: string; email: string; browser: Client }> {
  const email = newEmail('cli');
  const browser = new Client(srv.url);
  assert.equal((await browser.signup(email, PASSWORD)).status, 201);
  const id = (await json<UserJson>(await browser.get('/v1/session'))).user.id;
  const phone = await fetch(`${srv.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': MOBILE_UA },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(phone.status, 200);
  return { id, email, browser };
}

/**
 * The questions whose answers must be the same from the CLI and the API: [CLI args, API path].
 * Asked with nothing written in between.
 */
const questions = (u: { id: string; email: string }): [string[], string][] => [
  [['users', 'find', u.email.toUpperCase()], `/v1/admin/users?email=${encodeURIComponent(u.email.toUpperCase())}`],
  [['users', 'show', u.id], `/v1/admin/users/${u.id}`],
  [['sessions', 'list', u.id], `/v1/admin/users/${u.id}/sessions`],
  [['audit'], '/v1/admin/audit'],
  [['audit', '--user', u.id, '--limit', '2'], `/v1/admin/audit?userId=${u.id}&limit=2`],
  [['audit', '--type', 'token_login_succeeded'], '/v1/admin/audit?type=token_login_succeeded'],
];

describe('latchkey users, sessions, audit: the local SQLite store and --url give the admin API’s JSON', () => {
  let srv: TestServer;
  const remoteEnv = { LATCHKEY_ADMIN_KEY: ADMIN_KEY };
  before(async () => {
    srv = await startServer();
  });
  after(() => srv.close());
  const local = () => ['--data-dir', srv.config.dataDir];
  const remote = () => ['--url', srv.url];

  it('find, show, sessions list and audit print exactly the admin API’s JSON, locally and over --url', async () => {
    const u = await userWithSessions(srv);
    // reads only, so asked all at once (each CLI run is a process of its own)
    const answers = await Promise.all(
      questions(u).map(async ([args, path]) => ({
        args,
        fromApi: await api(srv, 'GET', path),
        fromStore: await cliJson([...args, '--json', ...local()]),
        fromUrl: await cliJson([...args, '--json', ...remote()], { env: remoteEnv }),
      })),
    );
    for (const { args, fromApi, fromStore, fromUrl } of answers) {
      assert.deepEqual(fromStore, fromApi, `${args.join(' ')} (local store)`);
      assert.deepEqual(fromUrl, fromApi, `${args.join(' ')} (--url)`);
      assertNoJsonInStrings(fromStore);
    }
    const sessions = answers[2]!.fromStore as unknown as SessionsJson;
    assert.deepEqual(sessions.sessions.map((s) => s.device).sort(), ['Firefox on Linux', 'WebKit on iPhone']);
    const events = (answers[3]!.fromStore as unknown as AuditJson).events;
    assert.deepEqual(events.filter((e) => e.userId === u.id).map((e) => e.type), ['token_login_succeeded']);
  });

  it('users disable on the local store ends the session on the running server and is audited as the operator’s; enable over --url', async () => {
    const u = await userWithSessions(srv);
    assert.equal((await u.browser.get('/v1/session')).status, 200);
    const disabled = await cliJson<UserJson & { revoked: number }>(['users', 'disable', u.id, '--json', ...local()]);
    assert.equal(disabled.user.disabled, true);
    assert.equal(disabled.revoked, 2);
    assert.deepEqual(await api(srv, 'GET', `/v1/admin/users/${u.id}`), { user: disabled.user });
    // another process wrote it: the server learns through its revocation feed
    await eventually('the server refuses the browser session', async () => (await u.browser.get('/v1/session')).status === 401);
    const login = await new Client(srv.url).login(u.email, PASSWORD);
    assert.equal(login.status, 403);

    const enabled = await cliJson<UserJson>(['users', 'enable', u.id, '--json', ...remote()], { env: remoteEnv });
    assert.equal(enabled.user.disabled, false);
    assert.equal((await new Client(srv.url).login(u.email, PASSWORD)).status, 200);

    const audit = await api<AuditJson>(srv, 'GET', `/v1/admin/audit?userId=${u.id}&limit=2`);
    assert.deepEqual(
      audit.events.map((e) => [e.type, e.ip, e.detail]),
      [
        ['admin_user_enabled', '127.0.0.1', {}],
        // no address: it came from the CLI on the store, not over HTTP
        ['admin_user_disabled', null, { revoked: 2 }],
      ],
    );
  });

  it('users roles replaces the roles (local and --url), --none clears them; a bad role is refused with exit 1 and changes nothing', async () => {
    const u = await userWithSessions(srv);
    const set = await cliJson<UserJson>(['users', 'roles', u.id, 'billing', 'ops', '--json', ...local()]);
    assert.deepEqual(set.user.roles, ['billing', 'ops']);
    // the running server is another process: its cached session learns of the change from the
    // revocation event the store wrote (a `claims` event), when its feed reads it
    const rolesSeen = async () => (await json<UserJson>(await u.browser.get('/v1/session'))).user.roles;
    for (let t = Date.now(); Date.now() - t < 10_000 && (await rolesSeen()).length === 0; ) await sleep(50);
    assert.deepEqual(await rolesSeen(), ['billing', 'ops']);
    const bad = await runCli(['users', 'roles', u.id, 'has space', ...local()]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /invalid_request/);
    const badRemote = await runCli(['users', 'roles', u.id, 'has space', ...remote()], { env: remoteEnv });
    assert.equal(badRemote.code, 1, badRemote.stderr);
    assert.deepEqual((await api<UserJson>(srv, 'GET', `/v1/admin/users/${u.id}`)).user.roles, ['billing', 'ops']);
    const cleared = await cliJson<UserJson>(['users', 'roles', u.id, '--none', '--json', ...remote()], { env: remoteEnv });
    assert.deepEqual(cleared.user.roles, []);
    const human = await runCli(['users', 'roles', u.id, 'support', ...local()]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^roles\s+support$/m);
  });

  it('sessions revoke <handle> ends that session only; revoke --user ends the rest; both reach the running server', async () => {
    const u = await userWithSessions(srv);
    const second = new Client(srv.url);
    assert.equal((await second.login(u.email, PASSWORD)).status, 200);
    const handleOf = async (c: Client) => (await json<{ session: { handle: string } }>(await c.get('/v1/session'))).session.handle;
    const first = await handleOf(u.browser);
    // handles are base64url and may begin with '-': the operand is taken as it is
    const one = await cliJson<{ revoked: number }>(['sessions', 'revoke', first, '--json', ...local()]);
    assert.deepEqual(one, { revoked: 1 });
    await eventually('the revoked session is refused', async () => (await u.browser.get('/v1/session')).status === 401);
    assert.equal((await second.get('/v1/session')).status, 200);
    const listed = await api<SessionsJson>(srv, 'GET', `/v1/admin/users/${u.id}/sessions`);
    assert.equal(listed.sessions.some((s) => s.handle === first), false);

    const all = await cliJson<{ revoked: number }>(['sessions', 'revoke', '--user', u.id, '--json', ...remote()], { env: remoteEnv });
    assert.deepEqual(all, { revoked: 2 });
    assert.equal((await second.get('/v1/session')).status, 401);
    assert.deepEqual(await api(srv, 'GET', `/v1/admin/users/${u.id}/sessions`), { sessions: [] });

    const again = await runCli(['sessions', 'revoke', ...local(), '--', first]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /session_not_found/);
  });

  it('exit codes: 1 for not found, a refused key or an unreachable server; 2 for usage; the error names the code', async () => {
    const notFound: [string[], Record<string, string>][] = [
      [['users', 'show', 'u_nobody', ...local()], {}],
      [['users', 'show', 'u_nobody', ...remote()], remoteEnv],
      [['users', 'find', 'nobody@example.com', ...local()], {}],
      [['sessions', 'list', 'u_nobody', ...remote()], remoteEnv],
    ];
    for (const [args, r] of await Promise.all(notFound.map(async ([args, env]) => [args, await runCli(args, { env })] as const))) {
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /user_not_found/);
    }
    const wrongKey = await runCli(['users', 'show', 'u_nobody', ...remote()], { env: { LATCHKEY_ADMIN_KEY: `${ADMIN_KEY}x` } });
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /refused the admin key \(unauthenticated\)/);
    assert.equal(wrongKey.stderr.includes(ADMIN_KEY), false, 'the key is never echoed');
    const nobodyHome = await runCli(['audit', '--url', `http://127.0.0.1:${await freePort()}`], { env: remoteEnv });
    assert.equal(nobodyHome.code, 1);
    assert.match(nobodyHome.stderr, /cannot reach/);

    const usage = [
      ['users'],
      ['users', 'frobnicate', 'x', ...local()],
      ['users', 'show', ...local()],
      ['users', 'roles', 'u_x', ...local()],
      ['users', 'roles', 'u_x', 'a', '--none', ...local()],
      ['sessions', 'list', ...local()],
      ['sessions', 'revoke', ...local()],
      ['audit', '--type', 'nonsense', ...local()],
      ['audit', '--limit', '0', ...local()],
      ['audit', '--limit', '1001', ...local()],
      ['audit', '--before', 'x', ...local()],
      ['audit', '--bogus', ...local()],
      ['audit', '--url', srv.url],
      ['audit', '--url', srv.url, '--data-dir', srv.config.dataDir],
      ['audit', '--url', 'ftp://example.com'],
      // the admin key would cross the network in clear
      ['audit', '--url', 'http://example.com'],
    ];
    for (const [args, r] of await Promise.all(usage.map(async (args) => [args, await runCli(args)] as const))) {
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage:|--help/, args.join(' '));
    }
  });

  it('audit --follow prints the last events, then each new one as it is written, one JSON object a line; SIGINT ends it with exit 0', async () => {
    const u = await userWithSessions(srv);
    const follow = startCli(['audit', '--follow', '--json', '--limit', '1', ...local()]);
    await eventually('the first event is printed', async () => follow.output().stdout.includes('\n'));
    await api(srv, 'PUT', `/v1/admin/users/${u.id}/roles`, { roles: ['followed'] });
    await cliJson(['users', 'roles', u.id, 'followed-again', '--json', ...local()]);
    await eventually('both new events are printed', async () => follow.output().stdout.includes('followed-again'));
    follow.child.kill('SIGINT');
    const r = await follow.exited;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditJson['events'][number]);
    assert.equal(lines.length, 3, r.stdout);
    assert.deepEqual(
      lines.slice(1).map((e) => [e.type, e.detail]),
      [
        ['admin_roles_changed', { roles: ['followed'] }],
        ['admin_roles_changed', { roles: ['followed-again'] }],
      ],
    );
    assert.ok(lines[0]!.id < lines[1]!.id && lines[1]!.id < lines[2]!.id, 'oldest first');
  });
});

describe('latchkey users, sessions, audit: a data dir that does not exist', () => {
  it('is an error (exit 1, naming it) and is never created, for every command that opens the store', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'missing');
    const commands = [
      ['users', 'find', 'a@example.com'],
      ['users', 'disable', 'u_x'],
      ['sessions', 'list', 'u_x'],
      ['sessions', 'revoke', '--user', 'u_x'],
      ['audit'],
      ['audit', '--follow'],
      ['keys', 'list', '--json'],
    ];
    const results = await Promise.all(commands.map(async (args) => [args, await runCli([...args, '--data-dir', missing])] as const));
    for (const [args, r] of results) {
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(missing), r.stderr);
      assert.equal(existsSync(missing), false, `${args.join(' ')} created it`);
    }
  });
});

describe('latchkey users, sessions, audit on PostgreSQL (LATCHKEY_DATABASE_URL)', () => {
  let srv: TestServer;
  let databaseUrl: string;
  before(async () => {
    databaseUrl = await createDatabase();
    srv = await startServer({ store: { kind: 'postgres', url: databaseUrl } });
  });
  after(() => srv.close());

  it('prints the admin API’s JSON and its changes reach the running server; no data dir is made', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'latchkey-cli-pg-'));
    const env = { LATCHKEY_DATABASE_URL: databaseUrl };
    const u = await userWithSessions(srv);
    const answers = await Promise.all(
      questions(u).map(async ([args, path]) => [args, await api(srv, 'GET', path), await cliJson([...args, '--json'], { env, cwd })] as const),
    );
    for (const [args, fromApi, fromCli] of answers) assert.deepEqual(fromCli, fromApi, args.join(' '));
    const disabled = await cliJson<UserJson & { revoked: number }>(['users', 'disable', u.id, '--json'], { env, cwd });
    assert.equal(disabled.revoked, 2);
    await eventually('the server refuses the browser session', async () => (await u.browser.get('/v1/session')).status === 401);
    const audit = await api<AuditJson>(srv, 'GET', `/v1/admin/audit?userId=${u.id}&limit=1`);
    assert.deepEqual(audit.events.map((e) => [e.type, e.ip]), [['admin_user_disabled', null]]);
    assert.deepEqual(readdirSync(cwd), [], 'nothing written where the CLI ran');
  });
});
