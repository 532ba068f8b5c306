import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MISS } from '../src/sessions/service.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { Client, json, startServer, type TestServer } from './helpers.js';

const COOKIE = '__Host-latchkey';
let clock = Date.now();
let srv: TestServer;

before(async () => {
  srv = await startServer(
    { sessions: { idleTimeoutSeconds: 600, absoluteLifetimeSeconds: 3600, touchIntervalSeconds: 30 } },
    { now: () => clock },
  );
});
after(() => srv.close());

let n = 0;
const newEmail = () => `s${++n}.${process.pid}@example.com`;

async function signedIn(): Promise<{ c: Client; email: string }> {
  const c = new Client(srv.url);
  const email = newEmail();
  assert.equal((await c.signup(email)).status, 201);
  return { c, email };
}

describe('session cookie', () => {
  it('is __Host- prefixed, HttpOnly, Secure, SameSite=Lax, Path=/, no Domain', async () => {
    const c = new Client(srv.url);
    await c.signup(newEmail());
    const sc = c.lastSetCookie.find((s) => s.startsWith(`${COOKIE}=`));
    assert.ok(sc, 'sets the session cookie');
    const attrs = sc.split(';').map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes('httponly'));
    assert.ok(attrs.includes('secure'));
    assert.ok(attrs.includes('samesite=lax'));
    assert.ok(attrs.includes('path=/'));
    assert.ok(!attrs.some((a) => a.startsWith('domain=')));
    assert.match(c.cookies.get(COOKIE)!, /^[A-Za-z0-9_-]{43}$/);
  });

  it('uses SameSite=Strict and a custom name when configured', async () => {
    const s2 = await startServer({ sessions: { sameSite: 'strict', cookieName: '__Host-app' } });
    try {
      const c = new Client(s2.url);
      await c.signup('strict@example.com');
      const sc = c.lastSetCookie.find((s) => s.startsWith('__Host-app='));
      assert.ok(sc);
      assert.match(sc, /SameSite=Strict/i);
      assert.equal((await c.get('/v1/session')).status, 200);
    } finally {
      await s2.close();
    }
  });

  it('never stores the secret: the database holds only its SHA-256', async () => {
    const { c } = await signedIn();
    const secret = c.cookies.get(COOKIE)!;
    const db = (srv.lk.store as unknown as { db: { prepare(q: string): { all(): { id_hash: Buffer }[] } } }).db;
    const hashes = db.prepare('SELECT id_hash FROM sessions').all().map((r) => r.id_hash);
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256').update(secret).digest();
    assert.ok(hashes.some((x) => x.equals(h)));
    assert.ok(!hashes.some((x) => x.toString().includes(secret)));
  });
});

