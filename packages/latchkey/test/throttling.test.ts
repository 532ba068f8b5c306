/**
 * Throttling of every password check against a real server: which client
 * address counts (trustProxy), IPv6 /64 grouping, and the per-account limit
 * across addresses with its known-device exemption, including a
 * credential-stuffing simulation that reports what it lets through.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffSeconds, networkKey } from '../src/accounts/throttle.js';
import { ConfigError, loadConfig, parseConfig } from '../src/config.js';
import { DEVICE_COOKIE } from '../src/http/signin.js';
import { Client, json, startServer, type TestServer } from './helpers.js';

const PASSWORD = 'correct horse battery staple';

async function withServer(overrides: Record<string, unknown>, fn: (srv: TestServer) => Promise<void>) {
  const srv = await startServer(overrides);
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

/** A login as if relayed by a proxy that wrote `xff` (the client's own entries first, the proxy's last). */
const loginVia = (srv: TestServer, xff: string, email: string, password: string, client = new Client(srv.url)) =>
  client.post('/v1/login', { email, password }, { 'x-forwarded-for': xff });

describe('trustProxy: which address a limit counts', () => {
  it('config: true is refused with the reason; hop counts, address/CIDR lists and env strings are accepted', () => {
    for (const v of [true, 'true']) {
      assert.throws(
        () => parseConfig({ trustProxy: v }),
        (e: Error) => e instanceof ConfigError && /^invalid config: trustProxy: true would believe the left-most X-Forwarded-For/.test(e.message),
      );
    }
    assert.throws(() => loadConfig({}, { LATCHKEY_TRUST_PROXY: 'true' }), /invalid config: trustProxy: /);
    assert.equal(parseConfig({}).trustProxy, false);
    assert.equal(parseConfig({ trustProxy: 2 }).trustProxy, 2);
    assert.equal(loadConfig({}, { LATCHKEY_TRUST_PROXY: '1' }).trustProxy, 1);
    assert.deepEqual(loadConfig({}, { LATCHKEY_TRUST_PROXY: '10.0.0.0/8, fd00::/8,loopback' }).trustProxy, ['10.0.0.0/8', 'fd00::/8', 'loopback']);
    assert.deepEqual(parseConfig({ trustProxy: ['192.0.2.7', '2001:db8::/32'] }).trustProxy, ['192.0.2.7', '2001:db8::/32']);
    assert.throws(() => parseConfig({ trustProxy: ['10.0.0.0/33'] }), /invalid config: trustProxy\.0: "10\.0\.0\.0\/33" is not an IP address/);
    assert.throws(() => parseConfig({ trustProxy: ['10.0.0.0/8', 'fe80::/129'] }), /invalid config: trustProxy\.1: /);
    assert.throws(() => parseConfig({ trustProxy: ['proxy.example'] }), /invalid config: trustProxy\.0: /);
    assert.throws(() => parseConfig({ trustProxy: 0 }), /invalid config: trustProxy/);
    assert.throws(
      () => parseConfig({ rateLimit: { accountBackoffSeconds: 60, accountBackoffMaxSeconds: 30 } }),
      /invalid config: rateLimit\.accountBackoffMaxSeconds: /,
    );
  });

  it('a hop count believes only the proxy\'s entry: 30 wrong passwords with rotating client-written entries hit the per-IP limit', async () => {
    await withServer({ trustProxy: 1, rateLimit: { loginPerIp: 5, loginPerAccount: 100 } }, async (srv) => {
      await new Client(srv.url).signup('xff@example.com');
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await loginVia(srv, `10.9.${i}.${i}, 203.0.113.9`, `xff.${i}@example.com`, 'wrong password guess');
        statuses.push(res.status);
      }
      assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
      assert.ok(statuses.slice(5).every((s) => s === 429), statuses.join(' '));
      // the address the proxy saw is the one recorded
      const ok = await loginVia(srv, '10.1.1.1, 198.51.100.20', 'xff@example.com', PASSWORD);
      assert.equal(ok.status, 200);
      assert.equal((await json<{ session: { ip: string } }>(ok)).session.ip, '198.51.100.20');
    });
  });

  it('a hop count: rotating client-written entries do not bypass the sign-up limit either', async () => {
    await withServer({ trustProxy: 1, rateLimit: { signupPerIp: 3 } }, async (srv) => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await new Client(srv.url).post('/v1/signup', { email: `rot.${i}@example.com`, password: PASSWORD }, { 'x-forwarded-for': `10.8.0.${i}, 203.0.113.10` });
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [201, 201, 201, 429, 429, 429]);
      assert.equal(await srv.lk.store.getUserByEmail('rot.3@example.com'), undefined);
    });
  });

  it('an address list: the client is the right-most address that is not a listed proxy', async () => {
    await withServer({ trustProxy: ['127.0.0.0/8', '10.0.0.0/8'] }, async (srv) => {
      await new Client(srv.url).signup('cidr@example.com');
      const res = await loginVia(srv, '192.0.2.1, 198.51.100.30, 10.0.0.5', 'cidr@example.com', PASSWORD);
      assert.equal(res.status, 200);
      assert.equal((await json<{ session: { ip: string } }>(res)).session.ip, '198.51.100.30');
    });
  });

  it('the default (false) ignores X-Forwarded-For: the TCP peer is the client', async () => {
    await withServer({ rateLimit: { loginPerIp: 3, loginPerAccount: 100 } }, async (srv) => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await loginVia(srv, `198.51.100.${i}`, `nobody.${i}@example.com`, 'wrong password guess')).status);
      assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429]);
    });
  });
});

