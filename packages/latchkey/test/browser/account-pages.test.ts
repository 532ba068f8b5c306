/// <reference lib="dom" />
// page.evaluate callbacks run in the page: they see the DOM's globals
/**
 * The account pages in a real browser (Debian's Chromium via playwright-core).
 * Two browser contexts are two devices: separate cookie jars, as two
 * browsers would have. The pages are served on http://localhost, which
 * Chromium treats as a secure context, so `Secure` and `__Host-` cookies
 * behave as they do over HTTPS.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Locator, Page, Response } from 'playwright-core';
import { startServer, type TestServer } from '../helpers.js';
import { DOCS_SCREENSHOT, LAPTOP_UA, PHONE_UA, SCREENSHOT_DIR, UPDATE_DOCS_SCREENSHOT, launch, shot } from './browser.js';

const PASSWORD = 'correct horse battery staple';
const COOKIE = '__Host-latchkey';

let browser: Browser;
let srv: TestServer;
let origin: string;
/** Every request the server answered: proof that a refused request reached it and what it got. */
const answered: { method: string; url: string; status: number }[] = [];

before(async () => {
  srv = await startServer(
    {},
    {
      plugins: [
        async (app) => {
          app.addHook('onResponse', (request, reply, done) => {
            answered.push({ method: request.method, url: request.url, status: reply.statusCode });
            done();
          });
        },
      ],
    },
  );
  origin = srv.config.issuer;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

let n = 0;
const newEmail = (name = 'user') => `${name}.${++n}.${process.pid}@example.com`;

function laptop(): Promise<BrowserContext> {
  return browser.newContext({ userAgent: LAPTOP_UA, viewport: { width: 1100, height: 760 } });
}
function phone(): Promise<BrowserContext> {
  return browser.newContext({ userAgent: PHONE_UA, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
}

/** Click and wait for the page it leads to; the answer of the last request in the chain. */
async function submit(page: Page, button: Locator): Promise<Response> {
  const [response] = await Promise.all([page.waitForNavigation(), button.click()]);
  assert.ok(response, 'the click navigated');
  return response;
}

async function signUp(page: Page, email: string, password = PASSWORD): Promise<Response> {
  await page.goto(`${origin}/signup`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  return submit(page, page.getByRole('button', { name: 'Create account' }));
}

async function signIn(page: Page, email: string, password = PASSWORD): Promise<Response> {
  await page.goto(`${origin}/signin`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  return submit(page, page.getByRole('button', { name: 'Sign in', exact: true }));
}

const path = (page: Page) => {
  const u = new URL(page.url());
  return u.pathname + u.search;
};
const rows = (page: Page) => page.locator('.sessions > li');
const thisDevice = (page: Page) => page.locator('.sessions > li.session-current');
const otherDevices = (page: Page) => page.locator('.sessions > li:not(.session-current)');

/** Two devices of one new account, both on the account page. */
async function twoDevices(email = newEmail()) {
  const a = await laptop();
  const b = await phone();
  const pa = await a.newPage();
  const pb = await b.newPage();
  await signUp(pa, email);
  await signIn(pb, email);
  await pa.reload();
  return { a, b, pa, pb, email };
}

describe('devices and sessions', () => {
  it('two devices both sign in, both are listed, and each is marked "This device" on its own page', async () => {
    const a = await laptop();
    const b = await phone();
    // a CSP violation (an inline style, say) or a missing asset shows up as a console error
    const consoleErrors: string[] = [];
    for (const c of [a, b]) c.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    try {
      const pa = await a.newPage();
      const pb = await b.newPage();
      await pa.goto(`${origin}/signin`);
      await shot(pa, 'signin');
      await pa.goto(`${origin}/signup`);
      await shot(pa, 'signup');
      await signUp(pa, 'ada@example.com');
      assert.equal(path(pa), '/account?notice=welcome');
      await assert.doesNotReject(pa.getByRole('status').filter({ hasText: 'Your account is ready' }).waitFor());

      // the phone signs in with the keyboard alone: the email field has focus on load
      await pb.goto(`${origin}/signin`);
      assert.equal(await pb.evaluate(() => document.activeElement?.id), 'email');
      await pb.keyboard.type('ada@example.com');
      await pb.keyboard.press('Tab');
      await pb.keyboard.type(PASSWORD);
      await Promise.all([pb.waitForNavigation(), pb.keyboard.press('Enter')]);
      assert.equal(path(pb), '/account');

      await pa.goto(`${origin}/account`);
      assert.equal(await rows(pa).count(), 2);
      assert.match(await thisDevice(pa).innerText(), /Chrome on Linux\s+This device/);
      assert.match(await otherDevices(pa).innerText(), /Mobile Safari on iPhone/);
      assert.match(await otherDevices(pa).innerText(), /127\.0\.0\.1/);
      assert.match(await otherDevices(pa).innerText(), /Signed in/);
      assert.match(await otherDevices(pa).innerText(), /Active now/);
      await shot(pa, 'account');
      if (UPDATE_DOCS_SCREENSHOT) {
        mkdirSync(dirname(DOCS_SCREENSHOT), { recursive: true });
        copyFileSync(join(SCREENSHOT_DIR, 'account.png'), DOCS_SCREENSHOT);
      }

      await pb.reload();
      assert.equal(await rows(pb).count(), 2);
      assert.match(await thisDevice(pb).innerText(), /Mobile Safari on iPhone\s+This device/);
      // usable at phone width: nothing wider than the screen
      assert.ok(await pb.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling at 390 px');
      await shot(pb, 'account-phone');
      assert.deepEqual(consoleErrors, []);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('one device signs the other out; the other lands on sign-in with a message at its next navigation', async () => {
    const { a, b, pa, pb } = await twoDevices();
    try {
      const other = otherDevices(pa);
      await submit(pa, other.getByRole('button', { name: /^Sign out of Mobile Safari on iPhone/ }));
      assert.equal(path(pa), '/account?notice=device');
      assert.equal(await pa.getByRole('status').innerText(), 'That device was signed out.');
      assert.equal(await rows(pa).count(), 1);

      const response = await pb.goto(`${origin}/account`);
      assert.equal(path(pb), '/signin?ended=1');
      assert.equal(response?.status(), 200);
      assert.equal(await pb.getByRole('status').innerText(), 'You were signed out. Sign in again.');
      // the dead cookie was cleared, not left to be sent again
      assert.equal((await b.cookies(origin)).find((c) => c.name === COOKIE), undefined);
      await shot(pb, 'signin-ended');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('"Sign out of all other devices" ends the others and keeps this one', async () => {
    const { a, b, pa, pb } = await twoDevices();
    try {
      await submit(pb, pb.getByRole('button', { name: 'Sign out of all other devices' }));
      assert.equal(path(pb), '/account?notice=others');
      assert.equal(await rows(pb).count(), 1);
      assert.equal(await thisDevice(pb).count(), 1);
      await pa.goto(`${origin}/account`);
      assert.equal(path(pa), '/signin?ended=1');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('signing out from the top bar ends this session only', async () => {
    const { a, b, pa, pb } = await twoDevices();
    try {
      await submit(pa, pa.getByRole('navigation', { name: 'Account' }).getByRole('button', { name: 'Sign out' }));
      assert.equal(path(pa), '/signin?signedout=1');
      assert.equal(await pa.getByRole('status').innerText(), 'You signed out.');
      await pa.goto(`${origin}/account`);
      assert.equal(new URL(pa.url()).pathname, '/signin');
      await pb.reload();
      assert.equal(path(pb), '/account');
      assert.equal(await rows(pb).count(), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('cookies and page script', () => {
  it('the session cookie is HttpOnly, Secure, SameSite=Lax, host-only and invisible to document.cookie', async () => {
    const a = await laptop();
    try {
      const page = await a.newPage();
      const response = await signUp(page, newEmail());
      const cookies = await a.cookies(origin);
      const session = cookies.find((c) => c.name === COOKIE);
      assert.ok(session, 'the session cookie is set');
      assert.equal(session.httpOnly, true);
      assert.equal(session.secure, true);
      assert.equal(session.sameSite, 'Lax');
      assert.equal(session.path, '/');
      assert.equal(session.domain, 'localhost');
      const formToken = cookies.find((c) => c.name === '__Host-latchkey-csrf');
      assert.ok(formToken);
      assert.equal(formToken.httpOnly, true);
      assert.equal(formToken.sameSite, 'Strict');

      // nothing for page script to read or steal
      assert.equal(await page.evaluate(() => document.cookie), '');
      assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
      assert.equal(await page.evaluate(() => document.scripts.length), 0);
      const headers = response.headers();
      assert.match(headers['content-security-policy'] ?? '', /default-src 'none'/);
      assert.doesNotMatch(headers['content-security-policy'] ?? '', /script-src/);
      assert.equal(headers['cache-control'], 'no-store');
      assert.equal(headers['x-frame-options'], 'DENY');
    } finally {
      await a.close();
    }
  });

  it('the session cookie is SameSite=Strict when configured so', async () => {
    const strict = await startServer({ sessions: { sameSite: 'strict' } });
    const a = await laptop();
    try {
      const page = await a.newPage();
      await page.goto(`${strict.config.issuer}/signup`);
      await page.getByLabel('Email').fill(newEmail());
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await submit(page, page.getByRole('button', { name: 'Create account' }));
      assert.equal(new URL(page.url()).pathname, '/account');
      const session = (await a.cookies(strict.config.issuer)).find((c) => c.name === COOKIE);
      assert.equal(session?.sameSite, 'Strict');
      assert.equal(session?.httpOnly, true);
      assert.equal(await page.evaluate(() => document.cookie), '');
    } finally {
      await a.close();
      await strict.close();
    }
  });
});

describe('cross-site requests', () => {
  let attacker: Server;
  let attackerOrigin: string;
  before(async () => {
    // another origin (127.0.0.1 vs localhost, another port): the attacker's site; inline script is theirs to use
    const pages: Record<string, string> = {
      '/form': `<!doctype html><form id="f" method="post" action="${origin}/account/sessions/signout-others">
<input type="hidden" name="_csrf" value="guessed"></form><script>document.getElementById('f').submit()</script>`,
      '/signin-form': `<!doctype html><form id="f" method="post" action="${origin}/signin">
<input name="email" value="mallory@example.com"><input name="password" value="${PASSWORD}"></form>
<script>document.getElementById('f').submit()</script>`,
      '/fetch': `<!doctype html><title>waiting</title><script>
fetch(${JSON.stringify(`${origin}/v1/logout`)}, { method: 'POST', credentials: 'include', mode: 'no-cors' })
  .then(() => { document.title = 'sent'; }, () => { document.title = 'sent'; });
</script>`,
    };
    attacker = createServer((req, res) => {
      const body = pages[req.url ?? ''];
      res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' }).end(body ?? '');
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attackerOrigin = `http://127.0.0.1:${(attacker.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((resolve) => attacker.close(() => resolve())));

  it('a form posted from a page on another origin is refused and nothing changes', async () => {
    const { a, b, pa, pb } = await twoDevices();
    try {
      const evil = await a.newPage();
      const [response] = await Promise.all([
        evil.waitForNavigation({ url: `${origin}/account/sessions/signout-others` }),
        evil.goto(`${attackerOrigin}/form`),
      ]);
      assert.equal(response?.status(), 403);
      assert.equal(await evil.getByRole('heading', { level: 1 }).innerText(), 'This request was refused');
      await shot(evil, 'refused-cross-site');
      assert.ok(answered.some((r) => r.method === 'POST' && r.url === '/account/sessions/signout-others' && r.status === 403));

      // the JSON API refuses the same, even with credentials: 'include'
      const before = answered.length;
      await evil.goto(`${attackerOrigin}/fetch`);
      await evil.waitForFunction(() => document.title === 'sent');
      const logout = answered.slice(before).find((r) => r.url === '/v1/logout');
      assert.equal(logout?.status, 403);

      // both devices still signed in and listed
      await pa.goto(`${origin}/account`);
      assert.equal(path(pa), '/account');
      assert.equal(await rows(pa).count(), 2);
      await pb.goto(`${origin}/account`);
      assert.equal(path(pb), '/account');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a sign-in form posted from another origin does not sign the browser in (login CSRF)', async () => {
    const c = await laptop();
    try {
      const page = await c.newPage();
      await signUp(page, 'mallory@example.com').catch(() => undefined);
      await c.clearCookies();
      const [response] = await Promise.all([page.waitForNavigation({ url: `${origin}/signin` }), page.goto(`${attackerOrigin}/signin-form`)]);
      assert.equal(response?.status(), 403);
      assert.equal((await c.cookies(origin)).find((x) => x.name === COOKIE), undefined);
    } finally {
      await c.close();
    }
  });
});

describe('errors a person can act on', () => {
  it('wrong password and unknown email get the same message, tied to the fields', async () => {
    const email = newEmail();
    const a = await laptop();
    try {
      const page = await a.newPage();
      await signUp(page, email);
      await a.clearCookies();
      const wrong = await signIn(page, email, 'not the password at all');
      assert.equal(wrong.status(), 401);
      const alert = page.getByRole('alert');
      assert.equal(await alert.innerText(), 'Email or password is incorrect.');
      const emailInput = page.getByLabel('Email');
      assert.equal(await emailInput.getAttribute('aria-invalid'), 'true');
      assert.match((await emailInput.getAttribute('aria-describedby')) ?? '', /\bform-error\b/);
      assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true');
      // what was typed as the email stays; the password never comes back
      assert.equal(await emailInput.inputValue(), email);
      assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '');
      await shot(page, 'signin-wrong-password');

      const unknown = await signIn(page, newEmail('nobody'), 'not the password at all');
      assert.equal(unknown.status(), 401);
      assert.equal(await page.getByRole('alert').innerText(), 'Email or password is incorrect.');
    } finally {
      await a.close();
    }
  });

  it('a weak password at sign-up shows the policy reason next to the password field', async () => {
    const a = await laptop();
    try {
      const page = await a.newPage();
      const response = await signUp(page, newEmail(), 'password1');
      assert.equal(response.status(), 400);
      const input = page.getByLabel('Password', { exact: true });
      assert.equal(await input.getAttribute('aria-invalid'), 'true');
      assert.match((await input.getAttribute('aria-describedby')) ?? '', /\bpassword-error\b/);
      assert.match(await page.locator('#password-error').innerText(), /too common/);
      // focus goes to the field to fix
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'password');
      await shot(page, 'signup-weak-password');
    } finally {
      await a.close();
    }
  });

  it('changing the password ends the other device; wrong and weak passwords are explained first', async () => {
    const { a, b, pa, pb } = await twoDevices();
    try {
      await pa.getByRole('link', { name: 'Change password' }).click();
      await pa.waitForURL(`${origin}/account/password`);
      await shot(pa, 'password');

      await pa.getByLabel('Current password').fill('not my password');
      await pa.getByLabel('New password').fill('a brand new passphrase');
      const wrong = await submit(pa, pa.getByRole('button', { name: 'Change password' }));
      assert.equal(wrong.status(), 400);
      assert.match(await pa.locator('#currentPassword-error').innerText(), /current password is incorrect/);
      assert.equal(await pa.getByLabel('Current password').getAttribute('aria-invalid'), 'true');
      await shot(pa, 'password-wrong-current');

      await pa.getByLabel('Current password').fill(PASSWORD);
      await pa.getByLabel('New password').fill('iloveyou');
      const weak = await submit(pa, pa.getByRole('button', { name: 'Change password' }));
      assert.equal(weak.status(), 400);
      assert.match(await pa.locator('#newPassword-error').innerText(), /too common/);
      assert.match((await pa.getByLabel('New password').getAttribute('aria-describedby')) ?? '', /\bnewPassword-error\b/);

      // the phone is still signed in until the change goes through
      await pb.reload();
      assert.equal(path(pb), '/account');

      await pa.getByLabel('Current password').fill(PASSWORD);
      await pa.getByLabel('New password').fill('a brand new passphrase');
      await submit(pa, pa.getByRole('button', { name: 'Change password' }));
      assert.equal(path(pa), '/account?notice=password');
      assert.equal(await rows(pa).count(), 1);

      await pb.reload();
      assert.equal(path(pb), '/signin?ended=1');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('too many attempts: a message with the retry time and status 429', async () => {
    const limited = await startServer({ rateLimit: { loginPerAccount: 2, loginPerIp: 100, windowSeconds: 600 } });
    const a = await laptop();
    try {
      const page = await a.newPage();
      const email = newEmail();
      const attempt = async (password: string) => {
        await page.goto(`${limited.config.issuer}/signin`);
        await page.getByLabel('Email').fill(email);
        await page.getByLabel('Password', { exact: true }).fill(password);
        return submit(page, page.getByRole('button', { name: 'Sign in', exact: true }));
      };
      assert.equal((await attempt('wrong one')).status(), 401);
      assert.equal((await attempt('wrong two')).status(), 401);
      const blocked = await attempt('wrong three');
      assert.equal(blocked.status(), 429);
      assert.match(blocked.headers()['retry-after'] ?? '', /^\d+$/);
      assert.match(await page.getByRole('alert').innerText(), /^Too many attempts\. Try again in 10 minutes\.$/);
      await shot(page, 'signin-rate-limited');
    } finally {
      await a.close();
      await limited.close();
    }
  });
});