describe('session lifecycle', () => {
  it('gives a new session ID on every login (fixation) and ends the one presented', async () => {
    const { c, email } = await signedIn();
    const first = c.cookies.get(COOKIE)!;
    const attacker = new Client(srv.url);
    attacker.cookies.set(COOKIE, first);
    assert.equal((await c.login(email)).status, 200);
    const second = c.cookies.get(COOKIE)!;
    assert.notEqual(second, first);
    assert.equal((await attacker.get('/v1/session')).status, 401, 'the pre-login ID is dead');
    assert.equal((await c.get('/v1/session')).status, 200);
  });

  it('a planted, unknown cookie value is not adopted at login', async () => {
    const c = new Client(srv.url);
    const email = newEmail();
    await c.signup(email);
    const planted = 'A'.repeat(43);
    const victim = new Client(srv.url);
    victim.cookies.set(COOKIE, planted);
    await victim.login(email);
    assert.notEqual(victim.cookies.get(COOKIE), planted);
  });

  it('refuses a cookie that cannot be a session ID without reading the store', async () => {
    const { c } = await signedIn();
    assert.equal((await c.get('/v1/session')).status, 200);
    const store = srv.lk.store;
    const getSession = store.getSession.bind(store);
    let reads = 0;
    store.getSession = (idHash) => {
      reads++;
      return getSession(idHash);
    };
    try {
      const secret = c.cookies.get(COOKIE)!;
      // a secret's length outside its alphabet, and the alphabet at another length
      for (const bad of [`${secret.slice(0, 42)}!`, `${secret}A`, secret.slice(0, 42)]) {
        const forged = new Client(srv.url);
        forged.cookies.set(COOKIE, bad);
        assert.equal((await forged.get('/v1/session')).status, 401, bad);
      }
      assert.equal(reads, 0, 'no store read for a cookie of the wrong shape');
      // an unknown value of the right shape is asked of the store, and refused
      const unknown = new Client(srv.url);
      unknown.cookies.set(COOKIE, 'B'.repeat(43));
      assert.equal((await unknown.get('/v1/session')).status, 401);
      assert.equal(reads, 1);
    } finally {
      store.getSession = getSession;
    }
  });

  it('refuses a logged-out session on its very next request', async () => {
    const { c } = await signedIn();
    const stolen = new Client(srv.url);
    stolen.cookies.set(COOKIE, c.cookies.get(COOKIE)!);
    assert.equal((await stolen.get('/v1/session')).status, 200);
    assert.equal((await c.post('/v1/logout')).status, 204);
    assert.equal(c.cookies.has(COOKIE), false, 'logout clears the cookie');
    const res = await stolen.get('/v1/session');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  it('refuses a revoked session on its very next request', async () => {
    const { c, email } = await signedIn();
    const laptop = new Client(srv.url);
    await laptop.login(email);
    assert.equal((await laptop.get('/v1/session')).status, 200);
    const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await c.get('/v1/sessions'));
    assert.equal(list.sessions.length, 2);
    assert.equal(list.sessions.filter((s) => s.current).length, 1);
    const other = list.sessions.find((s) => !s.current)!;
    assert.equal((await c.delete(`/v1/sessions/${other.handle}`)).status, 204);
    assert.equal((await laptop.get('/v1/session')).status, 401);
    assert.equal((await c.get('/v1/session')).status, 200);
  });

  it('sees a revocation written by another process (the CLI, another node) once its feed reads the event', async () => {
    const { c } = await signedIn();
    assert.equal((await c.get('/v1/session')).status, 200);
    const other = new SqliteStore({ filename: join(srv.config.dataDir, 'latchkey.sqlite') });
    await other.migrate();
    const { createHash } = await import('node:crypto');
    assert.ok(await other.deleteSession(createHash('sha256').update(c.cookies.get(COOKIE)!).digest()));
    await other.close();
    // the feed polls every 250 ms of real time (the injected clock does not drive it); the bound
    // across processes is measured in sessions.cluster.test.ts
    const deadline = Date.now() + 10_000;
    for (;;) {
      const status = (await c.get('/v1/session')).status;
      if (status === 401) break;
      assert.equal(status, 200);
      assert.ok(Date.now() < deadline, 'still accepted after 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('an event loop too busy to run timers still trusts cached sessions (the feed is checked on the request), and still refuses one another process ended', async () => {
    const { c, email } = await signedIn();
    assert.equal((await c.get('/v1/session')).status, 200);
    const secret = c.cookies.get(COOKIE)!;
    const sessions = srv.lk.sessions;
    // a synchronous stretch past the trust window: the feed's timer cannot run, as under a flood of requests
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    spin(1100);
    const hit = sessions.authenticateCached(secret);
    assert.notEqual(hit, MISS, 'answered from the cache');
    assert.equal((hit as { user: { email: string } }).user.email, email);
    // another process ends it: the same check sees its write, and nothing is trusted until the feed has read it
    const other = new SqliteStore({ filename: join(srv.config.dataDir, 'latchkey.sqlite') });
    try {
      await other.migrate();
      assert.ok(await other.deleteSession(createHash('sha256').update(secret).digest()));
    } finally {
      await other.close();
    }
    spin(1100);
    assert.equal(sessions.authenticateCached(secret), MISS);
    assert.equal(await sessions.authenticate(secret, '127.0.0.1'), undefined);
  });

  it('the session handle is not the secret and cannot be used as a cookie', async () => {
    const { c } = await signedIn();
    const me = await json<{ session: { handle: string } }>(await c.get('/v1/session'));
    const secret = c.cookies.get(COOKIE)!;
    assert.ok(!secret.includes(me.session.handle));
    const forged = new Client(srv.url);
    forged.cookies.set(COOKIE, me.session.handle);
    assert.equal((await forged.get('/v1/session')).status, 401);
  });

  it('cannot end someone else’s session by handle', async () => {
    const a = await signedIn();
    const b = await signedIn();
    const bHandle = (await json<{ session: { handle: string } }>(await b.c.get('/v1/session'))).session.handle;
    assert.equal((await a.c.delete(`/v1/sessions/${bHandle}`)).status, 404);
    assert.equal((await a.c.delete('/v1/sessions/not-a-handle')).status, 404);
    assert.equal((await b.c.get('/v1/session')).status, 200);
  });

  it('"sign out everywhere else" keeps only the current session', async () => {
    const { c, email } = await signedIn();
    const others = [new Client(srv.url), new Client(srv.url)];
    for (const o of others) await o.login(email);
    const res = await json<{ revoked: number }>(await c.post('/v1/sessions/revoke-others'));
    assert.equal(res.revoked, 2);
    for (const o of others) assert.equal((await o.get('/v1/session')).status, 401);
    assert.equal((await c.get('/v1/session')).status, 200);
  });

  it('records device label, IP and times', async () => {
    const c = new Client(srv.url, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1');
    await c.signup(newEmail());
    const me = await json<{ session: Record<string, unknown> }>(await c.get('/v1/session'));
    assert.match(String(me.session.device), /Safari/);
    assert.equal(me.session.ip, '127.0.0.1');
    assert.ok(Date.parse(String(me.session.createdAt)) > 0);
    assert.ok(Date.parse(String(me.session.lastSeenAt)) > 0);
  });
});

describe('expiry', () => {
  it('ends a session after the idle timeout', async () => {
    const { c } = await signedIn();
    clock += 599_000;
    assert.equal((await c.get('/v1/session')).status, 200, 'still alive inside the idle window');
    clock += 599_000;
    assert.equal((await c.get('/v1/session')).status, 200, 'activity slid the idle window');
    clock += 601_000;
    assert.equal((await c.get('/v1/session')).status, 401, 'idle too long');
  });

  it('ends a session at its absolute lifetime despite activity', async () => {
    const { c } = await signedIn();
    for (let i = 0; i < 6; i++) {
      clock += 590_000;
      assert.equal((await c.get('/v1/session')).status, 200);
    }
    clock += 590_000; // 3540 + 590 > 3600
    assert.equal((await c.get('/v1/session')).status, 401);
  });

  it('throttles last-seen writes: reads inside the touch interval do not write', async () => {
    const { c } = await signedIn();
    const before = (await json<{ session: { lastSeenAt: string } }>(await c.get('/v1/session'))).session.lastSeenAt;
    clock += 10_000;
    const mid = (await json<{ session: { lastSeenAt: string } }>(await c.get('/v1/session'))).session.lastSeenAt;
    assert.equal(mid, before);
    clock += 25_000;
    const later = (await json<{ session: { lastSeenAt: string } }>(await c.get('/v1/session'))).session.lastSeenAt;
    assert.ok(Date.parse(later) > Date.parse(before));
  });
});

describe('password change', () => {
  it('needs the current password, ends every other session and renews this one', async () => {
    const { c, email } = await signedIn();
    const phone = new Client(srv.url);
    await phone.login(email);
    const old = c.cookies.get(COOKIE);
    const wrong = await c.post('/v1/password', { currentPassword: 'nope nope nope', newPassword: 'a brand new secret' });
    assert.equal(wrong.status, 401);
    assert.equal((await phone.get('/v1/session')).status, 200, 'a failed change ends nothing');
    const ok = await c.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'a brand new secret' });
    assert.equal(ok.status, 200);
    assert.equal((await json<{ endedSessions: number }>(ok)).endedSessions, 1);
    assert.notEqual(c.cookies.get(COOKIE), old);
    assert.equal((await phone.get('/v1/session')).status, 401);
    assert.equal((await c.get('/v1/session')).status, 200);
    assert.equal((await new Client(srv.url).login(email, 'correct horse battery staple')).status, 401);
    assert.equal((await new Client(srv.url).login(email, 'a brand new secret')).status, 200);
  });

  it('refuses a weak new password with a reason', async () => {
    const { c } = await signedIn();
    const res = await c.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'password1' });
    assert.equal(res.status, 400);
    const body = await json<{ code: string; errors: { pointer: string }[] }>(res);
    assert.equal(body.code, 'weak_password');
    assert.equal(body.errors[0]!.pointer, '/password');
  });
});