describe('IPv6 clients are limited per /64', () => {
  it('networkKey: IPv4 as is, IPv4-mapped unwrapped, IPv6 to its /64', () => {
    assert.equal(networkKey('192.0.2.1'), '192.0.2.1');
    assert.equal(networkKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(networkKey('::ffff:c000:0201'), '192.0.2.1');
    assert.equal(networkKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(networkKey('2001:DB8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
    assert.equal(networkKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(networkKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(networkKey('::1'), '0:0:0:0::/64');
  });

  it('rotating addresses inside one /64 share its login limit; another /64 has its own', async () => {
    await withServer({ trustProxy: 1, rateLimit: { loginPerIp: 4, loginPerAccount: 100 } }, async (srv) => {
      const statuses: number[] = [];
      for (let i = 1; i <= 8; i++) statuses.push((await loginVia(srv, `2001:db8:1:2::${i.toString(16)}`, `v6.${i}@example.com`, 'wrong password guess')).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429, 429, 429]);
      assert.equal((await loginVia(srv, '2001:db8:1:3::1', 'v6.other@example.com', 'wrong password guess')).status, 401);
    });
  });
});

describe('per-account limit across addresses, with known devices exempt', () => {
  it('backoff doubles per failure beyond the free ones, up to the cap', () => {
    const limits = { accountBackoffSeconds: 60, accountBackoffMaxSeconds: 3600 };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => backoffSeconds(n, limits)), [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
  });

  it('credential stuffing from many addresses: the numbers it lets through, and the owner\'s known device still signs in', async (t) => {
    const ACCOUNTS = 8;
    const GUESSES = 20;
    await withServer({ trustProxy: 1 }, async (srv) => {
      const limits = srv.config.rateLimit;
      const emails = Array.from({ length: ACCOUNTS }, (_, i) => `stuffed.${i}@example.com`);
      for (const e of emails) assert.equal((await new Client(srv.url).signup(e)).status, 201);
      // the owner of account 0 signed in on this browser before the attack, then signed out
      const owner = new Client(srv.url);
      assert.equal((await owner.login(emails[0]!)).status, 200);
      assert.equal((await owner.post('/v1/logout')).status, 204);
      assert.ok(owner.cookies.has(DEVICE_COOKIE));

      // the attack: every guess from a fresh address (IPv4 and IPv6 /64s), accounts interleaved
      const checked = new Map(emails.map((e) => [e, 0]));
      const refused = new Map(emails.map((e) => [e, 0]));
      let firstRetryAfter = 0;
      let n = 0;
      for (let g = 0; g < GUESSES; g++) {
        for (const email of emails) {
          n++;
          const ip = n % 2 ? `198.18.${n >> 8}.${n & 0xff}` : `2001:db8:${n.toString(16)}::1`;
          const res = await loginVia(srv, ip, email, `common guess ${g}`);
          if (res.status === 401) checked.set(email, checked.get(email)! + 1);
          else {
            assert.equal(res.status, 429);
            assert.equal((await json(res)).code, 'rate_limited');
            firstRetryAfter ||= Number(res.headers.get('retry-after'));
            refused.set(email, refused.get(email)! + 1);
          }
        }
      }
      // what an attacker gets per account per day: the free failures, then one guess at each opening of the gate
      let perDay = limits.accountFreeFailures;
      for (let k = 1, at = 0; at < limits.accountWindowSeconds; at += backoffSeconds(k, limits), k++) perDay++;
      t.diagnostic(`${ACCOUNTS} accounts x ${GUESSES} guesses, each from a new address (${ACCOUNTS * GUESSES} addresses)`);
      t.diagnostic(`passwords checked per account: ${[...checked.values()].join(', ')}; refused (429): ${[...refused.values()].join(', ')}`);
      t.diagnostic(`first refusal asks to retry after ${firstRetryAfter} s; backoff ${limits.accountBackoffSeconds} s doubling to ${limits.accountBackoffMaxSeconds} s`);
      t.diagnostic(`so at most ${perDay} guesses per account per ${limits.accountWindowSeconds} s window, from any number of addresses`);
      for (const email of emails) {
        // the free failures, and the one attempt the first backoff period allows
        assert.equal(checked.get(email), limits.accountFreeFailures + 1, email);
        assert.equal(refused.get(email), GUESSES - limits.accountFreeFailures - 1, email);
      }
      assert.ok(firstRetryAfter > 0 && firstRetryAfter <= limits.accountBackoffSeconds, String(firstRetryAfter));

      // during the attack: a new browser, even with the right password, waits on every path that checks it...
      const fresh = new Client(srv.url);
      const json401 = await fresh.post('/v1/login', { email: emails[0], password: PASSWORD }, { 'x-forwarded-for': '192.0.2.50' });
      assert.equal(json401.status, 429);
      const token = await fresh.post('/v1/tokens', { email: emails[0], password: PASSWORD }, { 'x-forwarded-for': '192.0.2.50' });
      assert.equal(token.status, 429);
      assert.equal((await json(token)).code, 'rate_limited');
      const page = await formSignin(fresh, emails[0]!, PASSWORD, '192.0.2.50');
      assert.equal(page.status, 429);
      assert.ok(Number(page.headers.get('retry-after')) > 0);
      // ...a device cookie of another account does not help...
      const other = await loginVia(srv, '192.0.2.51', emails[1]!, PASSWORD, owner);
      assert.equal(other.status, 429);
      // ...but the owner's known browser signs in, on the JSON API and on the sign-in page
      const signedIn = await loginVia(srv, '192.0.2.52', emails[0]!, PASSWORD, owner);
      assert.equal(signedIn.status, 200);
      assert.equal((await owner.post('/v1/logout')).status, 204);
      assert.equal((await formSignin(owner, emails[0]!, PASSWORD, '192.0.2.52')).status, 303);
      // and the known device's sign-in does not reopen the account to the attack: a new browser still waits
      assert.equal((await loginVia(srv, '192.0.2.53', emails[0]!, PASSWORD)).status, 429);
    });
  });

  it('every spelling of an account shares its count, a stored pre-policy address included', async () => {
    await withServer({ trustProxy: 1, rateLimit: { accountFreeFailures: 3 } }, async (srv) => {
      await new Client(srv.url).signup('spelling@example.com');
      const hash = (await srv.lk.store.getUserByEmail('spelling@example.com'))!.passwordHash;
      // stored before the email policy: a zero-width space survived NFC and lower-casing
      await srv.lk.store.createUser({ id: 'u_legacy_spelling', email: 'jos\u00e9\u200b@example.com', passwordHash: hash, createdAt: 1 });
      const spellings: [string, string[]][] = [
        ['spelling@example.com', ['Spelling@Example.COM', '\uff53\uff50\uff45\uff4c\uff4c\uff49\uff4e\uff47@example.com', ' spelling@example.com', 'SPELLING@example.com', 'spelling@EXAMPLE.com']],
        ['jos\u00e9\u200b@example.com', ['jos\u00e9\u200b@example.com', 'jose\u0301\u200b@example.com', 'JOS\u00c9\u200b@example.com', 'JOSE\u0301\u200b@EXAMPLE.COM', ' jose\u0301\u200b@example.com']],
      ];
      let n = 0;
      for (const [canonical, variants] of spellings) {
        const statuses: number[] = [];
        for (const v of variants) statuses.push((await loginVia(srv, `198.18.9.${++n}`, v, 'wrong password guess')).status);
        assert.deepEqual(statuses, [401, 401, 401, 401, 429], canonical);
      }
    });
  });

  it('a stolen device cookie gives only loginPerAccount guesses, then the account\'s backoff applies', async () => {
    await withServer({ trustProxy: 1, rateLimit: { loginPerAccount: 3, accountFreeFailures: 2 } }, async (srv) => {
      const owner = new Client(srv.url);
      assert.equal((await owner.signup('device.owner@example.com')).status, 201);
      // the attacker exhausts the account from many addresses
      for (let i = 0; i < 6; i++) await loginVia(srv, `198.18.1.${i}`, 'device.owner@example.com', `guess ${i}`);
      // with the stolen cookie: its own three guesses are checked, then it counts as unknown
      const thief = new Client(srv.url);
      thief.cookies.set(DEVICE_COOKIE, owner.cookies.get(DEVICE_COOKIE)!);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await loginVia(srv, `198.18.2.${i}`, 'device.owner@example.com', `stolen ${i}`, thief)).status);
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    });
  });

  it('the device cookie: set after a right password only, __Host-, HttpOnly, Secure, SameSite=Strict; forged ones do not exempt', async () => {
    await withServer({ trustProxy: 1, rateLimit: { accountFreeFailures: 1 } }, async (srv) => {
      const c = new Client(srv.url);
      await c.signup('cookie@example.com');
      const failed = await new Client(srv.url).login('cookie@example.com', 'wrong password guess');
      assert.equal(failed.status, 401);
      assert.ok(!failed.headers.getSetCookie().some((sc) => sc.startsWith(`${DEVICE_COOKIE}=`)));
      const ok = await new Client(srv.url).login('cookie@example.com');
      const sc = ok.headers.getSetCookie().find((s) => s.startsWith(`${DEVICE_COOKIE}=`))!;
      assert.ok(sc, 'set on success');
      for (const attr of ['Path=/', 'HttpOnly', 'Secure', 'SameSite=Strict']) assert.ok(sc.includes(attr), `${attr} in ${sc}`);
      assert.match(sc, /Max-Age=\d+/);
      assert.ok(!/Domain=/i.test(sc));
      // two failures from elsewhere close the gate; a forged or truncated cookie is just an unknown device
      await loginVia(srv, '198.18.3.1', 'cookie@example.com', 'wrong guess one');
      await loginVia(srv, '198.18.3.2', 'cookie@example.com', 'wrong guess two');
      const genuine = c.cookies.get(DEVICE_COOKIE)!;
      for (const forged of [`${'A'.repeat(22)}.${'B'.repeat(43)}`, genuine.slice(0, -1), `${genuine.slice(0, 22)}.${'x'.repeat(43)}`, 'x']) {
        const m = new Client(srv.url);
        m.cookies.set(DEVICE_COOKIE, forged);
        assert.equal((await loginVia(srv, '198.18.3.3', 'cookie@example.com', PASSWORD, m)).status, 429, forged);
      }
      assert.equal((await loginVia(srv, '198.18.3.4', 'cookie@example.com', PASSWORD, c)).status, 200);
    });
  });

  it('behind a proxy with the default trustProxy (every client shares one address), known devices still sign in', async () => {
    await withServer({ rateLimit: { loginPerIp: 5 } }, async (srv) => {
      const owner = new Client(srv.url);
      await owner.signup('shared.proxy@example.com');
      await owner.post('/v1/logout');
      for (let i = 0; i < 10; i++) await new Client(srv.url).login(`sprayed.${i}@example.com`, 'wrong password guess');
      // the shared address is exhausted: a new browser waits, the known one does not
      assert.equal((await new Client(srv.url).login('shared.proxy@example.com')).status, 429);
      assert.equal((await owner.login('shared.proxy@example.com')).status, 200);
    });
  });
});

/** Sign in through the HTML form (GET for the form token, then POST), from `ip` as relayed by the proxy. */
async function formSignin(c: Client, email: string, password: string, ip: string): Promise<Response> {
  const page = await c.get('/signin', { 'x-forwarded-for': ip });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  const body = new URLSearchParams({ _csrf: csrf, email, password }).toString();
  return c.post('/signin', body, { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip });
}
