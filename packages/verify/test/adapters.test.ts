/**
 * The adapters on the real frameworks: Express and Fastify listening on
 * 127.0.0.1, Hono and the framework-free adapter through their fetch
 * handlers. Each mounts the same routes; every refusal must be the RFC 6750
 * answer.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { createVerifier, refusalResponse, requestVerifier, type Verifier } from '../src/index.js';
import { requireToken } from '../src/adapters/express.js';
import { latchkeyAuth, tokenHook } from '../src/adapters/fastify.js';
import { honoAuth } from '../src/adapters/hono.js';
import { jwksOf, newKey, now, token } from './helpers.js';

const ISSUER = 'https://auth.example.com';
const AUD = 'orders';
const key = newKey('EdDSA');
const verifier = createVerifier({ issuer: ISSUER, audience: AUD, jwks: jwksOf(key) });
// keys that can never be fetched: every verification must fail closed with 503
const down = createVerifier({ issuer: ISSUER, audience: AUD, jwksUri: 'http://127.0.0.1:1/jwks.json' });
const ADMIN = { scope: 'orders:write', roles: ['admin'], realm: 'orders' };

type Send = (path: string, headers?: Record<string, string>) => Promise<Response>;
interface Harness {
  send: Send;
  close(): Promise<void>;
}


const harnesses: Record<string, () => Promise<Harness>> = {
  async express() {
    const app = express();
    app.get('/public', (_req, res) => res.json({ ok: true }));
    app.get('/orders', requireToken(verifier), (req, res) => res.json({ sub: req.claims!.sub }));
    app.get('/admin', requireToken(verifier, ADMIN), (req, res) => res.json({ sub: req.claims!.sub }));
    app.get('/down', requireToken(down), (_req, res) => res.json({}));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { send: (p, h) => fetch(url + p, { headers: h }), close: () => new Promise((r) => server.close(() => r())) };
  },
  async fastify() {
    const app = Fastify();
    app.get('/public', async () => ({ ok: true }));
    await app.register(async (scope) => {
      await scope.register(latchkeyAuth, { verifier });
      scope.get('/orders', async (request) => ({ sub: request.claims!.sub }));
    });
    app.get('/admin', { onRequest: tokenHook(verifier, ADMIN) }, async (request) => ({ sub: request.claims!.sub }));
    app.get('/down', { onRequest: tokenHook(down) }, async () => ({}));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { send: (p, h) => fetch(url + p, { headers: h }), close: () => app.close() };
  },
  async hono() {
    const app = new Hono();
    app.get('/public', (c) => c.json({ ok: true }));
    app.get('/orders', honoAuth(verifier), (c) => c.json({ sub: c.get('claims').sub }));
    app.get('/admin', honoAuth(verifier, ADMIN), (c) => c.json({ sub: c.get('claims').sub }));
    app.get('/down', honoAuth(down), (c) => c.json({}));
    return { send: async (p, h) => app.fetch(new Request(`http://local${p}`, { headers: h })), close: async () => undefined };
  },
  async 'Request (framework-free)'() {
    const routes: Record<string, [Verifier, typeof ADMIN | undefined] | null> = { '/public': null, '/orders': [verifier, undefined], '/admin': [verifier, ADMIN], '/down': [down, undefined] };
    const guards = new Map(Object.entries(routes).map(([p, r]) => [p, r && { auth: requestVerifier(r[0], r[1]), req: r[1] }]));
    const handler = async (request: Request): Promise<Response> => {
      const g = guards.get(new URL(request.url).pathname);
      if (!g) return Response.json({ ok: true });
      try {
        const claims = await g.auth(request);
        return Response.json({ sub: claims.sub });
      } catch (err) {
        return refusalResponse(err, g.req);
      }
    };
    return { send: async (p, h) => handler(new Request(`http://local${p}`, { headers: h })), close: async () => undefined };
  },
};

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

for (const [name, start] of Object.entries(harnesses)) {
  describe(`${name} adapter`, () => {
    let h: Harness;
    before(async () => {
      h = await start();
    });
    after(() => h.close());

    it('passes a valid token and gives the handler its claims', async () => {
      const res = await h.send('/orders', bearer(token(key, ISSUER, AUD, { sub: 'u_ada' })));
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { sub: 'u_ada' });
      const lower = await h.send('/orders', { authorization: `bearer ${token(key, ISSUER, AUD)}` });
      assert.equal(lower.status, 200, 'the scheme is case-insensitive');
    });

    it('leaves unguarded routes alone', async () => {
      assert.equal((await h.send('/public')).status, 200);
    });

    it('no token: 401 with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
      for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer' }] as Record<string, string>[]) {
        const res = await h.send('/orders', headers);
        assert.equal(res.status, 401);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer');
        assert.deepEqual(await res.json(), { error: 'missing_token', error_description: 'bearer token required' });
      }
    });

    it('a bad token: 401 invalid_token with a fixed description', async () => {
      const expired = token(key, ISSUER, AUD, { iat: now() - 900, exp: now() - 600 });
      const res = await h.send('/orders', bearer(expired));
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer error="invalid_token", error_description="token expired"');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.deepEqual(await res.json(), { error: 'expired', error_description: 'token expired' });
      const junk = await h.send('/orders', bearer('a b'));
      assert.equal(junk.status, 401);
      assert.match(junk.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
      const forged = await h.send('/orders', bearer(token(newKey('EdDSA'), ISSUER, AUD)));
      assert.equal(forged.status, 401);
    });

    it('a valid token without the required scope or role: 403 insufficient_scope naming the scope', async () => {
      const noScope = await h.send('/admin', bearer(token(key, ISSUER, AUD, { roles: ['admin'] })));
      assert.equal(noScope.status, 403);
      assert.equal(
        noScope.headers.get('www-authenticate'),
        'Bearer realm="orders", error="insufficient_scope", error_description="token lacks the required scope or role", scope="orders:write"',
      );
      const noRole = await h.send('/admin', bearer(token(key, ISSUER, AUD, { scope: 'orders:read orders:write' })));
      assert.equal(noRole.status, 403);
      const both = await h.send('/admin', bearer(token(key, ISSUER, AUD, { scope: 'orders:read orders:write', roles: ['admin'] })));
      assert.equal(both.status, 200);
      const bad = await h.send('/admin', bearer('x.y.z'));
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('www-authenticate')!, /^Bearer realm="orders", error="invalid_token"/);
    });

    it('keys unavailable: 503 with Retry-After, not 401 (a client would only refresh and retry)', async () => {
      const res = await h.send('/down', bearer(token(key, ISSUER, AUD)));
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5');
      assert.equal(((await res.json()) as { error: string }).error, 'jwks_unavailable');
    });
  });
}

describe('requirements are validated when the middleware is made', () => {
  it('refuses scopes and realms that cannot go into a header', () => {
    assert.throws(() => requireToken(verifier, { scope: ['a"b'] }), /scope/);
    assert.throws(() => honoAuth(verifier, { roles: ['x\\y'] }), /roles/);
    assert.throws(() => tokenHook(verifier, { realm: 'a"b' }), /realm/);
  });
});
