/**
 * createRevocationFeed: follow latchkey's revocation feed (Server-Sent Events
 * of signed SETs, docs/revocation.md) and answer `check` from memory.
 *
 * - fetch() with a streaming body, so it runs on Node, Deno, Bun and edge
 *   runtimes; SSE parsed by eventsource-parser.
 * - Resumes with Last-Event-ID after any disconnect, backing off 250 ms → 5 s
 *   with jitter; `reset` drops what was learnt, and the snapshot follows.
 * - `healthy` only after the first snapshot and while something (an event or
 *   a heartbeat) was heard within `maxStalenessMs`; a silent connection is
 *   dropped and reopened at that bound.
 * - Entries go once every token they refer to has expired: event time +
 *   `maxLifetimeSeconds` + `clockTolerance`.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { loadBackend, type Backend } from '../crypto/backend.js';
import { VerifyError } from '../errors.js';
import { metadataUrls } from '../keys/discovery.js';
import { FetchError, getJson, type FetchLike } from '../keys/http.js';
import { KeyStore, remoteLoader, staticLoader } from '../keys/store.js';
import { createRevocationList, type RevocationSource, type RevokedReason } from '../revocation.js';
import type { AccessTokenClaims, Algorithm, JSONWebKeySet, TokenHeader } from '../types.js';
import { revocationsOf, verifySet, type Revocation } from './sets.js';

export interface RevocationFeedOptions {
  /** latchkey's issuer URL; the feed, JWKS and introspection endpoints are discovered from its RFC 8414 metadata. */
  issuer: string;
  /** A client registered with `"revocationFeed": true`. */
  clientId: string;
  clientSecret: string;
  /** Skip discovery of the feed endpoint. */
  feedUri?: string;
  /** Keys that sign the SETs (default: the issuer's jwks_uri). */
  jwksUri?: string;
  jwks?: JSONWebKeySet;
  /** Heard nothing for longer: not healthy (fail closed, or introspect). Default 5000. */
  maxStalenessMs?: number;
  /** The verifier's maximum token lifetime (default 3600): how long an entry must be kept. */
  maxLifetimeSeconds?: number;
  /** The verifier's clock tolerance in seconds (default 10). */
  clockTolerance?: number;
  /** While unhealthy: refuse every token (default), or ask the introspection endpoint (RFC 7662) per token. */
  fallback?: 'fail-closed' | 'introspect';
  introspectionEndpoint?: string;
  algorithms?: readonly Algorithm[];
  fetch?: FetchLike;
  /** Told of each applied SET (benchmarks timestamp propagation with it). */
  onEvent?: (event: { seq: number; revocations: readonly Revocation[] }) => void;
}