describe('CSRF', () => {
  it('refuses cross-site state changes by Sec-Fetch-Site and by Origin, changing nothing', async () => {
    const { c } = await signedIn();
    for (const headers of <Record<string, string>[]>[
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'http://evil.example' },
      { 'sec-fetch-site': 'same-site', origin: 'http://sub.localhost:1' },
      { origin: 'null' },
    ]) {
      const res = await c.post('/v1/sessions/revoke-others', undefined, headers);
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.equal((await json(res)).code, 'csrf_failed');
      const out = await c.post('/v1/logout', undefined, headers);
      assert.equal(out.status, 403);
    }
    assert.equal((await c.get('/v1/session')).status, 200, 'still signed in');
  });

  it('refuses cross-site login (login CSRF)', async () => {
    const c = new Client(srv.url);
    const res = await c.post('/v1/login', { email: 'a@example.com', password: 'whatever' }, { 'sec-fetch-site': 'cross-site' });
    assert.equal(res.status, 403);
  });

  it('accepts same-origin browser requests', async () => {
    const { c } = await signedIn();
    const res = await c.post('/v1/sessions/revoke-others', undefined, { 'sec-fetch-site': 'same-origin', origin: srv.config.issuer });
    assert.equal(res.status, 200);
    const res2 = await c.post('/v1/sessions/revoke-others', undefined, { origin: srv.config.issuer });
    assert.equal(res2.status, 200);
  });

  it('a form-encoded body (what a cross-site form can send) is refused', async () => {
    const { c } = await signedIn();
    const res = await c.post('/v1/sessions/revoke-others', 'x=1', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(res.status, 415);
  });
});

