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
import type { RouteConfig } from '../../config.js';
import { LatchkeyError } from '../../errors.js';
import type { GatewayTokens } from '../../gateway/tokens.js';
import { sessionHooks } from '../auth.js';
import type { Context } from '../context.js';
import { problem, sendProblem } from '../problem.js';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

export function gatewayRoutes(gateway: GatewayTokens) {
  return async function register(app: FastifyInstance, ctx: Context) {
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

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.auth!;
    const token = await gateway.tokenFor(auth.user, auth.handle, route);
    const rawUrl = request.raw.url ?? '/';
    const rest = rawUrl.slice(route.prefix.length);
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
        const out: IncomingHttpHeaders = { ...headers };
        delete out.cookie;
        delete out.authorization;
        delete out['proxy-authorization'];
        for (const h of HOP_BY_HOP) delete out[h];
        out.authorization = `Bearer ${token}`;
        const prior = ctx.config.trustProxy ? req.headers['x-forwarded-for'] : undefined;
        out['x-forwarded-for'] = prior ? `${String(prior)}, ${req.ip}` : req.ip;
        out['x-forwarded-proto'] = proto;
        out['x-forwarded-host'] = req.headers.host ?? upstream.host;
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
