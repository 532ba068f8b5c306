/** Bounded HTTP GETs for JWKS and metadata: a timeout, no redirects, a body size cap, Cache-Control. */

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface GetOptions {
  fetch: FetchLike;
  timeoutMs: number;
  etag?: string;
}

export type GetResult =
  | { status: 200; body: unknown; etag: string | undefined; maxAgeSeconds: number | undefined }
  | { status: 304; etag: string | undefined; maxAgeSeconds: number | undefined }
  | { status: 404 };

/** A JWKS is a few kilobytes; refuse to buffer anything much larger. */
const MAX_BODY = 512 * 1024;

export class FetchError extends Error {
  override readonly name = 'FetchError';
}

/** GET `url` as JSON. Throws FetchError for network errors, timeouts, redirects, other statuses, oversized or non-JSON bodies. */
export async function getJson(url: string, opts: GetOptions): Promise<GetResult> {
  const headers: Record<string, string> = { accept: 'application/json, application/jwk-set+json' };
  if (opts.etag) headers['if-none-match'] = opts.etag;
  let res: Response;
  try {
    // redirects are refused: one could downgrade to http or lead to another host's keys
    res = await opts.fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(opts.timeoutMs) });
  } catch (err) {
    throw new FetchError(`GET ${url}: ${(err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message}`);
  }
  const maxAgeSeconds = freshness(res.headers);
  if (res.status === 304 && opts.etag) {
    await res.body?.cancel();
    return { status: 304, etag: res.headers.get('etag') ?? opts.etag, maxAgeSeconds };
  }
  if (res.status === 404) {
    await res.body?.cancel();
    return { status: 404 };
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new FetchError(`GET ${url}: HTTP ${res.status}`);
  }
  const text = await readCapped(res, url);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FetchError(`GET ${url}: not JSON`);
  }
  return { status: 200, body, etag: res.headers.get('etag') ?? undefined, maxAgeSeconds };
}

async function readCapped(res: Response, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_BODY) {
    await res.body?.cancel();
    throw new FetchError(`GET ${url}: body over ${MAX_BODY} bytes`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      await reader.cancel();
      throw new FetchError(`GET ${url}: body over ${MAX_BODY} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(all);
  } catch {
    throw new FetchError(`GET ${url}: not UTF-8`);
  }
}

/**
 * Seconds the response may be reused, from Cache-Control (max-age minus Age;
 * no-store and no-cache mean 0), or undefined when it says nothing. The
 * caller clamps it: a 0 must not turn into a fetch per request.
 */
export function freshness(headers: Headers): number | undefined {
  const cc = headers.get('cache-control');
  if (!cc) return undefined;
  let maxAge: number | undefined;
  for (const part of cc.toLowerCase().split(',')) {
    const d = part.trim();
    if (d === 'no-store' || d === 'no-cache') return 0;
    const m = /^max-age="?(\d{1,10})"?$/.exec(d);
    if (m) maxAge = Number(m[1]);
  }
  if (maxAge === undefined) return undefined;
  const age = Number(headers.get('age') ?? 0);
  return Math.max(0, maxAge - (Number.isFinite(age) && age > 0 ? age : 0));
}
