/**
 * GET /v1/revocations/events: the revocation feed as Server-Sent Events, for
 * registered clients allowed to follow it (docs/revocation.md).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LatchkeyError } from '../../errors.js';
import type { RevocationFeed, Subscriber } from '../../revocation/feed.js';
import { basicCredentials } from '../../tokens/clients.js';
import type { Context } from '../context.js';
import { problem, sendProblem } from '../problem.js';

/** Bytes a subscriber may leave unread before it is dropped (it resumes from its position). */
const MAX_BUFFERED = 1 << 20;

export const FEED_PATH = '/v1/revocations/events';

export function revocationRoutes(feed: RevocationFeed) {
  return async function routes(app: FastifyInstance, ctx: Context): Promise<void> {
    app.addHook('preClose', async () => feed.stop());

    app.get(FEED_PATH, async (request, reply) => {
      authorize(request, reply, ctx);
      const after = position(request);
      const challenge = nonce(request);
      // HEAD gets the stream's headers and nothing else: node drops writes to a HEAD response,
      // so a subscription would hold a subscriber slot and the connection open forever
      if (request.method === 'HEAD') {
        return reply.code(200).headers({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }).send();
      }
      if (feed.subscribers >= ctx.config.revocation.maxSubscribers) {
        reply.header('retry-after', '5');
        return sendProblem(reply, problem(503, 'feed_full', 'too many subscribers; retry later'));
      }

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      res.write('retry: 1000\n\n');
      const out: Subscriber = {
        send(m) {
          if (res.destroyed) return false;
          res.write(`${m.id === undefined ? '' : `id: ${m.id}\n`}event: ${m.event}\ndata: ${m.data}\n\n`);
          return res.writableLength < MAX_BUFFERED;
        },
        close() {
          res.end();
        },
      };
      let unsubscribe: (() => void) | undefined;
      let gone = false;
      request.raw.socket.setNoDelay(true);
      res.on('close', () => {
        gone = true;
        unsubscribe?.();
      });
      try {
        unsubscribe = await feed.subscribe(out, after, challenge);
      } catch (err) {
        request.log.error({ err }, 'revocation feed subscribe failed');
        res.end();
        return;
      }
      if (!unsubscribe) res.end();
      else if (gone) unsubscribe();
    });
  };
}

function authorize(request: FastifyRequest, reply: FastifyReply, ctx: Context): void {
  const header = request.headers.authorization;
  reply.header('www-authenticate', 'Basic realm="latchkey", charset="UTF-8"');
  if (header === undefined) throw new LatchkeyError('invalid_client', 'client credentials required (HTTP Basic)');
  const { id, secret } = basicCredentials(header);
  const caller = ctx.clients.identify(id, secret);
  if (!caller.confidential) throw new LatchkeyError('invalid_client', 'client credentials required (HTTP Basic)');
  reply.removeHeader('www-authenticate');
  if (!caller.client.revocationFeed) throw new LatchkeyError('forbidden', 'this client may not follow the revocation feed');
}

/** Last-Event-ID (what EventSource sends on reconnect) or ?after=; undefined: a fresh subscriber. */
function position(request: FastifyRequest): number | undefined {
  const header = request.headers['last-event-id'];
  const query = (request.query as Record<string, unknown> | undefined)?.after;
  const raw = typeof header === 'string' ? header : typeof query === 'string' ? query : undefined;
  if (raw === undefined || raw === '') return undefined;
  if (raw.length > 15 || !isDigits(raw)) throw new LatchkeyError('invalid_request', 'Last-Event-ID / after must be a feed position');
  return Number(raw);
}

/**
 * ?nonce=: the subscriber's challenge, echoed in the signed ready and reset of this connection
 * so neither can be replayed into another (16..64 base64url characters).
 */
function nonce(request: FastifyRequest): string | undefined {
  const raw = (request.query as Record<string, unknown> | undefined)?.nonce;
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.length < 16 || raw.length > 64 || !isBase64url(raw)) {
    throw new LatchkeyError('invalid_request', 'nonce must be 16 to 64 base64url characters');
  }
  return raw;
}

function isBase64url(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    if (!ok) return false;
  }
  return true;
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
