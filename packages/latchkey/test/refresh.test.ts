/**
 * Refresh-token rotation with reuse detection and a grace window, driven by
 * oauth4webapi (a standard client written by others), plus the SPA cookie mode.
 * The clock is injected: the grace window and lifetimes pass without sleeping.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { FamilyEndedEvent } from '../src/refresh/service.js';
import { json, startServer, type TestServer } from './helpers.js';
import { discover, form, insecure, loginTokens, signup, tokenLogin, type TokenResponse } from './token-helpers.js';

const GRACE = 5;
const IDLE = 600;
const ABSOLUTE = 1800;
const BROWSER_IDLE = 300;
let clock = Date.now();
let srv: TestServer;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: 'latchkey' };
const ended: FamilyEndedEvent[] = [];

before(async () => {
  srv = await startServer(
    {
      refresh: { graceSeconds: GRACE, idleTimeoutSeconds: IDLE, absoluteLifetimeSeconds: ABSOLUTE },
      // browser sessions idle out sooner than token families here, to show the two timeouts are separate
      sessions: { idleTimeoutSeconds: BROWSER_IDLE, absoluteLifetimeSeconds: 3600 },
    },
    { now: () => clock },
  );
  srv.lk.context.refresh.onFamilyEnded((e) => ended.push(e));
  as = await discover(srv);
});
after(() => srv.close());
beforeEach(() => {
  ended.length = 0;
});

async function refresh(refreshToken: string): Promise<oauth.TokenEndpointResponse> {
  const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure);
  return oauth.processRefreshTokenResponse(as, client, res);
}

async function refused(refreshToken: string): Promise<void> {
  await assert.rejects(refresh(refreshToken), (err: unknown) => {
    assert.ok(err instanceof oauth.ResponseBodyError, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.error, 'invalid_grant');
    return true;
  });
}

const reuseEvents = async (userId: string) =>
  (await srv.lk.context.audit.list({ userId, type: 'refresh_reuse_detected' })).length;

async function loggedIn() {
  const user = await signup(srv);
  return { ...user, tokens: await loginTokens(srv, user.email) };
}

describe('refresh grant (RFC 6749 §6) with oauth4webapi', () => {
  it('returns a new access token and a rotated refresh token; the new pair works', async () => {
    const { tokens, userId } = await loggedIn();
    const r1 = await refresh(tokens.refresh_token!);
    assert.equal(r1.token_type, 'bearer');
    assert.equal(r1.expires_in, 300);
    assert.ok(r1.refresh_token && r1.refresh_token !== tokens.refresh_token);
    assert.notEqual(r1.access_token, tokens.access_token);
    const jwks = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(r1.access_token, jwks, { algorithms: ['EdDSA'], currentDate: new Date(clock) });
    assert.equal(payload.sub, userId);
    const r2 = await refresh(r1.refresh_token);
    assert.ok(r2.refresh_token && r2.refresh_token !== r1.refresh_token);
  });

  it('keeps the session alive: each refresh records last-seen on the session', async () => {
    const { tokens, browser } = await loggedIn();
    clock += 120_000;
    await refresh(tokens.refresh_token!);
    const sid = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()).sid as string;
    const list = await json<{ sessions: { handle: string; lastSeenAt: string }[] }>(await browser.get('/v1/sessions'));
    const s = list.sessions.find((x) => x.handle === sid)!;
    assert.equal(s.lastSeenAt, new Date(Math.floor(clock / 1000) * 1000).toISOString());
  });
});

describe('reuse detection', () => {
  it('replaying a rotated token after the grace window kills the family: the newest token dies too', async () => {
    const { tokens, userId } = await loggedIn();
    const next = await refresh(tokens.refresh_token!);
    clock += (GRACE + 1) * 1000;
    await refused(tokens.refresh_token!);
    await refused(next.refresh_token!);
    assert.equal(await reuseEvents(userId), 1);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.reason, 'refresh_reuse_detected');
    assert.equal(ended[0]!.userId, userId);
  });

  it('the family’s session is gone from the user’s list, and its access token introspects inactive', async () => {
    const { tokens, browser } = await loggedIn();
    const sid = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()).sid as string;
    await refresh(tokens.refresh_token!);
    clock += (GRACE + 1) * 1000;
    await refused(tokens.refresh_token!);
    const list = await json<{ sessions: { handle: string }[] }>(await browser.get('/v1/sessions'));
    assert.ok(!list.sessions.some((s) => s.handle === sid));
  });

  it('an old token whose row was pruned still names its family, and its replay kills it', async () => {
    const { tokens, userId } = await loggedIn();
    const t2 = await refresh(tokens.refresh_token!);
    clock += (GRACE + 1) * 1000;
    const t3 = await refresh(t2.refresh_token!);
    assert.ok((await srv.lk.context.refresh.sweep()) >= 2, 'rotated rows were pruned');
    await refused(tokens.refresh_token!);
    await refused(t3.refresh_token!);
    assert.equal(await reuseEvents(userId), 1);
  });

  it('a garbage token, or one of a family that never existed, is invalid_grant and detects nothing', async () => {
    const { tokens, userId } = await loggedIn();
    await refused('x'.repeat(64));
    await refused('not even base64url!');
    assert.equal(await reuseEvents(userId), 0);
    // the real family is untouched
    assert.ok((await refresh(tokens.refresh_token!)).refresh_token);
  });
});

describe('grace window: concurrent refreshes are not theft', () => {
  it('a second refresh with the same token inside the window gets the same successor', async () => {
    const { tokens, userId } = await loggedIn();
    const a = await refresh(tokens.refresh_token!);
    clock += (GRACE - 1) * 1000;
    const b = await refresh(tokens.refresh_token!);
    assert.equal(b.refresh_token, a.refresh_token);
    assert.equal(await reuseEvents(userId), 0);
    assert.ok((await refresh(a.refresh_token!)).refresh_token);
  });

  it('20 concurrent refreshes with one token all succeed with one successor and zero reuse detections', async () => {
    const { tokens, userId } = await loggedIn();
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(tokens.refresh_token!)));
    assert.equal(results.length, 20);
    const successors = new Set(results.map((r) => r.refresh_token));
    assert.equal(successors.size, 1);
    assert.ok(!successors.has(tokens.refresh_token));
    assert.equal(new Set(results.map((r) => r.access_token)).size, 20, 'each caller gets its own access token');
    assert.equal(await reuseEvents(userId), 0);
    assert.equal(ended.length, 0);
    // and the one successor carries on
    assert.ok((await refresh([...successors][0]!)).refresh_token);
  });

  it('a slow tab inside the window gets the newest token even after a fast one rotated twice', async () => {
    const { tokens, userId } = await loggedIn();
    const t2 = await refresh(tokens.refresh_token!);
    const t3 = await refresh(t2.refresh_token!);
    const slow = await refresh(tokens.refresh_token!);
    assert.equal(slow.refresh_token, t3.refresh_token);
    assert.equal(await reuseEvents(userId), 0);
  });

  it('with graceSeconds 0 any replay is reuse', async () => {
    const strict = await startServer({ refresh: { graceSeconds: 0 } });
    try {
      const { email, userId } = await signup(strict);
      const t = await loginTokens(strict, email);
      const ok = await form(strict, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! });
      assert.equal(ok.status, 200);
      const again = await form(strict, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! });
      assert.equal(again.status, 400);
      assert.equal((await strict.lk.context.audit.list({ userId, type: 'refresh_reuse_detected' })).length, 1);
    } finally {
      await strict.close();
    }
  });
});

describe('family lifetimes', () => {
  it('idles out after refresh.idleTimeoutSeconds without use', async () => {
    const { tokens } = await loggedIn();
    clock += (IDLE + 1) * 1000;
    await refused(tokens.refresh_token!);
  });

  it('each refresh restarts the idle clock, up to the absolute lifetime', async () => {
    const { tokens, userId } = await loggedIn();
    let rt = tokens.refresh_token!;
    // 3 x 500 s > IDLE, but each step is inside it
    for (let i = 0; i < 3; i++) {
      clock += 500_000;
      rt = (await refresh(rt)).refresh_token!;
    }
    clock += 400_000; // 1,900 s since login > ABSOLUTE
    await refused(rt);
    assert.equal(await reuseEvents(userId), 0, 'expiry is not theft');
  });

  it('the token session is not swept with browser sessions’ shorter idle timeout', async () => {
    const { tokens } = await loggedIn();
    clock += (IDLE - 10) * 1000; // past BROWSER_IDLE, inside IDLE
    await srv.lk.context.sessions.sweep();
    assert.ok((await refresh(tokens.refresh_token!)).refresh_token);
  });
});

describe('client binding', () => {
  it('a token of the first-party client is invalid_grant for another client', async () => {
    const SVC_SECRET = 'svc-secret-0123456789abcdef0123456789ab';
    const other = await startServer({ clients: [{ id: 'svc', secret: SVC_SECRET }] });
    try {
      const { email } = await signup(other);
      const t = await loginTokens(other, email);
      const basic = Buffer.from(`svc:${SVC_SECRET}`).toString('base64');
      const res = await form(other, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! }, { authorization: `Basic ${basic}` });
      assert.equal(res.status, 400);
      assert.equal((await json(res)).error, 'invalid_grant');
      // untouched: the right client still refreshes
      const ok = await form(other, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token!, client_id: 'latchkey' });
      assert.equal(ok.status, 200);
    } finally {
      await other.close();
    }
  });
});

describe('SPA mode: refresh token in an HttpOnly cookie scoped to the token endpoint', () => {
  const COOKIE = '__Secure-latchkey-refresh';
  const SAME_ORIGIN = { 'sec-fetch-site': 'same-origin' };

  async function spaLogin() {
    const { email, userId } = await signup(srv);
    const res = await tokenLogin(srv, email, { refreshCookie: true });
    assert.equal(res.status, 200);
    const body = await json<TokenResponse>(res);
    const sc = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`));
    assert.ok(sc, 'sets the refresh cookie');
    return { body, sc, value: sc.slice(COOKIE.length + 1).split(';')[0]!, userId };
  }

  function cookieRefresh(value: string, headers: Record<string, string> = SAME_ORIGIN) {
    return form(srv, '/oauth/token', { grant_type: 'refresh_token' }, { cookie: `${COOKIE}=${value}`, ...headers });
  }
  const setValue = (res: Response) =>
    res.headers
      .getSetCookie()
      .find((c) => c.startsWith(`${COOKIE}=`))
      ?.slice(COOKIE.length + 1)
      .split(';')[0];

  it('login sets the cookie HttpOnly, Secure, SameSite=Strict, Path=/oauth/token; the body has no refresh_token', async () => {
    const { body, sc, value } = await spaLogin();
    assert.equal(body.refresh_token, undefined);
    assert.ok(body.access_token);
    const attrs = sc.split(';').map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes('httponly'));
    assert.ok(attrs.includes('secure'));
    assert.ok(attrs.includes('samesite=strict'));
    assert.ok(attrs.includes('path=/oauth/token'));
    assert.ok(!attrs.some((a) => a.startsWith('domain=')));
    assert.match(value, /^[A-Za-z0-9_-]{64}$/);
  });

  it('the refresh grant takes the cookie, rotates it, and keeps the new one out of the body', async () => {
    const { value } = await spaLogin();
    const res = await cookieRefresh(value);
    assert.equal(res.status, 200);
    const body = await json<TokenResponse>(res);
    assert.ok(body.access_token);
    assert.equal(body.refresh_token, undefined);
    const next = setValue(res);
    assert.ok(next && next !== value);
    assert.equal((await cookieRefresh(next)).status, 200);
  });

  it('refuses a cross-site request carrying the cookie, and does not spend it', async () => {
    const { value } = await spaLogin();
    const res = await cookieRefresh(value, { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' });
    assert.equal(res.status, 403);
    assert.equal((await json(res)).error, 'invalid_request');
    assert.deepEqual(res.headers.getSetCookie(), []);
    const ok = await cookieRefresh(value);
    assert.equal(ok.status, 200);
    assert.notEqual(setValue(ok), value);
  });

  it('concurrent refreshes with one cookie inside the grace window all set the same successor', async () => {
    const { value, userId } = await spaLogin();
    const all = await Promise.all(Array.from({ length: 10 }, () => cookieRefresh(value)));
    assert.deepEqual(all.map((r) => r.status), Array(10).fill(200));
    const values = new Set(all.map(setValue));
    assert.equal(values.size, 1);
    const [only] = values;
    assert.ok(only && only !== value);
    assert.equal(await reuseEvents(userId), 0);
  });

  it('a losing, stale request never sends a clearing Set-Cookie that would destroy a newer cookie', async () => {
    // the browser logged in twice (say, after signing out); a request from before still carries the old cookie
    const first = await spaLogin();
    const winner = await cookieRefresh(first.value);
    const newer = setValue(winner)!;
    clock += (GRACE + 1) * 1000;
    const stale = await cookieRefresh(first.value);
    assert.equal(stale.status, 400);
    assert.equal((await json(stale)).error, 'invalid_grant');
    assert.deepEqual(stale.headers.getSetCookie(), [], 'no Set-Cookie at all on failure');
    // a fresh login's cookie in the same jar is unaffected by the stale request's failure
    const second = await spaLogin();
    const staleAgain = await cookieRefresh(newer);
    assert.deepEqual(staleAgain.headers.getSetCookie(), []);
    assert.equal((await cookieRefresh(second.value)).status, 200);
  });

  it('signing out: revoking the in-memory access token ends the session and clears the cookie', async () => {
    const { body, value } = await spaLogin();
    const res = await form(srv, '/oauth/revoke', { token: body.access_token, client_id: 'latchkey' }, SAME_ORIGIN);
    assert.equal(res.status, 200);
    const cleared = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=;`));
    assert.ok(cleared, 'a clearing Set-Cookie for the refresh cookie');
    assert.match(cleared, /Path=\/oauth\/token/);
    assert.equal((await cookieRefresh(value)).status, 400);
  });

  it('a refresh_token parameter wins over the cookie', async () => {
    const { value } = await spaLogin();
    const { tokens } = await loggedIn();
    const res = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, { cookie: `${COOKIE}=${value}` });
    assert.equal(res.status, 200);
    assert.ok((await json<TokenResponse>(res)).refresh_token);
    assert.deepEqual(res.headers.getSetCookie(), []);
    // the cookie's family was not spent
    assert.equal((await cookieRefresh(value)).status, 200);
  });
});
