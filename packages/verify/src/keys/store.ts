/**
 * The keys a verifier trusts, and when to fetch them again.
 *
 * - Fresh for the JWKS response's Cache-Control max-age, clamped between the
 *   refetch cooldown and `maxAge`.
 * - Past that, verification goes on with the keys it has while one refresh
 *   runs in the background (stale-while-revalidate).
 * - If refreshes fail, the last-known keys keep working for `maxStale` past
 *   their freshness; after that every verification fails closed
 *   (`jwks_unavailable`) until a fetch succeeds.
 * - At most one fetch per cooldown, whatever asks: an unknown kid, staleness or
 *   a failed endpoint. Forged kids cannot amplify into fetches.
 */
import type { Backend } from '../crypto/backend.js';
import type { Algorithm } from '../types.js';
import { discoverJwksUri } from './discovery.js';
import { getJson, type FetchLike } from './http.js';
import { checkJwks, importKeys, type VerifyKey } from './jwk.js';

/** What one load returns: a new set (with its freshness), or "unchanged" (HTTP 304). */
export type LoadResult = { set: unknown; etag?: string; ageMs: number } | { unchanged: true; etag?: string; ageMs: number };
export type Loader = (etag: string | undefined) => Promise<LoadResult>;

export interface KeyStoreOptions {
  backend: () => Promise<Backend>;
  accepted: ReadonlySet<Algorithm>;
  cooldownMs: number;
  maxStaleMs: number;
  /** The clock (default Date.now). */
  now?: () => number;
}

export class KeyStore {
  /** Keys by kid. Replaced (never mutated) on refresh. */
  keys: ReadonlyMap<string, VerifyKey> = new Map();
  /** Epoch ms until which the keys are fresh (no refresh needed). */
  freshUntil = 0;
  /** Epoch ms after which the keys must not be used (fail closed). */
  usableUntil = 0;
  /** Why the last load failed, for diagnostics. */
  lastError: string | undefined;
  /** Loads started (for diagnostics and tests). */
  loads = 0;
  private lastAttempt = -Infinity;
  private inflight: Promise<void> | undefined;
  private etag: string | undefined;

  constructor(
    private readonly loader: Loader,
    private readonly opts: KeyStoreOptions,
  ) {}

  /**
   * Start a refresh if none is running and the cooldown allows; returns the
   * running refresh (to await) or undefined when the cooldown forbids one.
   * `force` skips the cooldown: only for a signal from the issuer itself (a
   * signed key-revocation event), never for anything a request carries.
   */
  refresh(now: number, force = false): Promise<void> | undefined {
    if (this.inflight) return this.inflight;
    if (!force && now - this.lastAttempt < this.opts.cooldownMs) return undefined;
    this.lastAttempt = now;
    this.loads++;
    this.inflight = this.run().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Stale but usable: refresh in the background, never making this request wait. */
  revalidate(now: number): void {
    if (!this.inflight && now - this.lastAttempt >= this.opts.cooldownMs) void this.refresh(now);
  }

  private async run(): Promise<void> {
    try {
      const r = await this.loader(this.etag);
      if (!('unchanged' in r)) {
        const backend = await this.opts.backend();
        const checked = checkJwks(r.set, this.opts.accepted);
        const imported = await importKeys(checked.keys, backend, this.keys);
        // tokens cached under a key that left the set must be verified again (and then refused)
        for (const old of this.keys.values()) if (imported.keys.get(old.kid) !== old) old.removed = true;
        this.keys = imported.keys;
      }
      this.etag = r.etag;
      const now = (this.opts.now ?? Date.now)();
      this.freshUntil = now + r.ageMs;
      this.usableUntil = this.freshUntil + this.opts.maxStaleMs;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }
}

/** A loader for a JWKS given in the options: loaded once, fresh forever. */
export function staticLoader(jwks: unknown): Loader {
  return async () => ({ set: jwks, ageMs: Infinity });
}

export interface RemoteOptions {
  issuer: string;
  jwksUri: string | undefined;
  fetch: FetchLike;
  timeoutMs: number;
  /** Freshness when the response has no Cache-Control max-age. */
  defaultAgeMs: number;
  minAgeMs: number;
  maxAgeMs: number;
}

/** A loader for a remote JWKS, discovering `jwks_uri` from RFC 8414 metadata when not given. */
export function remoteLoader(o: RemoteOptions): Loader {
  let jwksUri = o.jwksUri;
  return async (etag) => {
    jwksUri ??= await discoverJwksUri(o.issuer, o.fetch, o.timeoutMs);
    const r = await getJson(jwksUri, { fetch: o.fetch, timeoutMs: o.timeoutMs, ...(etag ? { etag } : {}) });
    if (r.status === 404) throw new Error(`GET ${jwksUri}: HTTP 404`);
    const age = r.maxAgeSeconds === undefined ? o.defaultAgeMs : r.maxAgeSeconds * 1000;
    const ageMs = Math.min(o.maxAgeMs, Math.max(o.minAgeMs, age));
    return r.status === 304 ? { unchanged: true, etag: r.etag, ageMs } : { set: r.body, etag: r.etag, ageMs };
  };
}
