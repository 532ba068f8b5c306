/**
 * Fuzz every route against a real server: arbitrary paths (parameters,
 * wildcards, escapes good and bad), query strings, methods, headers, bodies
 * and content types, with no credentials, a live session cookie, the admin
 * key or a registered client's Basic credentials. For every answer:
 * - never a 5xx;
 * - an error body is problem+json, RFC 6749 error JSON under /oauth, or one
 *   of the account pages' HTML error pages, never Fastify's own JSON;
 * - a refused request (4xx) writes nothing: users, sessions, devices,
 *   refresh families and tokens, revocation events keep their row counts,
 *   and audit events too, except for failed authentication (401, 429),
 *   which is recorded on purpose.
 * The routes come from the app itself (the onRoute table), so a new route
 * is fuzzed without touching this file. Bounded in time; the seed is printed
 * and LATCHKEY_FUZZ_SEED=<seed> replays a run (LATCHKEY_FUZZ_RUNS=<n> runs
 * more cases per route).
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { RouteEntry } from '../src/http/route-table.js';
import type { SqliteStore } from '../src/store/sqlite/index.js';
import { ADMIN_KEY, freePort, startServer, type TestServer } from './helpers.js';

const SEED = process.env.LATCHKEY_FUZZ_SEED ? Number(process.env.LATCHKEY_FUZZ_SEED) : Date.now() % 2 ** 31;
const RUNS_PER_ROUTE = Number(process.env.LATCHKEY_FUZZ_RUNS ?? 15);
/** Whole-run budget: past it, each remaining route gets only a couple of cases. */
const BUDGET_MS = 25_000;
const RUNS_PAST_BUDGET = 2;
const PASSWORD = 'correct horse battery staple';
const FEED_CLIENT = { id: 'fuzz-feed', secret: 'fuzz-feed-secret-0123456789abcdef0123', revocationFeed: true };
const TABLES = ['users', 'sessions', 'devices', 'refresh_families', 'refresh_tokens', 'revocations'] as const;

let srv: TestServer;
let upstream: Server;
let email: string;
let userId: string;
let sessionCookie = '';

before(async () => {
  // a real upstream behind the gateway: drains the body, answers 200
  const port = await freePort();
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => upstream.listen(port, '127.0.0.1', resolve));
  srv = await startServer({
    clients: [FEED_CLIENT],
    gateway: { routes: [{ prefix: '/api/fuzz', upstream: `http://127.0.0.1:${port}/base`, audience: 'fuzz' }] },
  });
  email = `fuzz.${process.pid}@example.com`;
  const res = await fetch(`${srv.url}/v1/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(res.status, 201);
  userId = ((await res.json()) as { user: { id: string } }).user.id;
});

after(async () => {
  await srv.close();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

const db = () => (srv.lk.store as SqliteStore).db;
const count = (table: string) => (db().prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
const counts = () => Object.fromEntries([...TABLES, 'audit_events'].map((t) => [t, count(t)]));

/**
 * A live session cookie for the fuzz user (the fuzzer may have logged it out).
 * Made by the session service, not by signing in: the fuzzer's wrong
 * passwords for this email would soon have sign-in throttled.
 */
async function liveSession(): Promise<string> {
  const sessions = srv.lk.context.sessions;
  const secret = sessionCookie.slice(sessionCookie.indexOf('=') + 1);
  if (sessionCookie && (await sessions.authenticate(secret, '127.0.0.1'))) return sessionCookie;
  const created = await sessions.create(userId, { userAgent: 'fuzz', ip: '127.0.0.1' }, 'fuzz');
  sessionCookie = `${srv.config.sessions.cookieName}=${created.secret}`;
  return sessionCookie;
}

// --- arbitraries ---------------------------------------------------------------

/** Characters node's client lets into a request target (0x21-0xff), minus the ones that end a path. */
const pathChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom('%', '\\', '"', '<', '>', '`', '{', '}', '|', '^', '[', ']') },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const segment = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: pathChar, minLength: 1, maxLength: 12 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2E%2E', '.%2e', '%2F', '..%2F..', '%5c..%5c', '%ff', '%', '%zz', '%E4%B8%AD', '%00', '%C0%AE', '%uFFFF'),
  },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(201), 'b'.repeat(2000), '') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map(encodeURIComponent) },
);
/** Characters for query keys and values: anything a client could send, escapes good and bad. */
const queryChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abc019-._~!$\'()*+,;:@/?'.split('')) },
  { weight: 2, arbitrary: fc.constantFrom('%', '%ff', '%2', '%E4%B8%AD', '../', '..%2F', '%00', '+', '=', '&', '[', ']', '\\', '"', '<') },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const queryWord = fc.string({ unit: queryChar, maxLength: 10 });
