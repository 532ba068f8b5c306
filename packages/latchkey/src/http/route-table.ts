/**
 * The routes an app has, as Fastify registered them (recorded by an onRoute
 * hook in server.ts), and matching of concrete paths and gateway prefixes
 * against their patterns. Segment by segment, no regular expressions: these
 * run on request paths.
 */
export interface RouteEntry {
  method: string;
  /** Fastify's pattern: static segments, `:param` (one non-empty segment), `*` (the rest). */
  url: string;
}

const segments = (path: string): string[] => path.split('/').slice(1);

/** Does `path` (no query) match `pattern`? */
export function matches(pattern: string, path: string): boolean {
  const p = segments(pattern);
  const s = segments(path);
  for (let i = 0; i < p.length; i++) {
    const seg = p[i]!;
    if (seg === '*') return true;
    if (i >= s.length) return false;
    if (seg.startsWith(':')) {
      if (s[i] === '') return false;
    } else if (seg !== s[i]) {
      return false;
    }
  }
  return p.length === s.length;
}

/** The methods some route accepts for this request URL; empty when no route has the path at all. */
export function allowedMethods(routes: readonly RouteEntry[], url: string): string[] {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const allow = new Set<string>();
  for (const r of routes) if (matches(r.url, path)) allow.add(r.method);
  if (allow.has('GET')) allow.add('HEAD');
  return [...allow].sort();
}

/**
 * Could a request under a gateway `prefix` (the prefix itself or any path
 * below it) also match `pattern`? Then the prefix shadows or collides with
 * that route.
 */
export function overlapsPrefix(prefix: string, pattern: string): boolean {
  const pre = segments(prefix);
  const p = segments(pattern);
  for (let i = 0; i < pre.length; i++) {
    if (i >= p.length) return false;
    const seg = p[i]!;
    if (seg === '*') return true;
    if (!seg.startsWith(':') && seg !== pre[i]) return false;
  }
  return true;
}
