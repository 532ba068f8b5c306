/**
 * The account pages without a browser (app.inject): escaping, form errors,
 * CSRF refusals, redirects and headers. The browser behaviours (cookies,
 * cross-site forms, two devices) are in test/browser/account-pages.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { escapeHtml, html } from '../src/web/html.js';
import { accountPage } from '../src/web/pages/account.js';
import { CONTENT_SECURITY_POLICY, safeNext } from '../src/web/routes.js';
import { PRESESSION_COOKIE } from '../src/web/form-tokens.js';
import { stylesheet } from '../src/web/assets.js';
import type { SqliteStore } from '../src/store/sqlite/index.js';
import { startServer, type TestServer } from './helpers.js';

const PASSWORD = 'correct horse battery staple';
const COOKIE = '__Host-latchkey';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

let srv: TestServer;
let app: FastifyInstance;
before(async () => {
  srv = await startServer();
  app = srv.lk.http;
});
after(() => srv.close());

let n = 0;
const newEmail = () => `web.${++n}.${process.pid}@example.com`;
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const cookieHeader = (jar: Record<string, string>) => Object.entries(jar).map(([k, v]) => `${k}=${v}`).join('; ');
const csrfIn = (body: string) => /name="_csrf" value="([^"]+)"/.exec(body)?.[1];

/** A signed-up account: its session cookie and the account page's form token. */
async function signedIn(email = newEmail()) {
  const res = await app.inject({ method: 'POST', url: '/v1/signup', payload: { email, password: PASSWORD } });
  assert.equal(res.statusCode, 201);
  const secret = res.cookies.find((c) => c.name === COOKIE)!.value;
  const jar = { [COOKIE]: secret };
  const page = await app.inject({ method: 'GET', url: '/account', headers: { cookie: cookieHeader(jar) } });
  assert.equal(page.statusCode, 200);
  return { email, jar, csrf: csrfIn(page.body)!, userId: (res.json() as { user: { id: string } }).user.id };
}

/** A signed-out visitor's form token and the cookie it is paired with. */
async function presession(url = '/signin') {
  const res = await app.inject({ method: 'GET', url });
  const cookie = res.cookies.find((c) => c.name === PRESESSION_COOKIE)!;
  return { jar: { [PRESESSION_COOKIE]: cookie.value }, csrf: csrfIn(res.body)! };
}

describe('escaping', () => {
  it('escapes & < > " and \' in every interpolation', () => {
    assert.equal(escapeHtml(`<a href="x">Tom & 'Jerry'</a>`), '&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;');
    const evil = '"><script>alert(1)</script>';
    assert.equal(html`<input value="${evil}">`.value, '<input value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">');
    assert.equal(html`<ul>${['<a>', html`<li>ok</li>`]}</ul>`.value, '<ul>&lt;a&gt;<li>ok</li></ul>');
    assert.equal(html`${false}${null}${undefined}${0}`.value, '0');
  });

  it('a device label or IP with markup is shown as text on the account page', () => {
    const page = accountPage({
      viewer: { email: 'a&b@example.com', csrf: 'tok' },
      memberSince: 0,
      now: 1000,
      sessions: [{ handle: 'h"><x', device: '<img src=x onerror=alert(1)>', ip: '<b>1.2.3.4</b>', createdAt: 0, lastSeenAt: 990, current: false }],
    });
    assert.ok(!page.includes('<img src=x'));
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(page.includes('&lt;b&gt;1.2.3.4&lt;/b&gt;'));
    assert.ok(page.includes('a&amp;b@example.com'));
    assert.ok(page.includes('/account/sessions/h%22%3E%3Cx/signout'));
  });

  it('an email like <script>@x.io is refused at sign-up and echoed only escaped', async () => {
    const { jar, csrf } = await presession('/signup');
    const res = await app.inject({
      method: 'POST',
      url: '/signup',
      headers: { ...FORM, cookie: cookieHeader(jar) },
      payload: form({ _csrf: csrf, email: '<script>@x.io', password: PASSWORD }),
    });
    assert.equal(res.statusCode, 400);
    assert.ok(!res.body.includes('<script>'));
    assert.ok(res.body.includes('value="&lt;script&gt;@x.io"'));
    assert.match(res.body, /id="email-error"[^>]*>.*contains a character that is not allowed/);
    assert.match(res.body, /aria-describedby="email-error" aria-invalid="true"/);
    assert.equal(await srv.lk.store.getUserByEmail('<script>@x.io'), undefined);
  });
});