export interface RevocationFeed extends RevocationSource {
  /** Resolves once the snapshot is applied; rejects after `timeoutMs` (default 10 s) or when the feed refuses the credentials. */
  ready(timeoutMs?: number): Promise<void>;
  /** Disconnect and stop; the feed is unhealthy from then on. */
  close(): void;
  readonly position: number;
  /** Entries held: sessions + subjects + keys. */
  readonly size: number;
  readonly connected: boolean;
  /** Epoch ms of the last bytes from the feed. */
  readonly lastHeardAt: number;
  readonly lastError: string | undefined;
  /** SETs refused (bad signature, wrong issuer or type): never applied. */
  readonly rejected: number;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;
const ALL_ALGS: readonly Algorithm[] = ['EdDSA', 'ES256', 'RS256'];

export function createRevocationFeed(options: RevocationFeedOptions): RevocationFeed {
  const o = validate(options);
  const fetchFn: FetchLike = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const list = createRevocationList();
  const accepted = new Set<Algorithm>(o.algorithms ?? ALL_ALGS);
  const maxStaleness = o.maxStalenessMs ?? 5000;
  const keep = (o.maxLifetimeSeconds ?? 3600) + (o.clockTolerance ?? 10);
  const basic = `Basic ${btoa(`${formEncode(o.clientId)}:${formEncode(o.clientSecret)}`)}`;
  const backendP: Promise<Backend> = loadBackend('auto');
  backendP.catch(() => undefined);
  const keys = new KeyStore(
    o.jwks
      ? staticLoader(o.jwks)
      : remoteLoader({ issuer: o.issuer, jwksUri: o.jwksUri, fetch: fetchFn, timeoutMs: 5000, defaultAgeMs: 300_000, minAgeMs: 1000, maxAgeMs: 600_000 }),
    { backend: () => backendP, accepted, cooldownMs: 1000, maxStaleMs: 24 * 3600_000 },
  );

  let feedUri = o.feedUri;
  let introspectionUri = o.introspectionEndpoint;
  let position = 0;
  let readySeen = false;
  let connected = false;
  let lastHeard = 0;
  let lastError: string | undefined;
  let rejected = 0;
  let closed = false;
  let refused: Error | undefined;
  let abort: AbortController | undefined;
  let queue: Promise<void> = Promise.resolve();
  const waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  const settle = (err?: Error) => {
    for (const w of waiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve();
    }
  };

  async function apply(m: EventSourceMessage): Promise<void> {
    if (m.event === 'ready') {
      readySeen = true;
      settle();
      return;
    }
    if (m.event === 'reset') {
      list.clear();
      position = 0;
      return;
    }
    if (m.event !== 'set') return;
    const seq = Number(m.id);
    try {
      const claims = await verifySet(m.data, { issuer: o.issuer, keys, backend: await backendP, accepted });
      const revocations = revocationsOf(claims, o.issuer);
      for (const r of revocations) {
        if (r.kind === 'session') list.revokeSession(r.sid, r.at + keep);
        else if (r.kind === 'subject') list.revokeSubject(r.sub, r.issuedBefore, Math.max(r.at, r.issuedBefore) + keep);
        else if (r.kind === 'key') list.revokeKey(r.kid, r.at + keep);
      }
      o.onEvent?.({ seq, revocations });
    } catch (err) {
      // A SET that does not verify is never applied. The stream itself comes from the issuer over an
      // authenticated connection, so a bad one is a fault to report, not a reason to stall the feed.
      rejected++;
      lastError = `SET ${m.id ?? '?'} refused: ${err instanceof VerifyError ? err.code : String(err)}`;
    }
    if (Number.isSafeInteger(seq) && seq > position) position = seq;
  }

  async function discover(): Promise<void> {
    if (feedUri !== undefined && (o.fallback !== 'introspect' || introspectionUri !== undefined)) return;
    for (const url of metadataUrls(o.issuer)) {
      const r = await getJson(url, { fetch: fetchFn, timeoutMs: 5000 });
      if (r.status === 404) continue;
      if (r.status !== 200) throw new FetchError(`GET ${url}: unexpected 304`);
      const meta = r.body as Record<string, unknown> | null;
      if (meta?.issuer !== o.issuer) throw new FetchError(`${url}: metadata issuer does not match`);
      if (feedUri === undefined) {
        if (typeof meta.revocation_feed_endpoint !== 'string') throw new FetchError(`${url}: no revocation_feed_endpoint`);
        feedUri = meta.revocation_feed_endpoint;
      }
      if (introspectionUri === undefined && typeof meta.introspection_endpoint === 'string') introspectionUri = meta.introspection_endpoint;
      return;
    }
    throw new FetchError(`no authorization server metadata for ${o.issuer}`);
  }

  /** One connection, until it ends. True when it got as far as a 200. */
  async function connectOnce(): Promise<boolean> {
    await discover();
    abort = new AbortController();
    const headers: Record<string, string> = { authorization: basic, accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (position > 0) headers['last-event-id'] = String(position);
    const res = await fetchFn(feedUri!, { headers, redirect: 'manual', signal: abort.signal });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      refused = new Error(`revocation feed refused the client credentials (HTTP ${res.status})`);
      throw refused;
    }
    const type = res.headers.get('content-type') ?? '';
    if (res.status !== 200 || !type.toLowerCase().startsWith('text/event-stream') || !res.body) {
      await res.body?.cancel();
      throw new Error(`revocation feed: HTTP ${res.status} ${type}`);
    }
    refused = undefined;
    connected = true;
    lastHeard = Date.now();
    const parser = createParser({
      onEvent: (m) => {
        queue = queue.then(() => apply(m));
      },
    });
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        lastHeard = Date.now();
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      connected = false;
      reader.releaseLock();
    }
    await queue;
    return true;
  }

