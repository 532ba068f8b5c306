/** Scaffolding for the token-client suites: logins at /v1/tokens, form posts, and oauth4webapi set up against a test server. */
import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { Client, json, type TestServer } from './helpers.js';

export const PASSWORD = 'correct horse battery staple';
export const MOBILE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148';
export const INTROSPECTOR = { id: 'orders-api', secret: 'orders-api-secret-0123456789abcdef0123' };

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token?: string;
  scope?: string;
}

let n = 0;
export const newEmail = (tag = 't') => `${tag}${++n}.${process.pid}@example.com`;

/** Sign up a user through the browser API; returns the browser client and the user's id. */
export async function signup(srv: TestServer, email = newEmail()): Promise<{ browser: Client; email: string; userId: string }> {
  const browser = new Client(srv.url);
  const res = await browser.signup(email, PASSWORD);
  assert.equal(res.status, 201);
  const body = await json<{ user: { id: string } }>(res);
  return { browser, email, userId: body.user.id };
}

/** A server to send requests to: a test server, or a node of a cluster (test/cluster/). */
type At = Pick<TestServer, 'url'>;

/** POST /v1/tokens as a mobile app would. */
export async function tokenLogin(srv: At, email: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return fetch(`${srv.url}/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': MOBILE_UA, ...headers },
    body: JSON.stringify({ email, password: PASSWORD, ...extra }),
  });
}

export async function loginTokens(srv: At, email: string): Promise<TokenResponse> {
  const res = await tokenLogin(srv, email);
  assert.equal(res.status, 200);
  return json<TokenResponse>(res);
}

/** A form-encoded POST (the OAuth endpoints' format). */
export function form(srv: At, path: string, params: Record<string, string> | string, headers: Record<string, string> = {}) {
  const body = typeof params === 'string' ? params : new URLSearchParams(params).toString();
  return fetch(`${srv.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
}

/** The server as oauth4webapi sees it, from its RFC 8414 metadata. */
export async function discover(srv: TestServer): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(srv.config.issuer);
  // the test issuer is http://localhost:PORT; fetch the metadata from the listening address
  const res = await fetch(`${srv.url}/.well-known/oauth-authorization-server`);
  const as = await oauth.processDiscoveryResponse(issuer, res);
  // endpoints name the issuer's host; point them at the loopback address the server listens on
  const local = (u: string | undefined) => u && u.replace(srv.config.issuer, srv.url);
  return {
    ...as,
    token_endpoint: local(as.token_endpoint),
    revocation_endpoint: local(as.revocation_endpoint),
    introspection_endpoint: local(as.introspection_endpoint),
    jwks_uri: local(as.jwks_uri),
  };
}

export const insecure = { [oauth.allowInsecureRequests]: true } as const;