describe('headers', () => {
  it('pages carry a strict CSP, no-store and the other security headers', async () => {
    const res = await app.inject({ method: 'GET', url: '/signin' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe|script-src/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin');
    assert.match(String(res.headers['permissions-policy']), /camera=\(\)/);
    assert.doesNotMatch(res.body, /<script|\sstyle=|\son[a-z]+=/i);
  });

  it('the stylesheet has a content-hashed URL, is cached for good and answers 304 to its ETag', async () => {
    const res = await app.inject({ method: 'GET', url: stylesheet.path });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    const again = await app.inject({ method: 'GET', url: stylesheet.path, headers: { 'if-none-match': String(res.headers.etag) } });
    assert.equal(again.statusCode, 304);
  });
});

describe('redirects', () => {
  it('GET / and signed-in pages send a signed-out visitor to sign-in', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/' })).headers.location, '/signin');
    assert.equal((await app.inject({ method: 'GET', url: '/account' })).headers.location, '/signin');
    const pw = await app.inject({ method: 'GET', url: '/account/password' });
    assert.equal(pw.statusCode, 303);
    assert.equal(pw.headers.location, '/signin?next=%2Faccount%2Fpassword');
  });

  it('a dead session cookie is cleared and the visitor told they were signed out', async () => {
    const { jar } = await signedIn();
    await srv.lk.context.sessions.endBySecret(jar[COOKIE]!, 'revoked');
    const res = await app.inject({ method: 'GET', url: '/account', headers: { cookie: cookieHeader(jar) } });
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers.location, '/signin?ended=1');
    assert.equal(res.cookies.find((c) => c.name === COOKIE)?.maxAge, 0);
    const page = await app.inject({ method: 'GET', url: '/signin?ended=1' });
    assert.match(page.body, /role="status"><p>You were signed out\. Sign in again\.<\/p>/);
  });

  it('returns to a local `next` after sign-in, never to another host', async () => {
    assert.equal(safeNext('/app/orders?x=1'), '/app/orders?x=1');
    for (const bad of ['//evil.example', '/\\evil.example', 'https://evil.example', '/a\nb', 'evil', '', undefined, ['/a']]) {
      assert.equal(safeNext(bad), undefined, String(bad));
    }
    const email = newEmail();
    await signedIn(email);
    for (const [next, expected] of [
      ['/app/orders', '/app/orders'],
      ['//evil.example/x', '/account'],
    ] as const) {
      const { jar, csrf } = await presession();
      const res = await app.inject({
        method: 'POST',
        url: '/signin',
        headers: { ...FORM, cookie: cookieHeader(jar) },
        payload: form({ _csrf: csrf, email, password: PASSWORD, next }),
      });
      assert.equal(res.statusCode, 303);
      assert.equal(res.headers.location, expected);
    }
  });
});

