/**
 * Token clients over standard endpoints:
 *
 *   POST /v1/tokens                          first-party login → RFC 6749 §5.1 token response (JSON in, JSON out)
 *   POST /oauth/token                        refresh grant (RFC 6749 §6), form-encoded
 *   POST /oauth/revoke                       RFC 7009
 *   POST /oauth/introspect                   RFC 7662, registered clients only
 *   GET  /.well-known/jwks.json              RFC 7517
 *   GET  /.well-known/oauth-authorization-server   RFC 8414
 *
 * The /oauth endpoints live in their own encapsulated scope: only there are
 * form bodies parsed, and every failure there is RFC 6749 §5.2 error JSON
 * (never problem+json, never a 500 for a client's mistake).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { Type, type Static } from '@sinclair/typebox';
import { isLatchkeyError, LatchkeyError } from '../../errors.js';
import { parseRefreshToken } from '../../refresh/service.js';
import { deviceLabel } from '../../sessions/device.js';
import { parseHandle } from '../../sessions/ids.js';
import type { Session } from '../../store/store.js';
import { basicCredentials, type CallingClient } from '../../tokens/clients.js';
import type { AccessTokenClaims, MintedToken } from '../../tokens/issuer.js';
import type { Context } from '../context.js';
import { Credentials } from '../schemas.js';
import { deviceCookie, rememberDevice } from '../signin.js';

/**
 * SPA mode: the refresh token in an HttpOnly cookie sent only to the token
 * endpoint. `__Host-` would force Path=/ (sent with every request); `__Secure-`
 * still guarantees Secure and lets the path be narrow.
 */
export const REFRESH_COOKIE = '__Secure-latchkey-refresh';
export const REFRESH_COOKIE_PATH = '/oauth/token';