const queryKey = fc.oneof(fc.constantFrom('next', 'email', 'after', 'limit', 'before', 'type', 'userId', 'notice', 'ended', 'q', '__proto__', 'constructor'), queryWord);
const query = fc.oneof(
  { weight: 1, arbitrary: fc.constant('') },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.tuple(queryKey, fc.option(queryWord, { nil: undefined })), { minLength: 1, maxLength: 4 })
      .map((pairs) => '?' + pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join('&')),
  },
);

/** A concrete path for a route pattern: parameters and wildcards filled, now and then a foreign path. */
function pathFor(pattern: string) {
  const parts = pattern.split('/').slice(1);
  return fc.tuple(...parts.map((p) => (p.startsWith(':') ? segment : p === '*' ? fc.array(segment, { maxLength: 3 }).map((s) => s.join('/')) : fc.constant(p)))).map((segs) => `/${segs.join('/')}`);
}

/** Header values node's client accepts: tab, 0x20-0x7e, 0x80-0xff. */
const headerValue = fc.string({
  unit: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
  ),
  maxLength: 40,
});
const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'text/plain',
    'text/plain; charset=utf-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/problem+json',
    'application/*',
    '*/*',
    'application/json;',
    ';',
    '',
  ),
  headerValue,
);
const HEADER_NAMES = [
  'accept',
  'origin',
  'sec-fetch-site',
  'cookie',
  'authorization',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'x-real-ip',
  'last-event-id',
  'if-none-match',
  'user-agent',
  'x-http-method-override',
  'accept-encoding',
  'content-encoding',
  'x-fuzz',
] as const;
const headerPair = fc.oneof(
  fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValue),
  fc.tuple(fc.constant('sec-fetch-site'), fc.constantFrom('same-origin', 'none', 'same-site', 'cross-site')),
  fc.tuple(fc.constant('origin'), fc.constantFrom('null', 'http://evil.example', 'http://localhost')),
  fc.tuple(fc.constant('cookie'), fc.constantFrom('__Host-latchkey=' + 'a'.repeat(43), '__Host-latchkey-csrf=x', '__Secure-latchkey-refresh=rt.x', '__Host-latchkey=%ff;')),
  fc.tuple(fc.constant('authorization'), fc.constantFrom('Basic', 'Basic ====', 'Basic Og==', 'Bearer ', 'Bearer x.y.z', 'Basic ' + Buffer.from('a%:b').toString('base64'))),
  fc.tuple(fc.constant('expect'), fc.constant('100-continue')),
);

const jsonBody = fc.oneof(
  fc.json({ maxDepth: 2 }),
  fc
    .record(
      {
        email: fc.oneof(fc.emailAddress(), fc.string({ unit: 'binary', maxLength: 20 }), fc.constant(`fuzz.${process.pid}@example.com`)),
        password: fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constant(PASSWORD)),
        currentPassword: fc.string({ maxLength: 12 }),
        newPassword: fc.string({ maxLength: 12 }),
        roles: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
        refreshCookie: fc.boolean(),
        _csrf: fc.string({ unit: 'binary', maxLength: 44 }),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
);
const formBody = fc
  .array(fc.tuple(fc.constantFrom('grant_type', 'refresh_token', 'token', 'token_type_hint', 'client_id', 'client_secret', 'scope', 'email', 'password', 'next', '_csrf', 'x'), queryWord), { maxLength: 5 })
  .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));
const body = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: jsonBody.map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: formBody.map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }).map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)) },
);

type Auth = 'none' | 'session' | 'admin' | 'client';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'FOO'];