describe('form errors', () => {
  it('sign-in: wrong password and unknown email answer the same page', async () => {
    const { email } = await signedIn();
    const attempt = async (e: string) => {
      const { jar, csrf } = await presession();
      return app.inject({
        method: 'POST',
        url: '/signin',
        headers: { ...FORM, cookie: cookieHeader(jar) },
        payload: form({ _csrf: csrf, email: e, password: 'wrong password here' }),
      });
    };
    const wrong = await attempt(email);
    const unknown = await attempt('nobody.' + email);
    assert.equal(wrong.statusCode, 401);
    assert.equal(unknown.statusCode, 401);
    const strip = (b: string) => b.replace(/value="[^"]*"/g, '');
    assert.equal(strip(wrong.body), strip(unknown.body));
    assert.match(wrong.body, /role="alert" id="form-error"><p>Email or password is incorrect\.<\/p>/);
    assert.equal(wrong.cookies.find((c) => c.name === COOKIE), undefined);
  });

  it('empty fields are named, each next to its field', async () => {
    const { jar, csrf } = await presession();
    const res = await app.inject({
      method: 'POST',
      url: '/signin',
      headers: { ...FORM, cookie: cookieHeader(jar) },
      payload: form({ _csrf: csrf, email: '', password: '' }),
    });
    assert.equal(res.statusCode, 400);
    assert.match(res.body, /id="email-error"[^>]*>.*Enter your email address\./);
    assert.match(res.body, /id="password-error"[^>]*>.*Enter your password\./);
  });

  it('sign-up: a taken email says so next to the email field', async () => {
    const { email } = await signedIn();
    const { jar, csrf } = await presession('/signup');
    const res = await app.inject({
      method: 'POST',
      url: '/signup',
      headers: { ...FORM, cookie: cookieHeader(jar) },
      payload: form({ _csrf: csrf, email, password: 'another fine passphrase' }),
    });
    assert.equal(res.statusCode, 409);
    assert.match(res.body, /id="email-error"[^>]*>.*already exists/);
  });

  it('password change: the current password as the new one is refused on the form, and nothing changes', async () => {
    const a = await signedIn();
    const before = (await srv.lk.store.getUserByEmail(a.email))!.passwordHash;
    const res = await app.inject({
      method: 'POST',
      url: '/account/password',
      headers: { ...FORM, cookie: cookieHeader(a.jar) },
      payload: form({ _csrf: a.csrf, currentPassword: PASSWORD, newPassword: PASSWORD }),
    });
    assert.equal(res.statusCode, 400);
    assert.match(res.body, /id="newPassword-error"[^>]*>.*different from your current one/);
    assert.equal((await srv.lk.store.getUserByEmail(a.email))!.passwordHash, before);
  });

  it('password change: after too many wrong current passwords the page says to wait, with Retry-After', async () => {
    const a = await signedIn();
    const change = (currentPassword: string) =>
      app.inject({
        method: 'POST',
        url: '/account/password',
        headers: { ...FORM, cookie: cookieHeader(a.jar) },
        payload: form({ _csrf: a.csrf, currentPassword, newPassword: 'a brand new secret' }),
      });
    const limit = srv.config.rateLimit.loginPerAccount;
    for (let i = 0; i < limit; i++) assert.equal((await change(`guess number ${i}`)).statusCode, 400);
    const blocked = await change(PASSWORD);
    assert.equal(blocked.statusCode, 429);
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    assert.match(blocked.body, /Too many wrong passwords\. Try again in/);
  });
});

describe('CSRF on the pages (negative first)', () => {
  const signoutOthers = async (jar: Record<string, string>, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/account/sessions/signout-others', headers: { ...FORM, cookie: cookieHeader(jar), ...headers }, payload: form(fields) });

  it('a signed-in form without the session-bound token, or with another session\'s, is refused and changes nothing', async () => {
    const a = await signedIn();
    const other = await app.inject({ method: 'POST', url: '/v1/login', payload: { email: a.email, password: PASSWORD } });
    assert.equal(other.statusCode, 200);
    const b = await signedIn();
    for (const fields of [{}, { _csrf: '' }, { _csrf: 'x'.repeat(43) }, { _csrf: b.csrf }] as Record<string, string>[]) {
      const res = await signoutOthers(a.jar, fields);
      assert.equal(res.statusCode, 403, JSON.stringify(fields));
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(res.body, /This request was refused/);
    }
    assert.equal((await srv.lk.context.sessions.list(a.userId)).length, 2);
    // the right token works
    const ok = await signoutOthers(a.jar, { _csrf: a.csrf });
    assert.equal(ok.statusCode, 303);
    assert.equal((await srv.lk.context.sessions.list(a.userId)).length, 1);
  });

  it('a cross-site POST is refused before the session is looked at, even with the right token', async () => {
    const a = await signedIn();
    await app.inject({ method: 'POST', url: '/v1/login', payload: { email: a.email, password: PASSWORD } });
    for (const headers of [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: 'https://sub.localhost' },
    ] as Record<string, string>[]) {
      const res = await signoutOthers(a.jar, { _csrf: a.csrf }, headers);
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
    }
    assert.equal((await srv.lk.context.sessions.list(a.userId)).length, 2);
  });

  it('sign-in without the pre-session cookie, or with a token that does not match it, signs nobody in', async () => {
    const { email } = await signedIn();
    const { jar, csrf } = await presession();
    const cases = [
      { cookie: '', token: csrf },
      { cookie: cookieHeader(jar), token: '' },
      { cookie: cookieHeader(jar), token: (await presession()).csrf },
    ];
    for (const c of cases) {
      const res = await app.inject({
        method: 'POST',
        url: '/signin',
        headers: { ...FORM, ...(c.cookie ? { cookie: c.cookie } : {}) },
        payload: form({ _csrf: c.token, email, password: PASSWORD }),
      });
      assert.equal(res.statusCode, 403);
      assert.match(res.body, /This form had expired/);
      assert.equal(res.cookies.find((x) => x.name === COOKIE), undefined);
    }
    const crossSite = await app.inject({
      method: 'POST',
      url: '/signin',
      headers: { ...FORM, cookie: cookieHeader(jar), 'sec-fetch-site': 'cross-site' },
      payload: form({ _csrf: csrf, email, password: PASSWORD }),
    });
    assert.equal(crossSite.statusCode, 403);
    assert.equal(crossSite.cookies.find((x) => x.name === COOKIE), undefined);
  });

  it('only form bodies are accepted: JSON and text/plain get 415', async () => {
    const a = await signedIn();
    for (const [type, payload] of [
      ['application/json', JSON.stringify({ _csrf: a.csrf })],
      ['text/plain', `_csrf=${a.csrf}`],
    ] as const) {
      const res = await app.inject({
        method: 'POST',
        url: '/account/sessions/signout-others',
        headers: { 'content-type': type, cookie: cookieHeader(a.jar) },
        payload,
      });
      assert.equal(res.statusCode, 415, type);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    }
  });

  it('a handle of another user\'s session ends nothing', async () => {
    const a = await signedIn();
    const b = await signedIn();
    const [bSession] = await srv.lk.context.sessions.list(b.userId);
    const handle = srv.lk.context.sessions.handle(bSession!);
    const res = await app.inject({
      method: 'POST',
      url: `/account/sessions/${handle}/signout`,
      headers: { ...FORM, cookie: cookieHeader(a.jar) },
      payload: form({ _csrf: a.csrf }),
    });
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers.location, '/account?notice=gone');
    assert.equal((await srv.lk.context.sessions.list(b.userId)).length, 1);
  });
});

