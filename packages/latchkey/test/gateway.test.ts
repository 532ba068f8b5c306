import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createVerifier } from '@latchkey/verify';
import { ADMIN_KEY, Client, freePort, json, startServer, type TestServer } from './helpers.js';

const FIXTURE = new URL('./fixtures/upstream.mjs', import.meta.url).pathname;
const children: ChildProcess[] = [];

async function upstream(issuer: string, audience: string, mode = 'echo'): Promise<number> {
  const port = await freePort();
  const child = spawn(process.execPath, [FIXTURE, String(port), issuer, audience, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`upstream exited ${code}`)));
  });
  return port;
}

interface Echo {
  method: string;
  url: string;
  claims: Record<string, unknown> | null;
  error: string | null;
  authorization: string;
  cookie: string | null;
  forwarded: { for: string | null; proto: string | null; host: string | null };
  headers: Record<string, string>;
  bodyBytes: number;
  body: string;
}

let srv: TestServer;
let deadPort: number;

before(async () => {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const [orders, profile, hang] = await Promise.all([
    upstream(issuer, 'orders'),
    upstream(issuer, 'profile'),
    upstream(issuer, 'slow', 'hang'),
  ]);
  deadPort = await freePort();
  srv = await startServer({
    port,
    issuer,
    gateway: {
      routes: [
        { prefix: '/api/orders', upstream: `http://127.0.0.1:${orders}`, audience: 'orders' },
        { prefix: '/api/profile', upstream: `http://127.0.0.1:${profile}/v2`, audience: 'profile', unauthenticated: 'redirect' },
        { prefix: '/api/admin', upstream: `http://127.0.0.1:${orders}`, audience: 'orders', roles: ['admin'] },
        { prefix: '/api/slow', upstream: `http://127.0.0.1:${hang}`, audience: 'slow', timeoutMs: 500 },
        { prefix: '/api/down', upstream: `http://127.0.0.1:${deadPort}`, audience: 'down', timeoutMs: 1000 },
      ],
    },
  });
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await srv.close();
});

let n = 0;
async function browser() {
  const c = new Client(srv.url);
  const email = `gw${++n}@example.com`;
  assert.equal((await c.signup(email)).status, 201);
  const me = await json<{ user: { id: string }; session: { handle: string } }>(await c.get('/v1/session'));
  return { c, email, sub: me.user.id, sid: me.session.handle };
}

