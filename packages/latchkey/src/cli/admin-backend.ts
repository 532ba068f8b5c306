/**
 * Where `latchkey users|sessions|audit` send their work: the local store through the AdminService
 * the admin API itself calls, or a running server's admin API (`--url`). Both answer with the
 * admin API's JSON shapes, so a command prints the same either way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { AuditPage, AuditQuery, RolesInput } from '../admin/service.js';
import type { SessionView, UserView } from '../admin/views.js';
import type { Config } from '../config.js';
import { isLatchkeyError } from '../errors.js';

/** The operations of the admin API, as the CLI uses them. */
export interface AdminBackend {
  findUser(email: string): Promise<{ user: UserView }>;
  showUser(id: string): Promise<{ user: UserView }>;
  listSessions(userId: string): Promise<{ sessions: SessionView[] }>;
  revokeUserSessions(userId: string): Promise<{ revoked: number }>;
  revokeSession(handle: string): Promise<void>;
  disableUser(id: string): Promise<{ user: UserView; revoked: number }>;
  enableUser(id: string): Promise<{ user: UserView }>;
  setRoles(id: string, input: RolesInput): Promise<{ user: UserView }>;
  auditPage(query: AuditQuery): Promise<AuditPage>;
  close(): Promise<void>;
}

/** A refusal or failure to report: `code` is the admin API's problem code (or the CLI's own). */
export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Domain errors (LatchkeyError) become CommandErrors with the same code and message. */
export function asCommandError(err: unknown): CommandError | undefined {
  if (err instanceof CommandError) return err;
  if (isLatchkeyError(err)) return new CommandError(err.code, err.message);
  return undefined;
}

/**
 * The local store, as `serve` would open it, never creating one: a SQLite file that does not
 * exist is an error (a mistyped --data-dir must not become an empty install). Its revocation
 * events reach the running server through its feed, as any other writer's do.
 */
export async function localBackend(config: Config): Promise<AdminBackend> {
  // the store's modules load here: a command sent to a server (--url) needs none of them
  const { describeStore, openStore, sqliteFile } = await import('../store/open.js');
  const { AdminService } = await import('../admin/service.js');
  const { SessionService } = await import('../sessions/service.js');
  const { AuditLog } = await import('../audit/log.js');
  const { revocationRetention } = await import('../tokens/services.js');
  if (config.store.kind === 'sqlite' && !existsSync(sqliteFile(config))) {
    throw new CommandError('no_store', `no latchkey store at ${sqliteFile(config)} (check --data-dir, or set LATCHKEY_DATABASE_URL)`);
  }
  const store = openStore(config);
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    // the driver's messages name the host and user at most, never the password
    throw new CommandError('store_unavailable', `${(err as Error).message} (${describeStore(config)})`);
  }
  // events written here are kept as long as the server keeps its own
  store.setRevocationPolicy({ retainSeconds: revocationRetention(config), now: Date.now });
  const admin = new AdminService(store, new SessionService(store, config.sessions), new AuditLog(store, Date.now, config.audit));
  return {
    findUser: (email) => admin.findUser(email),
    showUser: (id) => admin.showUser(id),
    listSessions: (userId) => admin.listSessions(userId),
    revokeUserSessions: (userId) => admin.revokeUserSessions(userId),
    revokeSession: (handle) => admin.revokeSession(handle),
    disableUser: (id) => admin.disableUser(id),
    enableUser: (id) => admin.enableUser(id),
    setRoles: (id, input) => admin.setRoles(id, input),
    auditPage: (query) => admin.auditPage(query),
    close: () => store.close(),
  };
}

/** How long one admin API request may take. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Hosts an admin key may travel to over plain http: this machine only. */
const isLoopback = (hostname: string): boolean =>
  hostname === 'localhost' || hostname === '[::1]' || (isIPv4(hostname) && hostname.startsWith('127.'));

/**
 * A server's base URL from --url, or why it cannot be one. The admin key goes with every request,
 * so it must be https unless the server is on this machine (loopback).
 */
export function serverUrl(input: string): { root: string } | { problem: string } {
  if (!URL.canParse(input)) return { problem: '--url must be an http(s) URL' };
  const u = new URL(input);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: '--url must be an http(s) URL' };
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
    return { problem: '--url must be a base URL, without query, fragment or credentials' };
  }
  if (u.protocol === 'http:' && !isLoopback(u.hostname)) {
    return { problem: '--url must be https: the admin key would cross the network in clear (http is for loopback only)' };
  }
  let path = u.pathname;
  while (path.endsWith('/')) path = path.slice(0, -1);
  return { root: u.origin + path };
}

/**
 * A running server's admin API under `root` (serverUrl's answer), authenticated with the admin
 * key. The key travels only in the Authorization header, never in an error message.
 */
export function remoteBackend(root: string, adminKey: string): AdminBackend {
  const seg = encodeURIComponent;
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(root + path, {
        method,
        headers: {
          authorization: `Bearer ${adminKey}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'error',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CommandError('unreachable', `cannot reach ${root}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CommandError('bad_response', `${root} answered ${res.status} without JSON: is it a latchkey server?`);
    }
    if (res.ok) return json as T;
    const p = json as { code?: unknown; detail?: unknown; title?: unknown };
    const code = typeof p.code === 'string' ? p.code : `http_${res.status}`;
    if (res.status === 404 && code === 'not_found') {
      throw new CommandError(code, `${root} has no admin API here (is adminKey set on the server, and is --url its base URL?)`);
    }
    if (code === 'unauthenticated') throw new CommandError(code, `${root} refused the admin key`);
    throw new CommandError(code, typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : `HTTP ${res.status}`);
  }
  return {
    findUser: (email) => call('GET', `/v1/admin/users?email=${seg(email)}`),
    showUser: (id) => call('GET', `/v1/admin/users/${seg(id)}`),
    listSessions: (userId) => call('GET', `/v1/admin/users/${seg(userId)}/sessions`),
    revokeUserSessions: (userId) => call('DELETE', `/v1/admin/users/${seg(userId)}/sessions`),
    revokeSession: (handle) => call('DELETE', `/v1/admin/sessions/${seg(handle)}`),
    disableUser: (id) => call('POST', `/v1/admin/users/${seg(id)}/disable`),
    enableUser: (id) => call('POST', `/v1/admin/users/${seg(id)}/enable`),
    setRoles: (id, input) => call('PUT', `/v1/admin/users/${seg(id)}/roles`, input),
    auditPage: (q) => {
      const params = new URLSearchParams();
      if (q.userId !== undefined) params.set('userId', q.userId);
      if (q.type !== undefined) params.set('type', q.type);
      if (q.limit !== undefined) params.set('limit', String(q.limit));
      if (q.before !== undefined) params.set('before', String(q.before));
      const qs = params.toString();
      return call('GET', `/v1/admin/audit${qs ? `?${qs}` : ''}`);
    },
    close: async () => undefined,
  };
}

/** The admin key for --url: from --admin-key-file, else LATCHKEY_ADMIN_KEY (never a flag: argv is visible to every local user). */
export function adminKeyFrom(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new CommandError('bad_key_file', `cannot read --admin-key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const key = env.LATCHKEY_ADMIN_KEY;
  return key === undefined || key === '' ? undefined : key;
}