const TokenLogin = Type.Object(
  { ...Credentials.properties, refreshCookie: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

const OAUTH_ERRORS = new Set(['invalid_request', 'invalid_client', 'invalid_grant', 'unsupported_grant_type', 'invalid_scope']);
const FORM = /^application\/x-www-form-urlencoded\s*(;|$)/i;
/** RFC 6749 §5.1 and §5.2: token responses are never cached. */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

const invalidRequest = (why: string) => new LatchkeyError('invalid_request', why);

export async function oauthRoutes(app: FastifyInstance, ctx: Context) {
  const cfg = ctx.config;
  const endpoint = (path: string) => `${cfg.issuer}${path}`;
  const lifetime = cfg.tokens.accessTokenLifetimeSeconds;

  const mint = (user: Parameters<Context['tokens']['mint']>[0]['user'], sessionHandle: string, clientId: string) =>
    ctx.tokens.mint({ user, sessionHandle, audience: cfg.tokens.audience, clientId });

  function tokenResponse(at: MintedToken, refreshToken: string | undefined) {
    return {
      access_token: at.token,
      token_type: 'Bearer',
      expires_in: lifetime,
      ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
      ...(cfg.tokens.scope === undefined ? {} : { scope: cfg.tokens.scope }),
    };
  }

  /** Lives as long as the family can: its session's absolute end. */
  function setRefreshCookie(reply: FastifyReply, token: string, session: Session) {
    const maxAge = Math.max(0, session.expiresAt - session.lastSeenAt);
    reply.setCookie(REFRESH_COOKIE, token, { path: REFRESH_COOKIE_PATH, httpOnly: true, secure: true, sameSite: 'strict', maxAge });
  }

  /** First-party login for token clients: a real session (listed, revocable) plus its refresh family. */
  app.post<{ Body: Static<typeof TokenLogin> }>('/v1/tokens', { schema: { body: TokenLogin } }, async (request, reply) => {
    ctx.csrf.check(request);
    const { email, password, refreshCookie } = request.body;
    let user;
    try {
      user = await ctx.accounts.login(email, password, request.ip, deviceCookie(request));
    } catch (err) {
      if (isLatchkeyError(err) && err.code === 'invalid_credentials') {
        await ctx.audit.record({ type: 'token_login_failed', ip: request.ip });
      }
      throw err;
    }
    const issued = await ctx.refresh.issue(user, {
      clientId: cfg.tokens.clientId,
      ip: request.ip,
      device: deviceLabel(request.headers['user-agent']),
    });
    const at = await mint(user, issued.sessionHandle, cfg.tokens.clientId);
    await ctx.audit.record({ type: 'token_login_succeeded', userId: user.id, session: issued.sessionHandle, ip: request.ip });
    if (refreshCookie) {
      setRefreshCookie(reply, issued.refreshToken, issued.session);
      // a browser client (it keeps cookies): remember it as a known device; native clients get no cookie
      rememberDevice(ctx, request, reply, user);
    }
    return reply.headers(NO_STORE).send(tokenResponse(at, refreshCookie ? undefined : issued.refreshToken));
  });

  app.get('/.well-known/jwks.json', async (request, reply) => {
    const { body, etag } = ctx.keys.jwks();
    // short: a retired key leaves verifiers' caches within a minute (for those that honour it);
    // new keys are published a full pre-publish period before they sign, so this never delays them
    reply.headers({ 'cache-control': 'public, max-age=60', etag, 'access-control-allow-origin': '*' });
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type('application/jwk-set+json').send(body);
  });

  app.get('/.well-known/oauth-authorization-server', async (_request, reply) => {
    reply.headers({ 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' });
    return {
      issuer: cfg.issuer,
      jwks_uri: endpoint('/.well-known/jwks.json'),
      token_endpoint: endpoint('/oauth/token'),
      revocation_endpoint: endpoint('/oauth/revoke'),
      introspection_endpoint: endpoint('/oauth/introspect'),
      // not registered by RFC 8414: the revocation feed, SETs over Server-Sent Events (docs/revocation.md)
      revocation_feed_endpoint: endpoint('/v1/revocations/events'),
      // no authorization endpoint: first-party login is POST /v1/tokens
      response_types_supported: [],
      grant_types_supported: ['refresh_token'],
      token_endpoint_auth_methods_supported: ['none'],
      revocation_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
      introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      // not registered by RFC 8414: the algorithms access tokens are signed with (RFC 9068)
      access_token_signing_alg_values_supported: ctx.keys.algorithms(),
      ...(cfg.tokens.scope === undefined ? {} : { scopes_supported: cfg.tokens.scope.split(' ') }),
    };
  });

  await app.register(async (oauth) => {
    // form bodies only here; fastify-plugin makes the parser this scope's, not the whole app's
    await oauth.register(formbody, { bodyLimit: 8192 });
    oauth.setErrorHandler(oauthErrorHandler);

    oauth.post('/oauth/token', async (request, reply) => {
      const p = formParams(request);
      if (!p.grant_type) throw invalidRequest('grant_type is required');
      if (p.grant_type !== 'refresh_token') throw new LatchkeyError('unsupported_grant_type', 'only the refresh_token grant is supported');
      const caller = identify(request, p);
      if (p.scope !== undefined) {
        const granted = new Set(cfg.tokens.scope?.split(' ') ?? []);
        if (p.scope.split(' ').some((s) => !granted.has(s))) throw new LatchkeyError('invalid_scope', 'the requested scope exceeds the grant');
      }
      let token = p.refresh_token;
      const fromCookie = token === undefined;
      if (fromCookie) {
        token = request.cookies[REFRESH_COOKIE];
        if (!token) throw invalidRequest('refresh_token is required');
        // the cookie is ambient authority: only our own pages may spend it
        ctx.csrf.check(request);
      }
      const r = await ctx.refresh.refresh(token!, { clientId: caller?.id, ip: request.ip });
      const at = await mint(r.user, r.sessionHandle, r.clientId);
      // Failures never touch the cookie: the request that lost a race, or a stale tab, must not
      // clear a newer cookie the browser already holds. Inside the grace window every
      // concurrent caller sets the same successor, so the last write wins harmlessly.
      if (fromCookie) setRefreshCookie(reply, r.refreshToken, r.session);
      return reply.headers(NO_STORE).send(tokenResponse(at, fromCookie ? undefined : r.refreshToken));
    });

    oauth.post('/oauth/revoke', async (request, reply) => {
      const p = formParams(request);
      const caller = identify(request, p) ?? ctx.clients.identify(undefined, undefined);
      if (!p.token) throw invalidRequest('token is required');
      // the hint only orders the search (RFC 7009 §2.1); both kinds are tried
      let revoked = false;
      if (parseRefreshToken(p.token)) {
        revoked = await ctx.refresh.revoke(p.token, caller.id, request.ip);
      } else {
        const claims = await verifiedOrUndefined(p.token);
        // an access token revokes the token-client session it came from (RFC 7009 §2.1 allows
        // revoking the grant); sessions of browsers (gateway tokens) end by logging out
        if (claims && claims.client_id === caller.id) {
          const session = await sessionOf(claims);
          if (session) revoked = await ctx.refresh.revokeSession(session.idHash, caller.id, request.ip);
        }
      }
      if (revoked) reply.clearCookie(REFRESH_COOKIE, { path: REFRESH_COOKIE_PATH, httpOnly: true, secure: true, sameSite: 'strict' });
      // 200 whether or not the token was known: nothing to learn from the answer
      return reply.headers(NO_STORE).send();
    });

    oauth.post('/oauth/introspect', async (request, reply) => {
      const p = formParams(request);
      const caller = identify(request, p);
      if (!caller?.confidential || !caller.client.introspect) {
        throw new LatchkeyError('invalid_client', 'introspection needs a registered client allowed to introspect');
      }
      if (!p.token) throw invalidRequest('token is required');
      const [first, second] = p.token_type_hint === 'refresh_token' ? [refreshInfo, accessInfo] : [accessInfo, refreshInfo];
      const body = (await first(p.token)) ?? (await second(p.token));
      return reply.headers(NO_STORE).send(body ?? { active: false });
    });
  });

  /** Client from HTTP Basic (RFC 6749 §2.3.1) or form parameters; undefined if it sent nothing. */
  function identify(request: FastifyRequest, p: Record<string, string>): CallingClient | undefined {
    const header = request.headers.authorization;
    if (header !== undefined) {
      const basic = basicCredentials(header);
      // one method at a time (RFC 6749 §2.3)
      if (p.client_secret !== undefined) throw invalidRequest('use one client authentication method');
      if (p.client_id !== undefined && p.client_id !== basic.id) throw invalidRequest('client_id does not match the credentials');
      return ctx.clients.identify(basic.id, basic.secret);
    }
    if (p.client_id === undefined && p.client_secret === undefined) return undefined;
    if (p.client_id === undefined) throw invalidRequest('client_secret without client_id');
    return ctx.clients.identify(p.client_id, p.client_secret);
  }

  async function verifiedOrUndefined(token: string): Promise<AccessTokenClaims | undefined> {
    if (token.split('.').length !== 3) return undefined;
    try {
      return await ctx.tokens.verify(token);
    } catch {
      // expired, retired key, bad signature, not ours: all just "not active"
      return undefined;
    }
  }

  /** The live session an access token derives from, or undefined. */
  async function sessionOf(claims: AccessTokenClaims) {
    const handle = typeof claims.sid === 'string' ? parseHandle(claims.sid) : undefined;
    if (!handle) return undefined;
    const session = await ctx.store.findSessionByHandle(handle, claims.sub);
    return session && ctx.sessions.isLive(session) ? session : undefined;
  }

  async function accessInfo(token: string) {
    const claims = await verifiedOrUndefined(token);
    if (!claims) return undefined;
    // a valid signature is not enough: the answer must agree with the revocation feed, so a verifier
    // falling back to introspection never accepts what subscribed verifiers refuse: the session
    // must be live, the user enabled, and the token minted at or after the user's cutoff (roles
    // changed, disabled, signed out everywhere, password changed). A retired key fails verify().
    if (!(await sessionOf(claims))) return { active: false };
    const user = await ctx.store.getUserById(claims.sub);
    if (!user || user.disabled || claims.iat < (user.tokensNotBefore ?? 0)) return { active: false };
    const { iss, sub, aud, exp, iat, jti, sid, client_id, scope, roles } = claims;
    return { active: true, token_type: 'Bearer', iss, sub, aud, exp, iat, jti, sid, client_id, ...(scope ? { scope } : {}), ...(roles ? { roles } : {}) };
  }

  async function refreshInfo(token: string) {
    const info = await ctx.refresh.inspect(token);
    if (!info) return undefined;
    if (!info.active) return { active: false };
    return {
      active: true,
      iss: cfg.issuer,
      sub: info.user.id,
      client_id: info.clientId,
      sid: info.sessionHandle,
      iat: info.issuedAt,
      exp: info.expiresAt,
      ...(cfg.tokens.scope === undefined ? {} : { scope: cfg.tokens.scope }),
    };
  }
}

/** The form parameters, each at most once (RFC 6749 §3.1, §3.2); empty values count as absent. */
function formParams(request: FastifyRequest): Record<string, string> {
  const type = request.headers['content-type'];
  if (type === undefined || !FORM.test(type)) throw invalidRequest('send application/x-www-form-urlencoded');
  const body = request.body;
  const out: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(v)) throw invalidRequest(`parameter ${k} is repeated`);
    if (typeof v === 'string' && v !== '') out[k] = v;
  }
  return out;
}

/** RFC 6749 §5.2 error JSON for everything that goes wrong under /oauth. */
function oauthErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  let status = 400;
  let error = 'invalid_request';
  let description: string;
  if (isLatchkeyError(err) && OAUTH_ERRORS.has(err.code)) {
    error = err.code;
    description = err.message;
    if (err.code === 'invalid_client') {
      status = 401;
      reply.header('www-authenticate', 'Basic realm="latchkey"');
    }
  } else if (isLatchkeyError(err) && err.code === 'store_unavailable') {
    // RFC 6749 §4.1.2.1's temporarily_unavailable, with the status a client's retry logic knows
    status = 503;
    error = 'temporarily_unavailable';
    description = err.message;
    if (err.retryAfter) reply.header('retry-after', String(err.retryAfter));
  } else if (isLatchkeyError(err) && err.code === 'csrf_failed') {
    status = 403;
    description = err.message;
  } else {
    const e = err as Partial<FastifyError>;
    const clientFault = e.validation !== undefined || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500);
    if (clientFault) {
      description =
        e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? 'the request body is too large'
          : e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'send application/x-www-form-urlencoded'
            : 'the request could not be parsed';
    } else {
      request.log.error({ err }, 'token endpoint failed');
      status = 500;
      error = 'server_error';
      description = 'something went wrong on our side';
    }
  }
  return reply.code(status).headers(NO_STORE).type('application/json').send({ error, error_description: description });
}
