/**
 * Revocation (RFC 7009) and introspection (RFC 7662) with oauth4webapi, and
 * malformed token-endpoint requests: always RFC 6749 §5.2 error JSON, never 500.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { json, startServer, type TestServer } from './helpers.js';
import { discover, form, insecure, INTROSPECTOR, loginTokens, signup, type TokenResponse } from './token-helpers.js';

let clock = Date.now();
let srv: TestServer;
let as: oauth.AuthorizationServer;
const publicClient: oauth.Client = { client_id: 'latchkey' };
const rs: oauth.Client = { client_id: INTROSPECTOR.id };
const NO_INTROSPECT = { id: 'feed-only', secret: 'feed-only-secret-0123456789abcdef01234' };

before(async () => {
  srv = await startServer({ clients: [{ ...INTROSPECTOR }, { ...NO_INTROSPECT, introspect: false }] }, { now: () => clock });
  as = await discover(srv);
});
after(() => srv.close());

async function introspect(token: string, hint?: string): Promise<oauth.IntrospectionResponse> {
  const res = await oauth.introspectionRequest(as, rs, oauth.ClientSecretBasic(INTROSPECTOR.secret), token, {
    ...insecure,
    ...(hint ? { additionalParameters: { token_type_hint: hint } } : {}),
  });
  return oauth.processIntrospectionResponse(as, rs, res);
}

async function revoke(token: string): Promise<void> {
  const res = await oauth.revocationRequest(as, publicClient, oauth.None(), token, insecure);
  await oauth.processRevocationResponse(res);
}

async function refreshStatus(rt: string): Promise<number> {
  return (await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: rt, client_id: 'latchkey' })).status;
}

async function session(): Promise<{ tokens: TokenResponse; userId: string }> {
  const { email, userId } = await signup(srv);
  return { tokens: await loginTokens(srv, email), userId };
}

describe('introspection (RFC 7662)', () => {
  it('an access token is active with its claims; a refresh token too', async () => {
    const { tokens, userId } = await session();
    const at = await introspect(tokens.access_token);
    assert.equal(at.active, true);
    assert.equal(at.sub, userId);
    assert.equal(at.client_id, 'latchkey');
    assert.equal(at.token_type, 'Bearer');
    assert.equal(at.iss, srv.config.issuer);
    assert.ok(typeof at.exp === 'number' && typeof at.jti === 'string');
    const rt = await introspect(tokens.refresh_token!, 'refresh_token');
    assert.equal(rt.active, true);
    assert.equal(rt.sub, userId);
    assert.equal(rt.sid, at.sid);
  });

  it('a rotated refresh token is inactive; its successor active', async () => {
    const { tokens } = await session();
    const res = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    const next = await json<TokenResponse>(res);
    assert.equal((await introspect(tokens.refresh_token!)).active, false);
    assert.equal((await introspect(next.refresh_token!)).active, true);
  });

  it('an expired access token is inactive', async () => {
    const { tokens } = await session();
    clock += 301_000;
    try {
      assert.deepEqual(await introspect(tokens.access_token), { active: false });
    } finally {
      clock -= 301_000;
    }
  });

  it('unknown or garbage tokens are inactive', async () => {
    assert.deepEqual(await introspect('garbage'), { active: false });
    assert.deepEqual(await introspect('a.b.c'), { active: false });
    assert.deepEqual(await introspect('A'.repeat(64)), { active: false });
  });

  it('needs a registered client allowed to introspect: 401 invalid_client otherwise', async () => {
    const { tokens } = await session();
    const attempts: [string, Record<string, string>, Record<string, string>][] = [
      ['no credentials', { token: tokens.access_token }, {}],
      ['public client', { token: tokens.access_token, client_id: 'latchkey' }, {}],
      ['wrong secret', { token: tokens.access_token }, { authorization: `Basic ${Buffer.from(`${INTROSPECTOR.id}:wrong`).toString('base64')}` }],
      ['unknown client', { token: tokens.access_token, client_id: 'nobody', client_secret: 'x'.repeat(40) }, {}],
      ['not allowed to introspect', { token: tokens.access_token, client_id: NO_INTROSPECT.id, client_secret: NO_INTROSPECT.secret }, {}],
    ];
    for (const [what, params, headers] of attempts) {
      const res = await form(srv, '/oauth/introspect', params, headers);
      assert.equal(res.status, 401, what);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic/, what);
      assert.equal((await json(res)).error, 'invalid_client', what);
    }
  });

  it('accepts client_secret_post as well', async () => {
    const { tokens } = await session();
    const res = await form(srv, '/oauth/introspect', { token: tokens.access_token, client_id: INTROSPECTOR.id, client_secret: INTROSPECTOR.secret });
    assert.equal(res.status, 200);
    assert.equal((await json(res)).active, true);
  });
});

describe('revocation (RFC 7009)', () => {
  it('revoking a refresh token ends its session: refresh fails, the access token introspects inactive', async () => {
    const { tokens } = await session();
    await revoke(tokens.refresh_token!);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
    assert.equal((await introspect(tokens.access_token)).active, false);
    assert.equal((await introspect(tokens.refresh_token!)).active, false);
  });

  it('revoking the access token ends the token session too', async () => {
    const { tokens } = await session();
    await revoke(tokens.access_token);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
  });

  it('answers 200 for unknown and garbage tokens', async () => {
    await revoke('A'.repeat(64));
    await revoke('garbage');
    const res = await form(srv, '/oauth/revoke', { token: 'garbage', token_type_hint: 'something_else' });
    assert.equal(res.status, 200);
  });

  it('another client cannot revoke the first-party client’s token', async () => {
    const { tokens } = await session();
    const res = await form(srv, '/oauth/revoke', { token: tokens.refresh_token! }, {
      authorization: `Basic ${Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString('base64')}`,
    });
    assert.equal(res.status, 200);
    assert.equal(await refreshStatus(tokens.refresh_token!), 200);
  });

  it('the audit log records the revocation', async () => {
    const { tokens, userId } = await session();
    await revoke(tokens.refresh_token!);
    const events = await srv.lk.context.audit.list({ userId, type: 'refresh_family_revoked' });
    assert.equal(events.length, 1);
  });
});

describe('malformed requests get RFC 6749 errors, never 500', () => {
  const cases: [string, () => Promise<Response>, number, string][] = [
    ['no grant_type', () => form(srv, '/oauth/token', { refresh_token: 'x' }), 400, 'invalid_request'],
    ['an unsupported grant', () => form(srv, '/oauth/token', { grant_type: 'password', username: 'a', password: 'b' }), 400, 'unsupported_grant_type'],
    ['authorization_code', () => form(srv, '/oauth/token', { grant_type: 'authorization_code', code: 'x' }), 400, 'unsupported_grant_type'],
    ['no refresh_token', () => form(srv, '/oauth/token', { grant_type: 'refresh_token' }), 400, 'invalid_request'],
    ['an empty refresh_token', () => form(srv, '/oauth/token', 'grant_type=refresh_token&refresh_token='), 400, 'invalid_request'],
    ['a garbage refresh_token', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: '%%%' }), 400, 'invalid_grant'],
    ['a repeated parameter', () => form(srv, '/oauth/token', 'grant_type=refresh_token&refresh_token=a&refresh_token=b'), 400, 'invalid_request'],
    ['a repeated grant_type', () => form(srv, '/oauth/token', 'grant_type=refresh_token&grant_type=refresh_token&refresh_token=a'), 400, 'invalid_request'],
    ['bad percent-encoding', () => form(srv, '/oauth/token', 'grant_type=refresh_token&refresh_token=%E0%A4%A%ZZ'), 400, 'invalid_grant'],
    ['a grant type with bad percent-encoding', () => form(srv, '/oauth/token', 'grant_type=refresh_%ZZtoken'), 400, 'unsupported_grant_type'],
    [
      'a JSON body',
      () => fetch(`${srv.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"grant_type":"refresh_token"}' }),
      400,
      'invalid_request',
    ],
    [
      'invalid JSON',
      () => fetch(`${srv.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }),
      400,
      'invalid_request',
    ],
    ['an unknown content type', () => fetch(`${srv.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<x/>' }), 400, 'invalid_request'],
    ['no body', () => fetch(`${srv.url}/oauth/token`, { method: 'POST' }), 400, 'invalid_request'],
    ['an oversized body', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'a'.repeat(20000) }), 400, 'invalid_request'],
    ['an unknown client_id', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'nobody' }), 401, 'invalid_client'],
    [
      'a secret for the public client',
      () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'latchkey', client_secret: 'nope' }),
      401,
      'invalid_client',
    ],
    ['malformed Basic credentials', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization: 'Basic !!!' }), 401, 'invalid_client'],
    ['Basic without a colon', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization: `Basic ${Buffer.from('abc').toString('base64')}` }), 401, 'invalid_client'],
    ['a scope beyond the grant', () => form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'x', scope: 'admin' }), 400, 'invalid_scope'],
    ['revoke without token', () => form(srv, '/oauth/revoke', {}), 400, 'invalid_request'],
    ['revoke with a JSON body', () => fetch(`${srv.url}/oauth/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"x"}' }), 400, 'invalid_request'],
    [
      'introspect without token',
      () => form(srv, '/oauth/introspect', {}, { authorization: `Basic ${Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString('base64')}` }),
      400,
      'invalid_request',
    ],
  ];

  for (const [what, send, status, error] of cases) {
    it(`${what}: ${status} ${error}`, async () => {
      const res = await send();
      assert.equal(res.status, status);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('pragma'), 'no-cache');
      const body = await json<{ error: string; error_description?: string }>(res);
      assert.equal(body.error, error);
      assert.equal(typeof body.error_description, 'string');
    });
  }

  it('GET on the token endpoint is not a 500 either', async () => {
    const res = await fetch(`${srv.url}/oauth/token`);
    assert.ok(res.status >= 400 && res.status < 500, String(res.status));
  });

  it('the browser JSON API still refuses form bodies (the form parser is scoped to /oauth)', async () => {
    const res = await form(srv, '/v1/login', { email: 'a@example.com', password: 'x' });
    assert.equal(res.status, 415);
  });
});