describe('gateway', () => {
  it('forwards with a token the upstream verifies (aud, sub, sid), never the cookie', async () => {
    const { c, sub, sid } = await browser();
    const res = await c.get('/api/orders/42?x=1');
    const echo = await json<Echo>(res);
    assert.equal(echo.error, null);
    assert.equal(res.status, 200);
    assert.equal(echo.url, '/42?x=1');
    assert.equal(echo.cookie, null);
    assert.equal(echo.claims!.aud, 'orders');
    assert.equal(echo.claims!.sub, sub);
    assert.equal(echo.claims!.sid, sid);
    assert.equal(echo.claims!.iss, srv.config.issuer);
    assert.ok((echo.claims!.exp as number) - (echo.claims!.iat as number) <= 60);
    assert.equal(echo.forwarded.for, '127.0.0.1');
    assert.equal(echo.forwarded.proto, 'http');
    assert.ok(echo.forwarded.host);
    // this test's own verifier agrees, with the header type pinned
    const token = echo.authorization.slice(7);
    const v = createVerifier({ issuer: srv.config.issuer, audience: 'orders' });
    assert.equal((await v.verify(token)).sub, sub);
    await assert.rejects(createVerifier({ issuer: srv.config.issuer, audience: 'profile' }).verify(token));
  });

  it('mints one token per audience and reuses it from the cache', async () => {
    const { c } = await browser();
    const a = await json<Echo>(await c.get('/api/orders/a'));
    const b = await json<Echo>(await c.get('/api/orders/b'));
    const p = await json<Echo>(await c.get('/api/profile/me'));
    assert.equal(a.authorization, b.authorization);
    assert.notEqual(p.authorization, a.authorization);
    assert.equal(p.claims!.aud, 'profile');
    assert.equal(p.url, '/v2/me', 'the upstream base path is kept, the prefix dropped');
  });

  it('never passes on an Authorization header sent by the browser', async () => {
    const { c, sub } = await browser();
    const forged = 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    const echo = await json<Echo>(await c.get('/api/orders/x', { authorization: forged }));
    assert.notEqual(echo.authorization, forged);
    assert.equal(echo.claims!.sub, sub);
  });

  it('streams request bodies through', async () => {
    const { c } = await browser();
    const body = JSON.stringify({ item: 'book', qty: 2, pad: 'x'.repeat(100_000) });
    const echo = await json<Echo>(await c.post('/api/orders/new', body, { 'sec-fetch-site': 'same-origin' }));
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, body);
  });

  it('keeps upstream Set-Cookie from the browser', async () => {
    const { c } = await browser();
    const res = await c.get('/api/orders/x');
    assert.equal(res.headers.getSetCookie().length, 0);
  });

  it('refuses a missing session with 401, or redirects to sign-in where configured', async () => {
    const anon = new Client(srv.url);
    const res = await anon.get('/api/orders/x');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type') ?? '', /problem\+json/);
    const redirect = await anon.get('/api/profile/me?tab=1');
    assert.equal(redirect.status, 303);
    assert.equal(redirect.headers.get('location'), '/signin?next=%2Fapi%2Fprofile%2Fme%3Ftab%3D1');
  });

  it('refuses a revoked session on its very next request', async () => {
    const { c, email } = await browser();
    const other = new Client(srv.url);
    await other.login(email);
    assert.equal((await other.get('/api/orders/x')).status, 200);
    const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await c.get('/v1/sessions'));
    await c.delete(`/v1/sessions/${list.sessions.find((s) => !s.current)!.handle}`);
    assert.equal((await other.get('/api/orders/x')).status, 401);
    assert.equal((await c.get('/api/orders/x')).status, 200);
  });

  it('refuses a cross-site POST through the gateway', async () => {
    const { c } = await browser();
    const res = await c.post('/api/orders/new', '{}', { 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' });
    assert.equal(res.status, 403);
    assert.equal((await json(res)).code, 'csrf_failed');
  });

  it('answers 504 when the upstream hangs past the route timeout', async () => {
    const { c } = await browser();
    const t = Date.now();
    const res = await c.get('/api/slow/x');
    const elapsed = Date.now() - t;
    assert.equal(res.status, 504);
    assert.equal((await json(res)).code, 'upstream_timeout');
    // the upstream never answers, so the 504 is the route's own timeout (500 ms), never sooner
    // (no upper bound: how soon after it the answer comes depends on the machine's load)
    assert.ok(elapsed >= 450, `took ${elapsed} ms`);
  });

  it('answers 502 when the upstream is down', async () => {
    const { c } = await browser();
    const res = await c.get('/api/down/x');
    assert.equal(res.status, 502);
    assert.equal((await json(res)).code, 'upstream_unavailable');
  });

  it('refuses a route needing a role the user lacks; grants it once given, with fresh claims', async () => {
    const { c, sub } = await browser();
    const before = await json<Echo>(await c.get('/api/orders/x'));
    const res = await c.get('/api/admin/x');
    assert.equal(res.status, 403);
    assert.equal((await json(res)).code, 'forbidden');
    const op = new Client(srv.url);
    await op.request('PUT', `/v1/admin/users/${sub}/roles`, { roles: ['admin'] }, { authorization: `Bearer ${ADMIN_KEY}` });
    const ok = await c.get('/api/admin/x');
    assert.equal(ok.status, 200);
    const after = await json<Echo>(await c.get('/api/orders/x'));
    assert.notEqual(after.authorization, before.authorization, 'a role change mints a fresh token');
    assert.deepEqual(after.claims!.roles, ['admin']);
  });
});

