/** Shared test scaffolding: a real server on loopback with a temp data dir, and a cookie-keeping client. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createLatchkey, type CreateOptions, type Latchkey } from '../src/app.js';
import { parseConfig, type Config } from '../src/config.js';

/** argon2 parameters that keep tests fast; the defaults are exercised in accounts.test.ts. */
export const FAST_ARGON2 = { memoryKiB: 8192, iterations: 1, parallelism: 1 };
export const ADMIN_KEY = 'test-admin-key-0123456789abcdef0123456789';
/**
 * The key-encryption key of this test process's PostgreSQL instances (latchkey refuses to start on
 * PostgreSQL without one): the same for every instance of a file, as the nodes of one cluster share theirs.
 */
export const TEST_KEK = randomBytes(32).toString('base64');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface TestServer {
  lk: Latchkey;
  url: string;
  config: Config;
  close(): Promise<void>;
}

/**
 * Start latchkey on 127.0.0.1 with a fresh data dir; `overrides` is merged into the config. On
 * PostgreSQL the key-encryption key is TEST_KEK unless `overrides` names one.
 */
export async function startServer(overrides: Record<string, unknown> = {}, opts: CreateOptions = {}): Promise<TestServer> {
  // the issuer URL names the port, so it is chosen before listening; another test file running
  // in parallel can take it in between, and then we start again on another
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(overrides, opts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 5) throw err;
    }
  }
}

async function startServerOnce(overrides: Record<string, unknown>, opts: CreateOptions): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-test-'));
  const port = await freePort();
  const { passwords, rateLimit, ...rest } = overrides as {
    passwords?: Record<string, unknown>;
    rateLimit?: Record<string, unknown>;
    [key: string]: unknown;
  };
  const onPostgres = (rest.store as { kind?: string } | undefined)?.kind === 'postgres';
  const keys = rest.keys as Record<string, unknown> | undefined;
  if (onPostgres && keys?.encryptionKey === undefined) rest.keys = { ...keys, encryptionKey: TEST_KEK };
  const config = parseConfig({
    port,
    dataDir,
    issuer: `http://localhost:${port}`,
    logLevel: 'silent',
    adminKey: ADMIN_KEY,
    passwords: { argon2: FAST_ARGON2, ...passwords },
    // every test user signs up from 127.0.0.1: the sign-up limit is tested where it is set low
    rateLimit: { signupPerIp: 100_000, ...rateLimit },
    ...rest,
  });
  const lk = await createLatchkey(config, { logger: false, ...opts });
  try {
    await lk.http.listen({ port: config.port, host: '127.0.0.1' });
  } catch (err) {
    await lk.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    lk,
    config,
    url: `http://127.0.0.1:${config.port}`,
    async close() {
      await lk.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A minimal browser-like client: keeps cookies set by the server (name=value only). */
export class Client {
  readonly cookies = new Map<string, string>();
  lastSetCookie: string[] = [];
  constructor(
    readonly base: string,
    readonly userAgent = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  ) {}

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { 'user-agent': this.userAgent, ...headers };
    if (this.cookies.size) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.base + path, { method, headers: h, body: payload, redirect: 'manual' });
    this.lastSetCookie = res.headers.getSetCookie();
    for (const sc of this.lastSetCookie) {
      const [pair, ...attrs] = sc.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  get = (path: string, headers?: Record<string, string>) => this.request('GET', path, undefined, headers);
  post = (path: string, body?: unknown, headers?: Record<string, string>) => this.request('POST', path, body, headers);
  delete = (path: string, headers?: Record<string, string>) => this.request('DELETE', path, undefined, headers);

  async signup(email: string, password = 'correct horse battery staple') {
    return this.post('/v1/signup', { email, password });
  }
  async login(email: string, password = 'correct horse battery staple') {
    return this.post('/v1/login', { email, password });
  }
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** The answer while the store cannot serve (store/outage.ts): 503 problem+json `store_unavailable`, Retry-After 5. */
export async function assertStoreUnavailable(res: Response): Promise<void> {
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  assert.equal(Number(res.headers.get('retry-after')), 5);
  assert.equal((await json(res)).code, 'store_unavailable');
}