describe('bad input', () => {
  it('answers malformed, oversized and wrong-type bodies with 4xx problem+json and writes nothing', async () => {
    const c = new Client(srv.url);
    const cases: [unknown, Record<string, string>, number][] = [
      ['{"email": "x@example.com", "password": ', {}, 400],
      [{ email: 42, password: 'x' }, {}, 400],
      [{ email: 'x@example.com' }, {}, 400],
      [{ email: 'x@example.com', password: 'correct horse battery', admin: true }, {}, 400],
      [[1, 2, 3], {}, 400],
      ['', {}, 400],
      [{ email: 'x@example.com', password: 'p'.repeat(20000) }, {}, 413],
      ['email=x', { 'content-type': 'text/plain' }, 415],
      ['<xml/>', { 'content-type': 'application/xml' }, 415],
    ];
    for (const [body, headers, status] of cases) {
      const res = await c.post('/v1/signup', body, headers);
      assert.equal(res.status, status, `${JSON.stringify(body).slice(0, 60)} -> ${status}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const p = await json<{ type: string; code: string; status: number }>(res);
      assert.equal(p.status, status);
      assert.match(p.type, /^urn:latchkey:problem:/);
    }
    assert.equal(await srv.lk.store.getUserByEmail('x@example.com'), undefined);
  });

  it('answers unknown routes and bad handles with problem+json', async () => {
    const c = new Client(srv.url);
    const res = await c.get('/nope');
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  it('refuses an invalid email and a taken email', async () => {
    const c = new Client(srv.url);
    for (const email of ['no-at-sign', 'a@b', '<script>@x.io', 'a b@example.com', '@example.com']) {
      const res = await c.signup(email);
      assert.equal(res.status, 400, email);
      assert.equal((await json(res)).code, 'invalid_email');
    }
    const email = newEmail();
    await c.signup(email);
    const dup = await new Client(srv.url).signup(email.toUpperCase());
    assert.equal(dup.status, 409);
  });
});
