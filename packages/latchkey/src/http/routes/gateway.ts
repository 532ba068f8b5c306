/**
 * The Backend-for-Frontend: requests under a configured prefix with a valid
 * session cookie are forwarded to the route's upstream with a short-lived
 * `Authorization: Bearer <JWT>` for that upstream's audience. The browser's
 * cookies and any Authorization it sent are never passed on; upstream
 * Set-Cookie never reaches the browser (it could shadow the session cookie).
 * Proxying is @fastify/reply-from on undici, streaming both ways.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import replyFrom from '@fastify/reply-from';
import type { IncomingHttpHeaders } from 'node:http';
import { ConfigError, type RouteConfig } from '../../config.js';
import { LatchkeyError } from '../../errors.js';
import type { GatewayTokens } from '../../gateway/tokens.js';
import { sessionHooks } from '../auth.js';
import type { Context } from '../context.js';
import { problem, sendProblem } from '../problem.js';
import { overlapsPrefix } from '../route-table.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

/**
 * Request headers never passed on as the client sent them. Credentials are
 * replaced by the route's token. `Expect` is answered here (node sends
 * 100 Continue itself) and undici refuses to forward it. Forwarding and
 * routing headers would let a client speak for a proxy: choose its own
 * address, host or scheme, or make an upstream route, rewrite or re-method
 * the request differently from what latchkey authorised. Only the
 * X-Forwarded-For/-Proto/-Host that latchkey sets reach the upstream.
 */
