/**
 * createRevocationFeed: follow latchkey's revocation feed (Server-Sent Events
 * of signed SETs, docs/revocation.md) and answer `check` from memory.
 *
 * - fetch() with a streaming body, so it runs on Node, Deno, Bun and edge
 *   runtimes; SSE parsed by eventsource-parser.
 * - Nothing unsigned counts: SETs, and the feed's ready/heartbeat/reset
 *   messages, are JWS signed with the issuer's keys; control messages carry a
 *   position and a time, ready and reset also this connection's nonce.
 * - `position` is the last event applied. A message that does not verify is
 *   never skipped: the connection is dropped and reopened from `position`
 *   (keys refetched first when the kid was unknown or the keys unreachable),
 *   and the feed is unhealthy until that connection's `ready`.
 * - A heartbeat announcing a position past ours (a gap) reopens the
 *   connection from ours. `reset` never erases what was learnt: the snapshot
 *   that follows is merged, and old entries expire on their own.
 * - `healthy` while the last proof of being caught up (a ready, a heartbeat
 *   at or behind our position, a live SET) is within `maxStalenessMs`;
 *   catch-up SETs after a reconnect are not such a proof. A silent
 *   connection is dropped and reopened at that bound.
 * - Entries go once every token they refer to has expired: event time +
 *   `maxLifetimeSeconds` + `clockTolerance`.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { loadBackend, type Backend } from '../crypto/backend.js';
import { VerifyError } from '../errors.js';
import { credentialEndpoint, metadataUrls } from '../keys/discovery.js';
import { FetchError, getJson, type FetchLike } from '../keys/http.js';
import { KeyStore, remoteLoader, staticLoader } from '../keys/store.js';
import { createRevocationList, type RevocationSource, type RevokedReason } from '../revocation.js';
import type { AccessTokenClaims, Algorithm, JSONWebKeySet, TokenHeader } from '../types.js';
import { failureKind, revocationsOf, seqOfSet, verifyControl, verifySet, type Revocation } from './sets.js';

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
  /** Feed messages refused as invalid (bad signature under a known key, wrong issuer or type, malformed): never applied. */
  readonly rejected: number;
  /** True while an event could not be verified yet (unknown key, keys unreachable): the feed is unhealthy and retries from `position`. */
  readonly stalled: boolean;
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
  const tolerance = o.clockTolerance ?? 10;
  let position = 0;
  let everReady = false;
  /** The current connection has sent its (verified) ready: what follows is live. */
  let live = false;
  let connected = false;
  let connectedAt = 0;
  /** Why this side dropped the last connection (kept over the abort error it causes). */
  let dropReason: string | undefined;
  /** Epoch ms of the last proof of being caught up: a ready, a heartbeat not ahead of us, a live SET. */
  let lastHeard = 0;
  let lastError: string | undefined;
  let rejected = 0;
  /** Set when a message failed verification; cleared by the next connection's ready. */
  let stalled = false;
  /** The last failure was "cannot verify yet": refetch keys (past the cooldown) before reconnecting. */
  let needKeys = false;
  let closed = false;
  let refused: Error | undefined;
  let abort: AbortController | undefined;
  let queue: Promise<void> = Promise.resolve();
  /** Per connection: its nonce, and the last control message's time and position (never going back). */
  let conn = { nonce: '', iat: 0, seq: 0, dead: false };
  const waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  const settle = (err?: Error) => {
    for (const w of waiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve();
    }
  };

  /** Give up on this connection without moving `position`: the next one resumes from the last applied event. */
  function dropConnection(why: string, c: typeof conn): void {
    if (c.dead) return;
    c.dead = true;
    lastError = why;
    dropReason = why;
    if (c === conn) {
      live = false;
      abort?.abort();
    }
  }

  function stall(m: EventSourceMessage, err: unknown, c: typeof conn): void {
    const kind = failureKind(err);
    const code = err instanceof VerifyError ? err.code : err instanceof Error ? err.message : String(err);
    stalled = true;
    if (kind === 'invalid') rejected++;
    else needKeys = true;
    dropConnection(`${m.event ?? 'message'} ${m.id ?? ''} ${kind === 'invalid' ? 'refused' : 'not verifiable yet'}: ${code}; retrying from ${position}`, c);
  }

  async function apply(m: EventSourceMessage, c: typeof conn): Promise<void> {
    // after a failure nothing more of this connection is believed (it is being dropped)
    if (c.dead || closed) return;
    const backend = await backendP;
    const vo = { issuer: o.issuer, keys, backend, accepted };
    if (m.event === 'set') {
      const seq = Number(m.id);
      let revocations: Revocation[];
      try {
        if (!Number.isSafeInteger(seq) || seq < 1) throw new VerifyError('malformed', 'SET without a position');
        const claims = await verifySet(m.data, vo);
        // the position is the signed one: a replayed SET cannot be passed off as a later event
        if (seqOfSet(claims) !== seq) throw new VerifyError('malformed', 'SET position does not match its jti');
        revocations = revocationsOf(claims, o.issuer);
      } catch (err) {
        stall(m, err, c);
        return;
      }
      for (const r of revocations) {
        if (r.kind === 'session') list.revokeSession(r.sid, r.at + keep);
        else if (r.kind === 'subject') list.revokeSubject(r.sub, r.issuedBefore, Math.max(r.at, r.issuedBefore) + keep);
        else if (r.kind === 'key') list.revokeKey(r.kid, r.at + keep);
      }
      if (seq > position) position = seq;
      if (live) lastHeard = Date.now();
      o.onEvent?.({ seq, revocations });
      return;
    }
    if (m.event !== 'ready' && m.event !== 'heartbeat' && m.event !== 'reset') return;
    let ctl;
    try {
      ctl = await verifyControl(m.data, m.event, vo);
      const nowS = Date.now() / 1000;
      // ready and reset answer this connection's nonce; heartbeats are one signature shared by all
      // subscribers (none, or ours), held to freshness and order instead
      if (ctl.kind === 'heartbeat' ? ctl.nonce !== undefined && ctl.nonce !== c.nonce : ctl.nonce !== c.nonce) {
        throw new VerifyError('malformed', 'not this connection’s nonce');
      }
      if (ctl.iat < c.iat || ctl.seq < c.seq) throw new VerifyError('malformed', 'control message older than the last one');
      if (ctl.iat > nowS + tolerance || ctl.iat < nowS - tolerance - maxStaleness / 1000) throw new VerifyError('malformed', 'control message not fresh');
    } catch (err) {
      stall(m, err, c);
      return;
    }
    c.iat = ctl.iat;
    c.seq = ctl.seq;
    if (ctl.kind === 'reset') {
      // another store behind the same issuer: its positions restart. What was learnt is kept (it
      // expires on its own); the snapshot that follows is merged into it.
      position = 0;
      c.seq = 0;
      return;
    }
    if (ctl.kind === 'ready') {
      // the server has sent everything up to seq (events past their retention are skipped)
      if (ctl.seq > position) position = ctl.seq;
      live = true;
      stalled = false;
      needKeys = false;
      everReady = true;
      lastHeard = Date.now();
      lastError = undefined;
      settle();
      return;
    }
    if (!live) return;
    if (ctl.seq > position) {
      // the server has events we were not sent or did not apply: start again from ours
      dropConnection(`heartbeat at ${ctl.seq} ahead of position ${position}: reconnecting from ${position}`, c);
      return;
    }
    lastHeard = Date.now();
  }

  async function discover(): Promise<void> {
    if (feedUri !== undefined && (o.fallback !== 'introspect' || introspectionUri !== undefined)) return;
    for (const url of metadataUrls(o.issuer)) {
      const r = await getJson(url, { fetch: fetchFn, timeoutMs: 5000 });
      if (r.status === 404) continue;
      if (r.status !== 200) throw new FetchError(`GET ${url}: unexpected 304`);
      const meta = r.body as Record<string, unknown> | null;
      if (meta?.issuer !== o.issuer) throw new FetchError(`${url}: metadata issuer does not match`);
      // both receive the client's credentials: held to https like the options are
      if (feedUri === undefined) {
        if (meta.revocation_feed_endpoint === undefined) throw new FetchError(`${url}: no revocation_feed_endpoint`);
        feedUri = credentialEndpoint(meta.revocation_feed_endpoint, `${url}: revocation_feed_endpoint`, { issuer: o.issuer });
      }
      // taken (and checked) only when it will be used: a bad one must not keep the feed from connecting
      if (o.fallback === 'introspect' && introspectionUri === undefined && meta.introspection_endpoint !== undefined) {
        introspectionUri = credentialEndpoint(meta.introspection_endpoint, `${url}: introspection_endpoint`, { issuer: o.issuer });
      }
      return;
    }
    throw new FetchError(`no authorization server metadata for ${o.issuer}`);
  }

  /** One connection, until it ends. True when it got as far as a 200. */
  async function connectOnce(): Promise<boolean> {
    await discover();
    if (needKeys) {
      // a message could not be verified for want of its key: fetch the keys again before asking for it again
      // (bounded by the reconnect backoff; the store shares one fetch among all who wait)
      await keys.refresh(Date.now(), true);
    }
    abort = new AbortController();
    const c = { nonce: randomNonce(), iat: 0, seq: 0, dead: false };
    const headers: Record<string, string> = { authorization: basic, accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (position > 0) headers['last-event-id'] = String(position);
    const url = new URL(feedUri!);
    url.searchParams.set('nonce', c.nonce);
    const res = await fetchFn(url.href, { headers, redirect: 'manual', signal: abort.signal });
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
    // a 200 proves nothing yet: live (and a fresh lastHeard) only once this connection's ready verifies
    live = false;
    conn = c;
    connectedAt = Date.now();
    const parser = createParser({
      onEvent: (m) => {
        queue = queue.then(() => apply(m, c));
      },
    });
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      connected = false;
      reader.releaseLock();
    }
    await queue;
    c.dead = true;
    if (c === conn) live = false;
    return true;
  }

  async function run(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!closed) {
      try {
        dropReason = undefined;
        // a connection dropped for a message that did not verify is not a success: keep backing off
        if ((await connectOnce()) && dropReason === undefined) backoff = MIN_BACKOFF_MS;
        lastError = lastError ?? 'revocation feed: connection ended';
      } catch (err) {
        if (closed) break;
        lastError = dropReason ?? (err instanceof Error ? err.message : String(err));
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

  // a connection that has gone silent (no verified heartbeat) is dropped and reopened from its position
  const watchdog = setInterval(() => {
    if (connected && Date.now() - Math.max(lastHeard, connectedAt) > maxStaleness) abort?.abort();
    if (everReady) list.prune();
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
    credentialEndpoint(introspectionUri, 'introspection endpoint');
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
      return everReady && !stalled && !closed && Date.now() - lastHeard <= maxStaleness;
    },
    check(claims: AccessTokenClaims, header: TokenHeader) {
      return list.check(claims, header);
    },
    // a signing-key-revoked event lets the verifier fetch the issuer's new key at once (see RevocationSource)
    get keysRevoked() {
      return list.keysRevoked;
    },
    ready(timeoutMs = 10_000) {
      if (everReady) return Promise.resolve();
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
    get stalled() {
      return stalled;
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
  // both receive the client's credentials
  for (const [name, url] of [['feedUri', o.feedUri], ['introspectionEndpoint', o.introspectionEndpoint]] as const) {
    if (url === undefined) continue;
    try {
      credentialEndpoint(url, `createRevocationFeed: ${name}`);
    } catch (err) {
      throw new TypeError((err as Error).message);
    }
  }
  return o;
}

/** 128 random bits, base64url: this connection's challenge, echoed in its signed control messages. */
function randomNonce(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding. */
function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}
