/** RFC 8414 discovery of `jwks_uri` (and the feed's endpoints) from the issuer's authorization server metadata. */
import { FetchError, getJson, type FetchLike } from './http.js';

/**
 * The metadata URLs to try: RFC 8414 §3.1 puts the well-known segment between
 * host and path (`https://h/.well-known/oauth-authorization-server/tenant`);
 * servers mounted under a path often serve it below the issuer instead, which
 * is the same URL when the issuer has no path.
 */
export function metadataUrls(issuer: string): string[] {
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
  const rfc = `${u.origin}/.well-known/oauth-authorization-server${path}`;
  const appended = `${issuer.replace(/\/$/, '')}/.well-known/oauth-authorization-server`;
  return rfc === appended ? [rfc] : [rfc, appended];
}

/** Fetch the metadata and return its `jwks_uri`, after checking that it names this issuer. */
export async function discoverJwksUri(issuer: string, fetch: FetchLike, timeoutMs: number): Promise<string> {
  for (const url of metadataUrls(issuer)) {
    const r = await getJson(url, { fetch, timeoutMs });
    if (r.status === 404) continue;
    if (r.status !== 200) throw new FetchError(`GET ${url}: unexpected 304`);
    const meta = r.body as { issuer?: unknown; jwks_uri?: unknown } | null;
    // RFC 8414 §3.3: metadata for another issuer must not be used (it could point at an attacker's keys)
    if (meta?.issuer !== issuer) throw new FetchError(`${url}: metadata issuer does not match`);
    if (typeof meta.jwks_uri !== 'string') throw new FetchError(`${url}: no jwks_uri`);
    let jwks: URL;
    try {
      jwks = new URL(meta.jwks_uri);
    } catch {
      throw new FetchError(`${url}: jwks_uri is not a URL`);
    }
    if (jwks.protocol !== 'https:' && !(jwks.protocol === 'http:' && new URL(issuer).protocol === 'http:')) {
      throw new FetchError(`${url}: jwks_uri must use https`);
    }
    return jwks.href;
  }
  throw new FetchError(`no authorization server metadata for ${issuer}`);
}

/** 127.0.0.0/8, ::1 and localhost: plain http is tolerated there, for development only. */
export function isLoopback(url: URL): boolean {
  const h = url.hostname.toLowerCase();
  if (h === 'localhost' || h === '[::1]') return true;
  const parts = h.split('.');
  return parts.length === 4 && parts[0] === '127' && parts.every((p) => p.length > 0 && p.length <= 3 && [...p].every((c) => c >= '0' && c <= '9') && Number(p) <= 255);
}

/**
 * An endpoint that will receive the client's credentials (the revocation feed,
 * introspection): https, or http on a loopback host (development). Whether it
 * came from the options or from metadata, the secret never crosses a network
 * in clear text, and metadata cannot point it at a plain-http host. Given
 * `issuer` (the endpoint came from its metadata), http is refused as well
 * unless the issuer is http itself, the rule `jwks_uri` follows.
 */
export function credentialEndpoint(raw: unknown, what: string, opts: { issuer?: string } = {}): string {
  if (typeof raw !== 'string') throw new FetchError(`${what} is not a URL`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new FetchError(`${what} is not a URL`);
  }
  if (u.protocol === 'https:') return u.href;
  // from metadata, as for jwks_uri: plain http only when the issuer itself is http (development)
  const issuerHttp = opts.issuer === undefined || new URL(opts.issuer).protocol === 'http:';
  if (u.protocol === 'http:' && isLoopback(u) && issuerHttp) return u.href;
  throw new FetchError(`${what} must use https (plain http only on a loopback host, and from metadata only for an http issuer): ${u.origin}`);
}