  async function run(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!closed) {
      try {
        if (await connectOnce()) backoff = MIN_BACKOFF_MS;
        lastError = lastError ?? 'revocation feed: connection ended';
      } catch (err) {
        if (closed) break;
        lastError = err instanceof Error ? err.message : String(err);
        if (refused) {
          settle(refused);
          backoff = MAX_BACKOFF_MS;
        }
      }
      if (closed) break;
      await sleep(backoff * (0.75 + Math.random() / 2));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  // a connection that has gone silent (no heartbeat) is dropped and reopened from its position
  const watchdog = setInterval(() => {
    if (connected && Date.now() - lastHeard > maxStaleness) abort?.abort();
    if (readySeen) list.prune();
  }, Math.max(100, Math.floor(maxStaleness / 4)));
  (watchdog as unknown as { unref?: () => void }).unref?.();

  let sleeping: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined;
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sleeping = undefined;
        resolve();
      }, ms);
      sleeping = { timer, wake: resolve };
    });
  }

  async function introspect(token: string): Promise<RevokedReason | undefined> {
    if (introspectionUri === undefined) await discover();
    if (introspectionUri === undefined) throw new Error('no introspection endpoint');
    const res = await fetchFn(introspectionUri, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: `token=${encodeURIComponent(token)}&token_type_hint=access_token`,
      redirect: 'manual',
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`introspection: HTTP ${res.status}`);
    }
    const body = (await res.json()) as { active?: unknown };
    if (typeof body.active !== 'boolean') throw new Error('introspection: no active member');
    return body.active ? undefined : 'introspection';
  }

  void run();

  const feed: RevocationFeed = {
    get healthy() {
      return readySeen && !closed && Date.now() - lastHeard <= maxStaleness;
    },
    check(claims: AccessTokenClaims, header: TokenHeader) {
      return list.check(claims, header);
    },
    // a signing-key-revoked event lets the verifier fetch the issuer's new key at once (see RevocationSource)
    get keysRevoked() {
      return list.keysRevoked;
    },
    ready(timeoutMs = 10_000) {
      if (readySeen) return Promise.resolve();
      if (refused) return Promise.reject(refused);
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`revocation feed not ready within ${timeoutMs} ms: ${lastError ?? 'no answer'}`)), timeoutMs);
        waiters.push({
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        });
      });
    },
    close() {
      closed = true;
      clearInterval(watchdog);
      abort?.abort();
      if (sleeping) {
        clearTimeout(sleeping.timer);
        sleeping.wake();
      }
      settle(new Error('revocation feed closed'));
    },
    get position() {
      return position;
    },
    get size() {
      return list.size;
    },
    get connected() {
      return connected;
    },
    get lastHeardAt() {
      return lastHeard;
    },
    get lastError() {
      return lastError;
    },
    get rejected() {
      return rejected;
    },
  };
  if (o.fallback === 'introspect') feed.introspect = introspect;
  return feed;
}

function validate(o: RevocationFeedOptions): RevocationFeedOptions {
  if (typeof o !== 'object' || o === null) throw new TypeError('createRevocationFeed: options required');
  if (typeof o.issuer !== 'string' || !/^https?:\/\/[^\s]+$/.test(o.issuer)) throw new TypeError('createRevocationFeed: issuer must be an http(s) URL');
  if (typeof o.clientId !== 'string' || o.clientId === '') throw new TypeError('createRevocationFeed: clientId required');
  if (typeof o.clientSecret !== 'string' || o.clientSecret === '') throw new TypeError('createRevocationFeed: clientSecret required');
  if (o.maxStalenessMs !== undefined && !(Number.isFinite(o.maxStalenessMs) && o.maxStalenessMs >= 100)) {
    throw new TypeError('createRevocationFeed: maxStalenessMs must be >= 100');
  }
  if (o.fallback !== undefined && o.fallback !== 'fail-closed' && o.fallback !== 'introspect') {
    throw new TypeError("createRevocationFeed: fallback must be 'fail-closed' or 'introspect'");
  }
  return o;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding. */
function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}