const cookieOf = (c: Client) => [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

/** A request exactly as written: no URL normalisation, any header. */
function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer) {
  return new Promise<{ status: number; headers: Record<string, string | undefined>; body: string }>((resolve, reject) => {
    // host/port/path options: a URL string would be parsed, and %2e%2e resolved, before sending
    const req = httpRequest({ host: '127.0.0.1', port: srv.config.port, path, method, headers });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers as Record<string, string | undefined>, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('gateway: what is forwarded', () => {
  it('Expect: 100-continue (curl, bodies over 1 MB) is answered here, stripped, and the body still streams through', async () => {
    const { c } = await browser();
    const size = 2 * 1024 * 1024;
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${srv.url}/api/orders/upload`, {
        method: 'PUT',
        headers: { cookie, expect: '100-continue', 'content-type': 'application/octet-stream', 'content-length': String(size) },
      });
      req.on('continue', () => req.end(Buffer.alloc(size, 0x61)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
    });
    assert.equal(status, 200, body.slice(0, 200));
    const echo = JSON.parse(body) as Echo;
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.bodyBytes, size);
    assert.equal(echo.headers.expect, undefined);
  });

  it('client-supplied forwarding and routing headers never reach the upstream; only the ones latchkey sets do', async () => {
    const { c } = await browser();
    const spoofed: Record<string, string> = {
      forwarded: 'for=6.6.6.6;host=evil.example;proto=https',
      'x-real-ip': '6.6.6.6',
      'x-original-url': '/admin',
      'x-rewrite-url': '/admin',
      'x-forwarded-prefix': '/evil',
      'x-forwarded-port': '6666',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'https',
      'x-client-ip': '6.6.6.6',
      'true-client-ip': '6.6.6.6',
      'x-http-method-override': 'DELETE',
      via: '1.1 evil',
    };
    const res = await c.get('/api/orders/x', spoofed);
    assert.equal(res.status, 200);
    const echo = await json<Echo>(res);
    for (const name of Object.keys(spoofed)) {
      if (name === 'x-forwarded-host' || name === 'x-forwarded-for' || name === 'x-forwarded-proto') continue;
      assert.equal(echo.headers[name], undefined, name);
    }
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-host'], new URL(srv.config.issuer).host);
  });

  it('a query is passed on as sent, "../" and undecodable escapes included; only the path is checked', async () => {
    const { c } = await browser();
    for (const query of ['?path=../../etc/passwd', '?q=%ff', '?q=%E4%B8%AD&r=a%2F..%2Fb', '?a=%', '?x=..%5C..']) {
      const res = await raw('GET', `/api/orders/files${query}`, { cookie: cookieOf(c) });
      assert.equal(res.status, 200, `${query} ${res.body}`);
      assert.equal((JSON.parse(res.body) as Echo).url, `/files${query}`);
    }
  });

  it('refuses a path that leaves the route once decoded, or spells the prefix with escapes, with 400 invalid_path', async () => {
    const { c } = await browser();
    for (const path of ['/api/orders/%2e%2e/admin', '/api/orders/a%2F..%2F..%2Fadmin', '/api/orders/a%5c..%5cadmin', '/api/orders/..%5cadmin', '/api/orde%72s/x']) {
      // node:http sends the path as written (fetch would resolve %2e%2e itself)
      const res = await raw('GET', path, { cookie: cookieOf(c) });
      assert.equal(res.status, 400, `${path} ${res.body}`);
      assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
      assert.equal(JSON.parse(res.body).code, 'invalid_path', path);
    }
  });
});

describe('gateway: prefixes over built-in routes', () => {
  it('refuses to start with invalid config: gateway.routes.N.prefix naming the route it overlaps', async () => {
    for (const [prefix, route] of [
      ['/v1/session', 'GET /v1/session'],
      ['/oauth', '/oauth/'],
      ['/account', '/account'],
      ['/v1/sessions/abc', '/v1/sessions/:handle'],
      ['/.well-known', '/.well-known/'],
      ['/healthz', 'GET /healthz'],
    ] as const) {
      const routes = [
        { prefix: '/api/ok', upstream: 'http://127.0.0.1:9', audience: 'ok' },
        { prefix, upstream: 'http://127.0.0.1:9', audience: 'x' },
      ];
      await assert.rejects(startServer({ gateway: { routes } }), (err: Error) => {
        assert.equal(err.name, 'ConfigError');
        assert.ok(err.message.startsWith(`invalid config: gateway.routes.1.prefix: ${prefix} overlaps the built-in route `), err.message);
        assert.ok(err.message.includes(route), err.message);
        return true;
      });
    }
  });

  it('starts with prefixes that overlap nothing, and with the catch-all "/"', async () => {
    const s = await startServer({ gateway: { routes: [{ prefix: '/', upstream: 'http://127.0.0.1:9', audience: 'x' }, { prefix: '/v2', upstream: 'http://127.0.0.1:9', audience: 'y' }] } });
    await s.close();
  });
});