function requestFor(route: RouteEntry) {
  return fc.record({
    method: fc.oneof({ weight: 4, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
    path: fc.oneof({ weight: 6, arbitrary: pathFor(route.url) }, { weight: 1, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`) }),
    query,
    auth: fc.constantFrom<Auth>('none', 'session', 'session', 'admin', 'client'),
    contentType: fc.option(contentType, { nil: undefined }),
    headers: fc.array(headerPair, { maxLength: 4 }),
    body,
  });
}
type FuzzRequest = ReturnType<typeof requestFor> extends fc.Arbitrary<infer T> ? T : never;

interface Answer {
  status: number;
  type: string;
  body: string;
}

/** One request exactly as generated (node:http sends the target unparsed); event streams are not read. */
async function send(r: FuzzRequest): Promise<Answer> {
  const headers: Record<string, string> = {};
  for (const [k, v] of r.headers) headers[k] = v;
  if (r.contentType !== undefined) headers['content-type'] = r.contentType;
  if (r.auth === 'session') headers.cookie = [headers.cookie, await liveSession()].filter(Boolean).join('; ');
  if (r.auth === 'admin') headers.authorization = `Bearer ${ADMIN_KEY}`;
  if (r.auth === 'client') headers.authorization = `Basic ${Buffer.from(`${FEED_CLIENT.id}:${FEED_CLIENT.secret}`).toString('base64')}`;
  if (r.body !== undefined) headers['content-length'] = String(r.body.length);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: srv.config.port, method: r.method, path: r.path + r.query, headers, agent: false });
    const timer = setTimeout(() => req.destroy(new Error('no answer within 10 s')), 10_000);
    req.on('response', (res) => {
      const type = String(res.headers['content-type'] ?? '');
      if (type.startsWith('text/event-stream')) {
        clearTimeout(timer);
        res.destroy();
        resolve({ status: res.statusCode!, type, body: '' });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, type, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (headers.expect !== undefined) {
      // node's client holds the body until the server says 100 Continue (or answers at once)
      req.on('continue', () => req.end(r.body));
    } else {
      req.end(r.body);
    }
  });
}

/** The error body is one latchkey writes, never Fastify's or node's own. */
function assertErrorBody(r: FuzzRequest, a: Answer) {
  if (r.method === 'HEAD' || a.status < 400) return;
  assert.doesNotMatch(a.body, /"statusCode"\s*:/, 'a raw Fastify error body');
  if (a.type.startsWith('application/problem+json')) {
    const p = JSON.parse(a.body) as { status: number; code: string; type: string };
    assert.equal(p.status, a.status);
    assert.equal(p.type, `urn:latchkey:problem:${p.code}`);
  } else if (a.type.startsWith('application/json')) {
    assert.ok(r.path.startsWith('/oauth/'), `plain JSON error outside /oauth: ${a.body.slice(0, 200)}`);
    const e = JSON.parse(a.body) as { error: unknown; error_description: unknown };
    assert.equal(typeof e.error, 'string');
    assert.equal(typeof e.error_description, 'string');
  } else {
    assert.match(a.type, /^text\/html; charset=utf-8/, `error body of type ${a.type || '(none)'}`);
    assert.match(a.body, /^<!doctype html>/i);
  }
}

describe('fuzz: every route', () => {
  it(`answers arbitrary requests with no 5xx, latchkey error bodies and no write on refusal (seed ${SEED})`, async (t) => {
    t.diagnostic(`seed ${SEED} (replay: LATCHKEY_FUZZ_SEED=${SEED})`);
    const seen = new Set<string>();
    const routes = srv.lk.http.routeTable.filter((r) => {
      const key = `${r.method} ${r.url}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    // what the table must hold, or the enumeration itself broke
    for (const expected of ['POST /v1/login', 'POST /oauth/token', 'GET /account', 'POST /api/fuzz/*', 'GET /v1/revocations/events']) {
      assert.ok(seen.has(expected), `route table lacks ${expected}`);
    }
    const deadline = Date.now() + BUDGET_MS;
    let requests = 0;
    for (const route of routes) {
      const numRuns = Date.now() < deadline ? RUNS_PER_ROUTE : RUNS_PAST_BUDGET;
      await fc.assert(
        fc.asyncProperty(requestFor(route), async (r) => {
          // the fuzz user's session is (re)established outside the measured window
          if (r.auth === 'session') await liveSession();
          const before = counts();
          const a = await send(r);
          requests++;
          const where = `${r.method} ${r.path}${r.query} (route ${route.method} ${route.url}, seed ${SEED})`;
          assert.ok(a.status < 500, `${a.status} for ${where}: ${a.body.slice(0, 300)}`);
          assertErrorBody(r, a);
          if (a.status >= 400) {
            const now = counts();
            for (const table of TABLES) assert.equal(now[table], before[table], `${table} changed on a ${a.status} for ${where}`);
            if (a.status !== 401 && a.status !== 429) {
              assert.equal(now.audit_events, before.audit_events, `audit_events changed on a ${a.status} for ${where}`);
            }
          }
        }),
        // the failing assertion itself in the report, not only the counterexample
        { seed: SEED, numRuns, includeErrorInReport: true },
      );
    }
    t.diagnostic(`${requests} requests over ${routes.length} routes`);
    assert.ok(requests >= routes.length, 'every route was fuzzed at least once');
  });
});
