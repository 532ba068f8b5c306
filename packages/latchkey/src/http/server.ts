/**
 * Fastify wiring: one instance, JSON-schema validated bodies, body limits,
 * problem+json errors, security headers. Domain code never imports Fastify.
 */
import Fastify, { type ConnectionError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import type { Socket } from 'node:net';
import type { Context } from './context.js';
import { errorHandler, isOauthPath, oauthError, problem, sendOauthError, sendProblem, toProblem, type Problem } from './problem.js';
import { allowedMethods, type RouteEntry } from './route-table.js';
import { accountRoutes } from './routes/accounts.js';
import { adminRoutes } from './routes/admin.js';
import { sessionRoutes } from './routes/sessions.js';
import { trustProxyOption } from './trust-proxy.js';

export interface HttpOptions {
  logger?: boolean;
  /** Route plugins of later features (tokens, gateway, web pages), registered after the core. */
  plugins?: ((app: FastifyInstance, ctx: Context) => Promise<void>)[];
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered so far (method, URL pattern): 405 answers, gateway prefix checks, the fuzz test. */
    routeTable: RouteEntry[];
  }
}

/** HSTS for an https issuer: two years, subdomains included (a browser then never tries http first). */
export const HSTS = 'max-age=63072000; includeSubDomains';

/**
 * Errors Fastify raises before any route runs (an undecodable path, a
 * parameter over maxParamLength): the same problem+json as everything else,
 * or RFC 6749 error JSON under /oauth.
 */
function frameworkError(err: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply) {
  const p: Problem =
    err.code === 'FST_ERR_BAD_URL'
      ? problem(400, 'bad_url', 'the path is not a valid URL')
      : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? problem(414, 'uri_too_long', 'a path segment is too long')
        : toProblem(err);
  if (p.status >= 500) request.log.error({ err }, 'request failed');
  if (isOauthPath(request.raw.url)) return sendOauthError(reply, p.status, oauthError(p.status), p.detail ?? 'the request could not be processed');
  return sendProblem(reply, p);
}

/**
 * Errors node's HTTP parser meets before Fastify sees a request (headers too
 * large, a malformed request line, a timeout): answered on the socket with a
 * problem+json body instead of Fastify's own JSON.
 */
function clientError(err: ConnectionError, socket: Socket) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const p =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? problem(431, 'headers_too_large', 'the request headers are too large')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problem(408, 'request_timeout', 'the request took too long to arrive')
        : problem(400, 'bad_request', 'the request is not valid HTTP');
  const body = JSON.stringify(p);
  // an answer to HEAD has no body, or the client reads it as the start of another response
  // (typed as its JSON form, but node passes the Buffer of what it could not parse)
  const raw = (err as { rawPacket?: unknown }).rawPacket;
  const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${p.status} ${p.title}\r\ncontent-type: application/problem+json\r\ncache-control: no-store\r\n` +
        `x-content-type-options: nosniff\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${head ? '' : body}`,
    );
  }
  socket.destroy(err);
}

export async function buildHttp(ctx: Context, opts: HttpOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      opts.logger === false || ctx.config.logLevel === 'silent'
        ? false
        : {
            level: ctx.config.logLevel,
            // never log credentials
            redact: ['req.headers.cookie', 'req.headers.authorization', 'res.headers["set-cookie"]'],
          },
    bodyLimit: ctx.config.bodyLimitBytes,
    trustProxy: trustProxyOption(ctx.config.trustProxy),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    routerOptions: { maxParamLength: 200 },
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    // Fastify's own 503 while closing is not problem+json: answered by the hook below instead
    return503OnClosing: false,
  });

  const routes: RouteEntry[] = [];
  app.decorate('routeTable', routes);
  app.addHook('onRoute', (r) => {
    for (const method of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method, url: r.url });
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done();
    reply.header('connection', 'close').header('retry-after', '1');
    sendProblem(reply, problem(503, 'shutting_down', 'the server is shutting down; retry'));
  });

  app.decorateRequest('auth', null);
  app.setErrorHandler(errorHandler);
  // JSON in, JSON out: Fastify's default text/plain parser would let a cross-site
  // "simple" request (no preflight) reach the JSON routes; it gets 415 instead
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((request, reply) => {
    const allow = allowedMethods(routes, request.raw.url ?? '/');
    const oauth = isOauthPath(request.raw.url);
    if (allow.length === 0) {
      return oauth ? sendOauthError(reply, 404, 'invalid_request', 'no such endpoint') : sendProblem(reply, problem(404, 'not_found', 'no such resource'));
    }
    reply.header('allow', allow.join(', '));
    return oauth
      ? sendOauthError(reply, 405, 'invalid_request', `use ${allow.join(', ')}`)
      : sendProblem(reply, problem(405, 'method_not_allowed', `use ${allow.join(', ')}`));
  });
  await app.register(cookie);

  const hsts = new URL(ctx.config.issuer).protocol === 'https:';
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('x-frame-options')) reply.header('x-frame-options', 'DENY');
    if (hsts) reply.header('strict-transport-security', HSTS);
    return payload;
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  await accountRoutes(app, ctx);
  await sessionRoutes(app, ctx);
  await app.register(async (admin) => adminRoutes(admin, ctx));
  for (const plugin of opts.plugins ?? []) await plugin(app, ctx);
  return app;
}
