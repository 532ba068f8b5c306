/**
 * Resource bounds (issue 12, item 15): what one user or an anonymous client can
 * make the server keep. Sessions per user, device labels, audit events from
 * anonymous failures and their retention.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog } from '../src/audit/log.js';
import { deviceLabel } from '../src/sessions/device.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { Client, json, startServer } from './helpers.js';
import { PASSWORD, newEmail, signup, tokenLogin } from './token-helpers.js';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

describe('sessions per user (sessions.maxPerUser)', () => {
  it('a login past the cap ends the least recently used session, which is refused from then on and published as revoked', async () => {
    let clock = Date.now();
    const srv = await startServer({ sessions: { maxPerUser: 3 } }, { now: () => clock });
    try {
      const email = newEmail('cap');
      const a = new Client(srv.url);
      assert.equal((await a.signup(email, PASSWORD)).status, 201);
      const browsers = [a];
      for (let i = 0; i < 2; i++) {
        clock += 10_000;
        const c = new Client(srv.url);
        assert.equal((await c.login(email, PASSWORD)).status, 200);
        browsers.push(c);
      }
      const [first, second, third] = browsers as [Client, Client, Client];
      // read now, while reading does not count as use (inside the touch interval)
      const secondHandle = (await json<{ session: { handle: string } }>(await second.get('/v1/session'))).session.handle;
      // the oldest session is used again (past the touch interval), so the second is now the least recently used
      clock += 90_000;
      assert.equal((await first.get('/v1/session')).status, 200);
      const seq = await srv.lk.store.lastRevocationSeq();
      clock += 1000;
      const fourth = new Client(srv.url);
      assert.equal((await fourth.login(email, PASSWORD)).status, 200);

      assert.equal((await second.get('/v1/session')).status, 401);
      for (const c of [first, third, fourth]) assert.equal((await c.get('/v1/session')).status, 200);
      const list = await json<{ sessions: unknown[] }>(await fourth.get('/v1/sessions'));
      assert.equal(list.sessions.length, 3);
      const events = await srv.lk.store.listRevocations(seq, 10, 0);
      assert.deepEqual(
        events.map((e) => [e.kind, e.sid, e.detail]),
        [['session', secondHandle, { initiator: 'policy', reason: 'session_limit' }]],
      );

      // token clients' sessions count too
      const t = await tokenLogin(srv, email);
      assert.equal(t.status, 200);
      assert.equal((await srv.lk.store.listSessions((await json<{ user: { id: string } }>(await fourth.get('/v1/session'))).user.id)).length, 3);
    } finally {
      await srv.close();
    }
  });

  it('is 50 by default', async () => {
    const { parseConfig } = await import('../src/config.js');
    assert.equal(parseConfig({}).sessions.maxPerUser, 50);
    assert.throws(() => parseConfig({ sessions: { maxPerUser: 0 } }), /sessions\.maxPerUser/);
  });
});

describe('device labels', () => {
  it('come from a bounded set whatever the User-Agent names', () => {
    const labels = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const word = `X${i}${'q'.repeat(i % 7)}`;
      labels.add(deviceLabel(`Mozilla/5.0 (Linux; Android 14; ${word}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36`));
      labels.add(deviceLabel(`Mozilla/5.0 (${word} ${i}; U) AppleWebKit/537.36 (KHTML, like Gecko) ${word}/1.0 Safari/537.36`));
      labels.add(deviceLabel(`${word}/${i}.0 (${word}OS)`));
    }
    for (const l of labels) assert.doesNotMatch(l, /X\d/, `${l} carries a name from the User-Agent`);
    assert.ok(labels.size <= 5, [...labels].join(', '));
  });

  it('keep the common names', () => {
    assert.equal(deviceLabel(FIREFOX), 'Firefox on Linux');
    assert.equal(
      deviceLabel('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'),
      'Mobile Safari on iPhone',
    );
    assert.equal(
      deviceLabel('Mozilla/5.0 (Linux; Android 10; SM-G973F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36'),
      'Chrome on Android',
    );
    assert.equal(deviceLabel(undefined), 'Unknown device');
  });
});

describe('audit events', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-audit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let i = 0;
  const openStore = async () => {
    const store = new SqliteStore({ filename: join(dir, `a${++i}.sqlite`) });
    await store.migrate();
    return store;
  };

  it('anonymous failures past audit.anonymousPerMinute are counted, not written, and reported once a minute', async () => {
    const store = await openStore();
    let clock = Date.UTC(2026, 0, 1, 12, 0, 0);
    const audit = new AuditLog(store, () => clock, { anonymousPerMinute: 5 });
    for (let n = 0; n < 40; n++) await audit.record({ type: 'token_login_failed', ip: `192.0.2.${n}` });
    // events tied to an account have their own budget; the server's own and operators' actions have none
    for (let n = 0; n < 10; n++) await audit.record({ type: 'password_changed', userId: 'u_1', ip: '192.0.2.1' });
    for (let n = 0; n < 10; n++) await audit.record({ type: 'key_rotated', detail: { kid: 'k' } });
    for (let n = 0; n < 10; n++) await audit.record({ type: 'admin_user_enabled', userId: 'u_2', ip: '192.0.2.1' });
    assert.equal((await audit.list({ type: 'token_login_failed' })).length, 5);
    assert.equal((await audit.list({ type: 'password_changed' })).length, 10);
    assert.equal((await audit.list({ type: 'key_rotated' })).length, 10);
    assert.equal((await audit.list({ type: 'admin_user_enabled' })).length, 10);
    assert.equal((await audit.list({ type: 'audit_events_suppressed' })).length, 0);

    clock += 60_000;
    await audit.sweep();
    const [summary] = await audit.list({ type: 'audit_events_suppressed' });
    assert.deepEqual(summary?.detail, {
      since: Date.UTC(2026, 0, 1, 12, 0, 0) / 1000,
      until: Date.UTC(2026, 0, 1, 12, 1, 0) / 1000,
      counts: { token_login_failed: 35 },
    });
    // a new minute, a new budget
    for (let n = 0; n < 6; n++) await audit.record({ type: 'token_login_failed', ip: '192.0.2.9' });
    assert.equal((await audit.list({ type: 'token_login_failed' })).length, 10);
    await store.close();
  });

  it('one user’s events past audit.perUserPerMinute are counted, not written, and reported under that user', async () => {
    const store = await openStore();
    let clock = Date.UTC(2026, 0, 1, 12, 0, 30);
    const audit = new AuditLog(store, () => clock, { perUserPerMinute: 4 });
    for (let n = 0; n < 25; n++) await audit.record({ type: 'token_login_succeeded', userId: 'u_busy', session: `h${n}`, ip: '192.0.2.1' });
    for (let n = 0; n < 3; n++) await audit.record({ type: 'token_login_succeeded', userId: 'u_calm', ip: '192.0.2.2' });
    assert.equal((await audit.list({ userId: 'u_busy' })).length, 4);
    assert.equal((await audit.list({ userId: 'u_calm' })).length, 3);
    clock += 60_000;
    await audit.sweep();
    const [summary, ...none] = await audit.list({ type: 'audit_events_suppressed' });
    assert.equal(none.length, 0);
    assert.equal(summary?.userId, 'u_busy');
    assert.deepEqual(summary?.detail.counts, { token_login_succeeded: 21 });
    await store.close();
  });

  it('the sweep deletes events older than audit.retentionDays', async () => {
    const store = await openStore();
    let clock = Date.UTC(2026, 0, 1);
    const audit = new AuditLog(store, () => clock, { retentionDays: 2 });
    await audit.record({ type: 'key_rotated' });
    clock += 86_400_000;
    await audit.record({ type: 'key_retired' });
    clock += 86_400_000 + 1000;
    assert.equal(await audit.sweep(), 1);
    assert.deepEqual((await audit.list()).map((e) => e.type), ['key_retired']);
    await store.close();
  });

  it('failed token logins from anywhere write at most audit.anonymousPerMinute rows (over HTTP)', async () => {
    const srv = await startServer({ audit: { anonymousPerMinute: 3 }, rateLimit: { loginPerIp: 1000, loginPerAccount: 1000 } });
    try {
      const { email } = await signup(srv);
      for (let n = 0; n < 12; n++) {
        const res = await tokenLogin(srv, n % 2 ? email : newEmail('nobody'), { password: 'wrong password entirely' });
        assert.equal(res.status, 401);
      }
      assert.equal((await srv.lk.context.audit.list({ type: 'token_login_failed' })).length, 3);
    } finally {
      await srv.close();
    }
  });
});
