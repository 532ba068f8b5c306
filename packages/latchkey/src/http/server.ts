/**
 * Fastify wiring: one instance, JSON-schema validated bodies, body limits,
 * problem+json errors, security headers. Domain code never imports Fastify.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import type { Context } from './context.js';
import { errorHandler, problem, sendProblem } from './problem.js';
import { accountRoutes } from './routes/accounts.js';
import { adminRoutes } from './routes/admin.js';
import { sessionRoutes } from './routes/sessions.js';
import { trustProxyOption } from './trust-proxy.js';

export interface HttpOptions {
  logger?: boolean;
  /** Route plugins of later features (tokens, gateway, web pages), registered after the core. */
  plugins?: ((app: FastifyInstance, ctx: Context) => Promise<void>)[];
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
    return503OnClosing: true,
  });

  app.decorateRequest('auth', null);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => sendProblem(reply, problem(404, 'not_found', 'no such resource')));
  await app.register(cookie);

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('x-frame-options')) reply.header('x-frame-options', 'DENY');
    return payload;
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  await accountRoutes(app, ctx);
  await sessionRoutes(app, ctx);
  await app.register(async (admin) => adminRoutes(admin, ctx));
  for (const plugin of opts.plugins ?? []) await plugin(app, ctx);
  return app;
}
