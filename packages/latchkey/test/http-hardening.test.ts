/**
 * HTTP hardening. Every error the app answers has a problem+json body (RFC
 * 6749 error JSON under /oauth), including the ones Fastify and node's HTTP
 * parser raise before a route runs; wrong methods get 405 with Allow; JSON
 * routes take JSON only; HSTS on https; every cookie is prefixed and locked
 * down. Against a real server on loopback, with raw sockets where a client
 * library would refuse or rewrite the request.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { HSTS } from '../src/http/server.js';
import type { SqliteStore } from '../src/store/sqlite/index.js';
import { ADMIN_KEY, Client, json, startServer, type TestServer } from './helpers.js';

let srv: TestServer;
let release: () => void = () => undefined;
const gate = new Promise<void>((resolve) => {
  release = resolve;
});

const FEED_CLIENT = { id: 'feed-reader', secret: 'feed-reader-secret-0123456789abcdef0123', revocationFeed: true };

before(async () => {
  srv = await startServer(
    { clients: [FEED_CLIENT] },
    {
      plugins: [
        // a request that stays in flight until the test lets it go (the shutdown test)
        async (app: FastifyInstance) => {
          app.get('/test/wait', async () => {
            await gate;
            return { ok: true };
          });
        },
      ],
    },
  );
});
after(() => srv.close());

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parse every HTTP/1.1 response in `text` (Content-Length framed, as every one here is). */
function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const lines = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const length = Number(headers['content-length'] ?? 0);
    const body = Buffer.from(rest.slice(end + 4), 'latin1').subarray(0, length).toString('utf8');
    out.push({ status: Number(lines[0]!.split(' ')[1]), headers, body });
    rest = rest.slice(end + 4 + Buffer.byteLength(body));
  }
  return out;
}

/** Write bytes on a fresh socket and read until the server closes it (or `count` responses arrived). */
function rawExchange(data: string, count = 1): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(srv.config.port, '127.0.0.1');
    let text = '';
    const done = () => {
      socket.destroy();
      resolve(parseResponses(text));
    };
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (parseResponses(text).length >= count) done();
    });
    socket.on('end', done);
    socket.on('error', (err) => (text ? done() : reject(err)));
    socket.write(data);
  });
}

/** Everything the server writes on a fresh socket until it closes it. */
function rawText(data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(srv.config.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', (err) => (text ? resolve(text) : reject(err)));
    socket.write(data);
  });
}

const get = (path: string, headers = '') => rawExchange(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n`);

function assertProblem(res: RawResponse, status: number, code: string) {
  assert.equal(res.status, status, res.body);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  const body = JSON.parse(res.body) as { status: number; code: string; type: string };
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(body.type, `urn:latchkey:problem:${code}`);
}

describe('errors raised before a route runs', () => {
  it('a path parameter over maxParamLength: 414 problem+json', async () => {
    const [res] = await get(`/v1/admin/users/${'a'.repeat(300)}`, `Authorization: Bearer ${ADMIN_KEY}\r\n`);
    assertProblem(res!, 414, 'uri_too_long');
  });

  it('an undecodable path: 400 bad_url problem+json', async () => {
    const [res] = await get('/v1/admin/users/%ff', `Authorization: Bearer ${ADMIN_KEY}\r\n`);
    assertProblem(res!, 400, 'bad_url');
  });

  it('headers over node\'s limit: 431 problem+json', async () => {
    const [res] = await get('/healthz', `X-Big: ${'a'.repeat(20_000)}\r\n`);
    assertProblem(res!, 431, 'headers_too_large');
  });

  it('a malformed request: 400 problem+json, with no body for HEAD', async () => {
    const [res] = await rawExchange('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNot a header line\r\n\r\n');
    assertProblem(res!, 400, 'bad_request');
    const head = await rawText('HEAD /healthz?é HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.match(head, /content-type: application\/problem\+json/);
    assert.ok(head.endsWith('\r\n\r\n'), JSON.stringify(head));
  });

  it('a request arriving while the server shuts down: 503 problem+json', async () => {
    // two pipelined requests: the first holds the connection open, the second arrives during close()
    const socket = connect(srv.config.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /test/wait HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    const closing = srv.lk.http.close();
    await new Promise((r) => setTimeout(r, 50));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    release();
    await closing;
    await new Promise<void>((resolve) => {
      if (socket.destroyed) resolve();
      else socket.once('close', () => resolve());
      setTimeout(resolve, 2000);
    });
    socket.destroy();
    const [first, second] = parseResponses(text);
    assert.equal(first!.status, 200);
    assertProblem(second!, 503, 'shutting_down');
    // the rest of this file needs a live server
    await srv.close();
    srv = await startServer({ clients: [FEED_CLIENT] });
  });
});

describe('HEAD', () => {
  it('HEAD on the revocation feed answers its headers at once and subscribes nothing (found by the fuzz test)', { timeout: 10_000 }, async () => {
    const basic = `Basic ${Buffer.from(`${FEED_CLIENT.id}:${FEED_CLIENT.secret}`).toString('base64')}`;
    const text = await rawText(`HEAD /v1/revocations/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${basic}\r\nConnection: close\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /content-type: text\/event-stream/);
    assert.equal(srv.lk.revocations.subscribers, 0);
    // credentials are still required
    const anon = await rawText('HEAD /v1/revocations/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(anon, /^HTTP\/1\.1 401 /);
  });
});