const STRIPPED = new Set([
  'cookie',
  'authorization',
  'proxy-authorization',
  'expect',
  'forwarded',
  'via',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-original-url',
  'x-original-uri',
  'x-original-host',
  'x-original-method',
  'x-rewrite-url',
  'x-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);
const strippedHeader = (name: string) => STRIPPED.has(name) || name.startsWith('x-forwarded-');

/**
 * The part of a raw request path after `prefix`, or undefined when the path
 * does not spell the prefix literally (the router matched it after decoding,
 * so slicing by length would cut in the wrong place).
 */
function pathAfter(prefix: string, path: string): string | undefined {
  if (prefix === '/') return path;
  if (!path.startsWith(prefix)) return undefined;
  const rest = path.slice(prefix.length);
  return rest === '' || rest.startsWith('/') ? rest : undefined;
}

/**
 * Node hands over the request line's bytes as Latin-1 characters; the URL
 * parser would re-encode each as UTF-8 and change the path. Percent-encode
 * those bytes instead so the upstream receives the same ones.
 */
function encodeRawBytes(path: string): string {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    out += c < 0x80 ? path[i] : `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A `..` segment once decoded, with either slash: the upstream would resolve it above the route's base path. */
function traverses(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true;
  }
  let start = 0;
  for (let i = 0; i <= decoded.length; i++) {
    if (i === decoded.length || decoded[i] === '/' || decoded[i] === '\\') {
      if (decoded.slice(start, i) === '..') return true;
      start = i + 1;
    }
  }
  return false;
}

export function gatewayRoutes(gateway: GatewayTokens) {
  return async function register(app: FastifyInstance, ctx: Context) {
    // registered after every built-in route (app.ts), so the table holds them all; a prefix
    // over one of them would shadow it or fail inside Fastify with a message naming no key
    const builtIn = [...app.routeTable];
    for (const [i, route] of ctx.config.gateway.routes.entries()) {
      // "/" is the catch-all behind every built-in route (their static paths win), so it is allowed
      const clash = route.prefix === '/' ? undefined : builtIn.find((r) => overlapsPrefix(route.prefix, r.url));
      if (clash) {
        throw new ConfigError(
          `invalid config: gateway.routes.${i}.prefix: ${route.prefix} overlaps the built-in route ${clash.method} ${clash.url}`,
        );
      }
    }
    for (const route of ctx.config.gateway.routes) {
      await app.register(async (scope) => routeScope(scope, ctx, gateway, route));
    }
  };
}

async function routeScope(app: FastifyInstance, ctx: Context, gateway: GatewayTokens, route: RouteConfig) {
  const upstream = new URL(route.upstream);
  const basePath = upstream.pathname.replace(/\/$/, '');
  await app.register(replyFrom, {
    base: upstream.origin,
    undici: { headersTimeout: route.timeoutMs, bodyTimeout: route.timeoutMs, connections: 256, pipelining: 1 },
    disableRequestLogging: true,
  });
  // bodies go through as streams, unparsed and unbuffered
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  const { requireSession } = sessionHooks(ctx);
  const proto = new URL(ctx.config.issuer).protocol.slice(0, -1);

  async function authenticate(request: FastifyRequest, reply: FastifyReply) {
    try {
      await new Promise<void>((resolve, reject) => requireSession(request, reply, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      const unauthenticated = (err as { code?: string }).code === 'unauthenticated';
      if (unauthenticated && route.unauthenticated === 'redirect' && (request.method === 'GET' || request.method === 'HEAD')) {
        const next = encodeURIComponent(request.url);
        return reply.redirect(`${ctx.config.gateway.loginPath}?next=${next}`, 303);
      }
      throw err;
    }
    const user = request.auth!.user;
    const missing = route.roles.filter((r) => !user.roles.includes(r));
    if (missing.length) throw new LatchkeyError('forbidden', `this route needs the role ${missing.join(', ')}`);
  }

  const publicHost = new URL(ctx.config.issuer).host;

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.auth!;
    const rawUrl = request.raw.url ?? '/';
    const q = rawUrl.indexOf('?');
    // only the path is checked and rewritten; the query goes through as sent (reply-from appends it)
    const after = pathAfter(route.prefix, q < 0 ? rawUrl : rawUrl.slice(0, q));
    const rest = after === undefined ? undefined : encodeRawBytes(after);
    if (rest === undefined || traverses(rest)) {
      return sendProblem(reply, problem(400, 'invalid_path', 'the path is malformed or leaves the route'));
    }
    const token = await gateway.tokenFor(auth.user, auth.handle, route);
    const source = basePath + (rest.startsWith('/') ? rest : `/${rest}`);
    // undici's own timeouts tick coarsely (a 500 ms one fires after about a second): this one is on time
    const timer = setTimeout(() => {
      if (!reply.sent) sendProblem(reply, problem(504, 'upstream_timeout', `the upstream did not answer within ${route.timeoutMs} ms`));
    }, route.timeoutMs);
    reply.raw.once('close', () => clearTimeout(timer));
    return reply.from(source, {
      retriesCount: 0,
      timeout: route.timeoutMs,
      rewriteRequestHeaders: (req, headers) => {
        const out: IncomingHttpHeaders = {};
        for (const [name, value] of Object.entries(headers)) {
          if (!strippedHeader(name) && !HOP_BY_HOP.includes(name)) out[name] = value;
        }
        out.authorization = `Bearer ${token}`;
        // the addresses latchkey vouches for: the peer, and the proxies trustProxy trusts in front of it
        const ips = (req as FastifyRequest & { ips?: string[] }).ips;
        out['x-forwarded-for'] = ips ? [...ips].reverse().join(', ') : req.ip;
        out['x-forwarded-proto'] = proto;
        out['x-forwarded-host'] = publicHost;
        out.host = upstream.host;
        return out;
      },
      rewriteHeaders: (headers) => {
        const out = { ...headers };
        delete out['set-cookie'];
        return out;
      },
      onResponse: (_req, rep, res) => {
        clearTimeout(timer);
        const stream = (res as unknown as { stream: NodeJS.ReadableStream & { destroy(): void } }).stream;
        // too late: the 504 has gone out
        if (rep.sent) stream.destroy();
        else void rep.send(stream);
      },
      onError: (r, { error }) => {
        clearTimeout(timer);
        if ((r as unknown as FastifyReply).sent) return;
        const code = (error as { code?: string }).code ?? '';
        const timedOut = code.includes('TIMEOUT') || (error as { statusCode?: number }).statusCode === 504;
        const rep = r as unknown as FastifyReply;
        if (timedOut) sendProblem(rep, problem(504, 'upstream_timeout', `the upstream did not answer within ${route.timeoutMs} ms`));
        else sendProblem(rep, problem(502, 'upstream_unavailable', 'the upstream could not be reached'));
      },
    });
  };

  const opts = { onRequest: authenticate };
  app.all(route.prefix, opts, handler);
  app.all(`${route.prefix}/*`, opts, handler);
}
