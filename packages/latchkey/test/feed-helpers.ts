/** A plain Server-Sent Events reader for the revocation feed, as any subscriber would read it. */
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';

export const FEED_CLIENT = { id: 'feed-reader', secret: 'feed-reader-secret-0123456789abcdef01234' };
export const INTROSPECT_ONLY = { id: 'introspect-only', secret: 'introspect-only-secret-0123456789abcdef' };
export const FEED_CLIENTS = [
  { ...FEED_CLIENT, introspect: true, revocationFeed: true },
  { ...INTROSPECT_ONLY, introspect: true, revocationFeed: false },
];

export const basic = (c: { id: string; secret: string }) =>
  `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}`;

export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

export class FeedReader {
  readonly messages: SseMessage[] = [];
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private ended = false;

  private constructor(readonly response: Response) {}

  static async open(base: string, headers: Record<string, string> = {}, query = ''): Promise<FeedReader> {
    const ctl = new AbortController();
    const res = await fetch(`${base}/v1/revocations/events${query}`, {
      headers: { authorization: basic(FEED_CLIENT), accept: 'text/event-stream', ...headers },
      signal: ctl.signal,
    });
    const reader = new FeedReader(res);
    reader.abort.signal.addEventListener('abort', () => ctl.abort());
    if (res.ok && res.body) void reader.read(res.body);
    return reader;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const m: SseMessage = { event: 'message', data: '', id: undefined };
          let hasData = false;
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') m.event = value;
            else if (field === 'id') m.id = value;
            else if (field === 'data') {
              m.data += (hasData ? '\n' : '') + value;
              hasData = true;
            }
          }
          if (hasData) this.messages.push(m);
          this.wake?.();
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.wake?.();
  }

  /** The first message from index `from` on matching `pred` (waits up to `ms`). */
  async next(pred: (m: SseMessage) => boolean, from = 0, ms = 10_000): Promise<SseMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.slice(from).find(pred);
      if (found) return found;
      if (this.ended) throw new Error('feed ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${ms} ms; have ${this.messages.map((x) => x.event).join(',')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  sets(from = 0): SseMessage[] {
    return this.messages.slice(from).filter((m) => m.event === 'set');
  }

  close(): void {
    this.abort.abort();
  }
}

export interface SetPayload extends JWTPayload {
  sub_id: Record<string, unknown> & { format: string };
  events: Record<string, Record<string, unknown>>;
}

/** Verify a SET against the server's JWKS as a subscriber must: typ secevent+jwt, issuer exact. */
export async function verifySet(base: string, issuer: string, set: string): Promise<SetPayload> {
  const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  const { payload } = await jwtVerify(set, createLocalJWKSet(jwks), { issuer, typ: 'secevent+jwt' });
  return payload as SetPayload;
}

export const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

export interface ControlPayload extends JWTPayload {
  feed: 'ready' | 'heartbeat' | 'reset';
  seq: number;
  nonce?: string;
  heartbeat_seconds?: number;
}

/** Verify a ready/heartbeat/reset message as a subscriber must: signed, typ latchkey-feed+jwt, issuer exact. */
export async function verifyControl(base: string, issuer: string, data: string): Promise<ControlPayload> {
  const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  const { payload } = await jwtVerify(data, createLocalJWKSet(jwks), { issuer, typ: 'latchkey-feed+jwt' });
  return payload as ControlPayload;
}