describe('client input that once made a 500', () => {
  const sessionRows = () => ((srv.lk.store as SqliteStore).db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n;

  it('a form token with a multibyte character (43 UTF-16 units, more bytes) is refused with 403 and ends nothing', async () => {
    const a = await signedIn();
    await app.inject({ method: 'POST', url: '/v1/login', payload: { email: a.email, password: PASSWORD } });
    const before = sessionRows();
    for (const token of ['é' + 'x'.repeat(42), '中'.repeat(43), '\u{1F600}'.repeat(21) + 'x']) {
      const res = await fetch(`${srv.url}/account/sessions/signout-others`, {
        method: 'POST',
        headers: { ...FORM, cookie: cookieHeader(a.jar) },
        body: form({ _csrf: token }),
        redirect: 'manual',
      });
      assert.equal(res.status, 403, token);
      assert.match(await res.text(), /This request was refused/);
    }
    assert.equal(sessionRows(), before);
    assert.equal((await srv.lk.context.sessions.list(a.userId)).length, 2);
  });

  it('a non-ASCII next is percent-encoded in Location, after sign-in and for a signed-in visitor', async () => {
    const a = await signedIn();
    const { jar, csrf } = await presession();
    const before = sessionRows();
    const res = await fetch(`${srv.url}/signin`, {
      method: 'POST',
      headers: { ...FORM, cookie: cookieHeader(jar) },
      body: form({ _csrf: csrf, email: a.email, password: PASSWORD, next: '/中/é?q=ü#ß' }),
      redirect: 'manual',
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/%E4%B8%AD/%C3%A9?q=%C3%BC#%C3%9F');
    assert.equal(sessionRows(), before + 1);
    const again = await fetch(`${srv.url}/signin?next=/%E4%B8%AD`, { headers: { cookie: cookieHeader(a.jar) }, redirect: 'manual' });
    assert.equal(again.status, 303);
    assert.equal(again.headers.get('location'), '/%E4%B8%AD');
  });

  it('safeNext refuses C1 controls and unpaired surrogates rather than encode them', () => {
    for (const bad of ['/a\u0085b', '/a\u009bb', '/a\ud800b', '/a\udc00']) assert.equal(safeNext(bad), undefined, JSON.stringify(bad));
    assert.equal(safeNext('/\u{1F600}'), '/%F0%9F%98%80');
  });
});
