/** Access tokens (RFC 9068) from POST /v1/tokens, verified by jose against the server's JWKS, and the token session's lifecycle. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { ADMIN_KEY, json, startServer, type TestServer } from './helpers.js';
import { deviceLabel } from '../src/sessions/device.js';
import { form, INTROSPECTOR, MOBILE_UA, loginTokens, newEmail, PASSWORD, signup, tokenLogin, type TokenResponse } from './token-helpers.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({ clients: [{ ...INTROSPECTOR }] });
});
after(() => srv.close());

const jwks = () => createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
const b64json = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

async function introspect(token: string): Promise<Record<string, unknown>> {
  const basic = Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString('base64');
  const res = await form(srv, '/oauth/introspect', { token }, { authorization: `Basic ${basic}` });
  assert.equal(res.status, 200);
  return json(res);
}

describe('POST /v1/tokens', () => {
  it('answers an RFC 6749 §5.1 token response as JSON, no-store, with no cookie', async () => {
    const { email } = await signup(srv);
    const res = await tokenLogin(srv, email);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('pragma'), 'no-cache');
    assert.deepEqual(res.headers.getSetCookie(), []);
    const body = await json<TokenResponse>(res);
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 300);
    assert.match(body.refresh_token!, /^[A-Za-z0-9_-]{64}$/);
  });

  it('refuses a wrong password and an unknown email identically (401 problem)', async () => {
    const { email } = await signup(srv);
    const wrong = await fetch(`${srv.url}/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'not the password at all' }),
    });
    const unknown = await fetch(`${srv.url}/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: newEmail('nobody'), password: PASSWORD }),
    });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.deepEqual(await wrong.json(), await unknown.json());
  });

  it('refuses unknown body fields and non-JSON bodies with 4xx problems', async () => {
    const { email } = await signup(srv);
    assert.equal((await tokenLogin(srv, email, { grant_type: 'password' })).status, 400);
    const res = await fetch(`${srv.url}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<x/>' });
    assert.equal(res.status, 415);
  });

  it('creates a real session: listed with its device, and its handle is the token sid', async () => {
    const { browser, email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    const claims = b64json(tokens.access_token.split('.')[1]!);
    const list = await json<{ sessions: { handle: string; device: string }[] }>(await browser.get('/v1/sessions'));
    const mine = list.sessions.find((s) => s.handle === claims.sid);
    assert.ok(mine, 'the token session is in the user’s session list');
    assert.equal(mine.device, deviceLabel(MOBILE_UA));
  });
});

describe('access token', () => {
  it('has header {alg, kid, typ: at+jwt} and the RFC 9068 claims', async () => {
    const { email, userId } = await signup(srv);
    const { access_token } = await loginTokens(srv, email);
    const [h, p] = access_token.split('.');
    const header = b64json(h!);
    assert.deepEqual(Object.keys(header), ['alg', 'kid', 'typ']);
    assert.equal(header.alg, 'EdDSA');
    assert.equal(header.typ, 'at+jwt');
    const claims = b64json(p!);
    assert.deepEqual(Object.keys(claims), ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid', 'client_id']);
    assert.equal(claims.iss, srv.config.issuer);
    assert.equal(claims.sub, userId);
    assert.match(userId, /^u_[A-Za-z0-9_-]{22}$/);
    assert.equal(claims.aud, 'latchkey');
    assert.equal(claims.client_id, 'latchkey');
    assert.equal((claims.exp as number) - (claims.iat as number), 300);
    assert.match(claims.jti as string, /^[A-Za-z0-9_-]{22}$/);
    assert.match(claims.sid as string, /^[A-Za-z0-9_-]{16}$/);
  });

  it('verifies with jose against the remote JWKS, algorithm pinned', async () => {
    const { email, userId } = await signup(srv);
    const { access_token } = await loginTokens(srv, email);
    const { payload, protectedHeader } = await jwtVerify(access_token, jwks(), {
      issuer: srv.config.issuer,
      audience: 'latchkey',
      algorithms: ['EdDSA'],
      typ: 'at+jwt',
    });
    assert.equal(payload.sub, userId);
    assert.equal(protectedHeader.kid, decodeProtectedHeader(access_token).kid);
    // pinned to another algorithm, the same token is refused
    await assert.rejects(jwtVerify(access_token, jwks(), { algorithms: ['RS256'] }), { code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  });

  it('carries the user’s roles when they have some', async () => {
    const { email, userId } = await signup(srv);
    const put = await fetch(`${srv.url}/v1/admin/users/${userId}/roles`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ roles: ['admin', 'billing'] }),
    });
    assert.equal(put.status, 200);
    const { access_token } = await loginTokens(srv, email);
    assert.deepEqual(b64json(access_token.split('.')[1]!).roles, ['admin', 'billing']);
  });

  it('a refused signature: a token with a flipped payload byte does not verify', async () => {
    const { email } = await signup(srv);
    const { access_token } = await loginTokens(srv, email);
    const [h, p, s] = access_token.split('.');
    const claims = b64json(p!);
    claims.sub = 'u_AAAAAAAAAAAAAAAAAAAAAA';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    await assert.rejects(jwtVerify(forged, jwks(), { algorithms: ['EdDSA'] }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    assert.deepEqual(await introspect(forged), { active: false });
  });
});

describe('well-known documents', () => {
  it('JWKS (RFC 7517): public keys only, kid and alg on each, short public caching, ETag', async () => {
    const res = await fetch(`${srv.url}/.well-known/jwks.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/jwk-set\+json/);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=60');
    const body = await json<{ keys: Record<string, string>[] }>(res);
    assert.ok(body.keys.length >= 1);
    for (const k of body.keys) {
      assert.equal(k.use, 'sig');
      assert.ok(k.kid && k.alg);
      assert.equal(k.d, undefined, 'no private part');
    }
    const again = await fetch(`${srv.url}/.well-known/jwks.json`, { headers: { 'if-none-match': res.headers.get('etag')! } });
    assert.equal(again.status, 304);
  });

  it('RFC 8414 metadata names the issuer, JWKS and the token, revocation and introspection endpoints', async () => {
    const res = await fetch(`${srv.url}/.well-known/oauth-authorization-server`);
    const m = await json<Record<string, unknown>>(res);
    const iss = srv.config.issuer;
    assert.equal(m.issuer, iss);
    assert.equal(m.jwks_uri, `${iss}/.well-known/jwks.json`);
    assert.equal(m.token_endpoint, `${iss}/oauth/token`);
    assert.equal(m.revocation_endpoint, `${iss}/oauth/revoke`);
    assert.equal(m.introspection_endpoint, `${iss}/oauth/introspect`);
    assert.deepEqual(m.grant_types_supported, ['refresh_token']);
    assert.deepEqual(m.access_token_signing_alg_values_supported, ['EdDSA']);
  });
});

describe('the token session ends with every way a session ends', () => {
  async function refreshStatus(refreshToken: string) {
    return (await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'latchkey' })).status;
  }
  const sidOf = (t: TokenResponse) => b64json(t.access_token.split('.')[1]!).sid as string;

  it('DELETE /v1/sessions/:handle from the browser kills the refresh family', async () => {
    const { browser, email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    assert.equal((await browser.delete(`/v1/sessions/${sidOf(tokens)}`)).status, 204);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
    assert.deepEqual(await introspect(tokens.access_token), { active: false });
  });

  it('admin revocation of the session kills it', async () => {
    const { email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    const res = await fetch(`${srv.url}/v1/admin/sessions/${sidOf(tokens)}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 204);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
  });

  it('a password change kills it', async () => {
    const { browser, email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    const res = await browser.post('/v1/password', { currentPassword: PASSWORD, newPassword: 'an entirely new passphrase 42' });
    assert.equal(res.status, 200);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
  });

  it('disabling the user kills it', async () => {
    const { email, userId } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    const res = await fetch(`${srv.url}/v1/admin/users/${userId}/disable`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 200);
    assert.equal(await refreshStatus(tokens.refresh_token!), 400);
  });

  it('while it lives, the family refreshes (control for the cases above)', async () => {
    const { email } = await signup(srv);
    const tokens = await loginTokens(srv, email);
    assert.equal(await refreshStatus(tokens.refresh_token!), 200);
  });
});

describe('token size', () => {
  it('the default EdDSA token with a realistic issuer fits the 420-byte budget', async () => {
    const real = await startServer({ issuer: 'https://auth.example.com' });
    try {
      const { email } = await signup(real);
      const { access_token } = await loginTokens(real, email);
      assert.ok(access_token.length <= 420, `${access_token.length} bytes`);
    } finally {
      await real.close();
    }
  });
});

for (const alg of ['ES256', 'RS256'] as const) {
  describe(`tokens.algorithm ${alg}`, () => {
    it('signs with it and jose verifies with that algorithm pinned', async () => {
      const other = await startServer({ tokens: { algorithm: alg } });
      try {
        const { email } = await signup(other);
        const { access_token } = await loginTokens(other, email);
        assert.equal(decodeProtectedHeader(access_token).alg, alg);
        const set = createRemoteJWKSet(new URL(`${other.url}/.well-known/jwks.json`));
        const { payload } = await jwtVerify(access_token, set, { issuer: other.config.issuer, algorithms: [alg], typ: 'at+jwt' });
        assert.equal(payload.aud, 'latchkey');
      } finally {
        await other.close();
      }
    });
  });
}