describe('JSON routes take JSON only', () => {
  const sessionRows = () => ((srv.lk.store as SqliteStore).db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n;

  it('text/plain to a JSON route is 415, not 400', async () => {
    const c = new Client(srv.url);
    const res = await c.post('/v1/login', JSON.stringify({ email: 'a@example.com', password: 'x' }), { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.equal((await json(res)).code, 'unsupported_media_type');
  });

  it('bodyless POST /v1/logout and /v1/sessions/revoke-others refuse a non-JSON content type with 415 and end nothing', async () => {
    const c = new Client(srv.url);
    assert.equal((await c.signup(`ct.${process.pid}@example.com`)).status, 201);
    const other = new Client(srv.url);
    assert.equal((await other.login(`ct.${process.pid}@example.com`)).status, 200);
    const before = sessionRows();
    for (const [type, body] of [
      ['text/plain', ''],
      ['text/plain', 'x'],
      ['application/x-www-form-urlencoded', 'a=1'],
      ['multipart/form-data; boundary=x', '--x--\r\n'],
    ] as const) {
      for (const path of ['/v1/sessions/revoke-others', '/v1/logout']) {
        const res = await c.post(path, body, { 'content-type': type });
        assert.equal(res.status, 415, `${path} ${type}`);
        assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      }
    }
    // a body with no content type at all (fetch with a Blob body) is no JSON either
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    for (const path of ['/v1/sessions/revoke-others', '/v1/logout']) {
      const [res] = await rawExchange(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`);
      assertProblem(res!, 415, 'unsupported_media_type');
    }
    assert.equal(sessionRows(), before);
    assert.equal((await c.get('/v1/session')).status, 200);
    assert.equal((await other.get('/v1/session')).status, 200);
    // invalid JSON is still refused, and ends nothing
    for (const path of ['/v1/sessions/revoke-others', '/v1/logout']) {
      const res = await c.post(path, '{', { 'content-type': 'application/json' });
      assert.equal(res.status, 400, path);
      assert.equal((await json(res)).code, 'invalid_json');
    }
    assert.equal(sessionRows(), before);
    // no content type and no body (fetch, curl -X POST): still fine
    assert.equal((await c.post('/v1/sessions/revoke-others')).status, 200);
    assert.equal((await other.get('/v1/session')).status, 401);
    assert.equal((await c.post('/v1/logout')).status, 204);
  });
});

describe('bodyless JSON POSTs with application/json and no body (fetch and axios send the header anyway)', () => {
  it('POST /v1/sessions/revoke-others and /v1/logout with content-type application/json and an empty body do their work', async () => {
    const email = `empty-json.${process.pid}@example.com`;
    const c = new Client(srv.url);
    assert.equal((await c.signup(email)).status, 201);
    const other = new Client(srv.url);
    assert.equal((await other.login(email)).status, 200);
    const third = new Client(srv.url);
    assert.equal((await third.login(email)).status, 200);
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    // the header with Content-Length: 0, as fetch sends it
    const [res] = await rawExchange(
      `POST /v1/sessions/revoke-others HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(res!.status, 200, res!.body);
    assert.deepEqual(JSON.parse(res!.body), { revoked: 2 });
    assert.equal((await other.get('/v1/session')).status, 401);
    assert.equal((await third.get('/v1/session')).status, 401);
    const again = await c.post('/v1/sessions/revoke-others', '', { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(again.status, 200);
    assert.deepEqual(await json(again), { revoked: 0 });
    const out = await c.post('/v1/logout', '', { 'content-type': 'application/json' });
    assert.equal(out.status, 204);
    assert.equal((await c.get('/v1/session')).status, 401);
    // logout without a session (already signed out) is fine too
    assert.equal((await new Client(srv.url).post('/v1/logout', '', { 'content-type': 'application/json' })).status, 204);
  });

  it('a JSON route that needs a body still refuses an empty one with 400 invalid_json', async () => {
    const res = await new Client(srv.url).post('/v1/login', '', { 'content-type': 'application/json' });
    assert.equal(res.status, 400);
    assert.equal((await json(res)).code, 'invalid_json');
  });
});

describe('wrong methods: 405 with Allow', () => {
  it('the OAuth endpoints answer 405 with Allow: POST and RFC 6749 error JSON', async () => {
    for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const res = await fetch(srv.url + path, { method });
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.equal(res.headers.get('allow'), 'POST');
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(res.headers.get('cache-control'), 'no-store');
        assert.equal((await json(res)).error, 'invalid_request');
      }
    }
    const unknown = await fetch(`${srv.url}/oauth/nothing`);
    assert.equal(unknown.status, 404);
    assert.equal((await json(unknown)).error, 'invalid_request');
  });

  it('the JSON API answers 405 problem+json with Allow; an unknown path is still 404', async () => {
    for (const [method, path, allow] of [
      ['GET', '/v1/tokens', 'POST'],
      ['GET', '/v1/login', 'POST'],
      ['PUT', '/v1/session', 'GET, HEAD'],
      ['POST', '/v1/sessions/abc', 'DELETE'],
      ['DELETE', '/.well-known/jwks.json', 'GET, HEAD'],
    ] as const) {
      const res = await fetch(srv.url + path, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
      assert.equal((await json(res)).code, 'method_not_allowed');
    }
    const res = await fetch(`${srv.url}/v1/nothing`);
    assert.equal(res.status, 404);
    assert.equal((await json(res)).code, 'not_found');
  });
});

describe('HSTS', () => {
  it('is sent on every answer when the issuer is https, and not over plain http', async () => {
    assert.equal((await fetch(`${srv.url}/healthz`)).headers.get('strict-transport-security'), null);
    const tls = await startServer({ issuer: 'https://auth.example.com' });
    try {
      for (const path of ['/healthz', '/signin', '/v1/nothing', '/.well-known/jwks.json']) {
        const res = await fetch(tls.url + path);
        assert.equal(res.headers.get('strict-transport-security'), HSTS, path);
      }
      assert.equal(HSTS, 'max-age=63072000; includeSubDomains');
    } finally {
      await tls.close();
    }
  });
});

describe('cookies latchkey sets', () => {
  it('each one is __Host- (Secure, Path=/, no Domain) or __Secure- with a narrow path, HttpOnly and SameSite', async () => {
    const seen: string[] = [];
    const c = new Client(srv.url);
    const email = `cookies.${process.pid}@example.com`;
    await c.signup(email);
    seen.push(...c.lastSetCookie);
    await c.get('/signin', { cookie: '' });
    seen.push(...(await fetch(`${srv.url}/signin`)).headers.getSetCookie());
    const login = await fetch(`${srv.url}/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'correct horse battery staple', refreshCookie: true }),
    });
    assert.equal(login.status, 200);
    seen.push(...login.headers.getSetCookie());
    await c.post('/v1/logout');
    seen.push(...c.lastSetCookie);
    const names = new Set(seen.map((sc) => sc.slice(0, sc.indexOf('='))));
    assert.deepEqual([...names].sort(), ['__Host-latchkey', '__Host-latchkey-csrf', '__Host-latchkey-device', '__Secure-latchkey-refresh']);
    for (const sc of seen) {
      const attrs = sc.split(';').slice(1).map((a) => a.trim().toLowerCase());
      assert.ok(attrs.includes('secure'), sc);
      assert.ok(attrs.includes('httponly'), sc);
      assert.ok(attrs.some((a) => a === 'samesite=lax' || a === 'samesite=strict'), sc);
      assert.ok(!attrs.some((a) => a.startsWith('domain=')), sc);
      if (sc.startsWith('__Host-')) assert.ok(attrs.includes('path=/'), sc);
      else assert.ok(attrs.includes('path=/oauth/token'), sc);
    }
  });
});
