/** createVerifier's options, their defaults, and their validation (once, at creation). */
import type { FetchLike } from './keys/http.js';
import { checkJwks } from './keys/jwk.js';
import type { RevocationSource } from './revocation.js';
import { ALGORITHMS, type Algorithm, type JSONWebKeySet } from './types.js';

export interface VerifierOptions {
  /** The exact `iss` accepted; with neither `jwks` nor `jwksUri`, `jwks_uri` is discovered from its RFC 8414 metadata. */
  issuer: string;
  /** The `aud` this service accepts (exact match; a token's array `aud` must contain one of them). */
  audience: string | readonly string[];
  /** Where to fetch the JWKS (skips discovery). */
  jwksUri?: string;
  /** A fixed key set instead of fetching one. */
  jwks?: JSONWebKeySet;
  /** Accepted algorithms, a subset of EdDSA, ES256, RS256 (default: all three). Each key still fixes its own. */
  algorithms?: readonly Algorithm[];
  /** Seconds of clock skew allowed on exp, nbf and iat (default 10, at most 120). */
  clockTolerance?: number;
  /** Tokens longer than this are refused before parsing (default 4096). */
  maxTokenBytes?: number;
  /** Longest accepted `exp - iat` in seconds (default 3600). */
  maxLifetimeSeconds?: number;
  /** The verified-token cache: `false` to turn it off (default 10,000 entries). */
  cache?: false | { maxEntries?: number };
  /** Consulted on every verification, cache hits included. */
  revocation?: RevocationSource;
  /** Remote JWKS behaviour, in seconds. */
  jwksCache?: {
    /** At most one fetch per this many seconds, whatever triggers it (default 30). Also the shortest freshness. */
    cooldown?: number;
    /** Freshness when the response has no Cache-Control max-age (default 300). */
    defaultAge?: number;
    /** Longest freshness, whatever Cache-Control says (default 600). */
    maxAge?: number;
    /** How long past freshness the last-known keys keep working while the endpoint fails; then fail closed (default 3600). */
    maxStale?: number;
    /** Per-request timeout (default 5). */
    timeout?: number;
  };
  /** The fetch to use (default: the global fetch). */
  fetch?: FetchLike;
  /**
   * The clock, in ms since the epoch (default `Date.now`): token times, JWKS freshness and the
   * refetch cooldown are judged by it. For tests that move time instead of waiting for it.
   */
  now?: () => number;
}

export interface Settings {
  issuer: string;
  audiences: ReadonlySet<string>;
  accepted: ReadonlySet<Algorithm>;
  clockTolerance: number;
  maxTokenBytes: number;
  maxLifetimeSeconds: number;
  cacheEntries: number;
  revocation: RevocationSource | undefined;
  source: { kind: 'static'; jwks: JSONWebKeySet } | { kind: 'remote'; jwksUri: string | undefined };
  cooldownMs: number;
  defaultAgeMs: number;
  maxAgeMs: number;
  maxStaleMs: number;
  timeoutMs: number;
  fetch: FetchLike;
  now: () => number;
}

function fail(option: string, why: string): never {
  throw new TypeError(`createVerifier: ${option} ${why}`);
}

function seconds(v: unknown, option: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(option, `must be a number of seconds from ${min} to ${max}`);
  return v;
}

function integer(v: unknown, option: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(option, `must be an integer from ${min} to ${max}`);
  return v;
}

/** Validate options, apply defaults; throws a TypeError naming the option. */
export function settings(o: VerifierOptions): Settings {
  if (typeof o !== 'object' || o === null) fail('options', 'must be an object');
  if (typeof o.issuer !== 'string' || o.issuer === '') fail('issuer', 'must be a non-empty string');
  const aud = typeof o.audience === 'string' ? [o.audience] : o.audience;
  if (!Array.isArray(aud) || aud.length === 0 || !aud.every((a) => typeof a === 'string' && a !== '')) {
    fail('audience', 'must be a non-empty string or array of them');
  }
  const algs = o.algorithms ?? ALGORITHMS;
  if (!Array.isArray(algs) || algs.length === 0 || !algs.every((a) => ALGORITHMS.includes(a))) {
    fail('algorithms', `must be a non-empty subset of ${ALGORITHMS.join(', ')} (none and HMAC are never accepted)`);
  }
  const accepted = new Set<Algorithm>(algs);
  let source: Settings['source'];
  if (o.jwks !== undefined) {
    if (o.jwksUri !== undefined) fail('jwks', 'and jwksUri are exclusive');
    const { keys, skipped } = checkJwks(o.jwks, accepted);
    if (keys.length === 0) fail('jwks', `has no usable key (${skipped.join('; ') || 'empty'})`);
    source = { kind: 'static', jwks: o.jwks };
  } else {
    const url = o.jwksUri ?? o.issuer;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      fail(o.jwksUri === undefined ? 'issuer' : 'jwksUri', 'must be a URL (or pass jwks)');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') fail(o.jwksUri === undefined ? 'issuer' : 'jwksUri', 'must be an http(s) URL');
    source = { kind: 'remote', jwksUri: o.jwksUri };
  }
  if (o.cache !== undefined && o.cache !== false && (typeof o.cache !== 'object' || o.cache === null)) fail('cache', 'must be false or { maxEntries }');
  const r = o.revocation;
  if (r !== undefined && (typeof r !== 'object' || r === null || typeof r.check !== 'function')) fail('revocation', 'must have check(claims, header)');
  const j = o.jwksCache ?? {};
  const cooldown = seconds(j.cooldown, 'jwksCache.cooldown', 30, 0, 3600);
  const fetchFn = o.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof fetchFn !== 'function' && source.kind === 'remote') fail('fetch', 'is needed: this runtime has no global fetch');
  if (o.now !== undefined && typeof o.now !== 'function') fail('now', 'must be a function returning ms since the epoch');
  return {
    issuer: o.issuer,
    audiences: new Set(aud),
    accepted,
    clockTolerance: seconds(o.clockTolerance, 'clockTolerance', 10, 0, 120),
    maxTokenBytes: integer(o.maxTokenBytes, 'maxTokenBytes', 4096, 64, 65536),
    maxLifetimeSeconds: seconds(o.maxLifetimeSeconds, 'maxLifetimeSeconds', 3600, 1, 366 * 86400),
    cacheEntries: o.cache === false ? 0 : integer(o.cache?.maxEntries, 'cache.maxEntries', 10_000, 1, 10_000_000),
    revocation: r,
    source,
    cooldownMs: cooldown * 1000,
    defaultAgeMs: seconds(j.defaultAge, 'jwksCache.defaultAge', 300, 0, 86400) * 1000,
    maxAgeMs: seconds(j.maxAge, 'jwksCache.maxAge', 600, 0, 86400) * 1000,
    maxStaleMs: seconds(j.maxStale, 'jwksCache.maxStale', 3600, 0, 7 * 86400) * 1000,
    timeoutMs: seconds(j.timeout, 'jwksCache.timeout', 5, 0.001, 120) * 1000,
    fetch: fetchFn as FetchLike,
    now: o.now ?? Date.now,
  };
}
