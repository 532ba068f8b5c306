/**
 * One validated configuration object. Sources, lowest precedence first:
 * built-in defaults, the JSON config file, LATCHKEY_* environment variables,
 * command-line flags. Validated once at start; domain code receives plain values.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { PRESESSION_COOKIE } from './web/form-tokens.js';
import { isPostgresUrl } from './store/postgres/url.js';
import type { EnvName } from './environment.js';

/** Browsers accept a `__Host-` cookie only with Secure, Path=/ and no Domain: no sibling subdomain can set or shadow it. */
export const HOST_PREFIX = '__Host-';

const Seconds = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

const Argon2Schema = Type.Object(
  {
    memoryKiB: Type.Integer({ minimum: 8192, default: 19456 }),
    iterations: Type.Integer({ minimum: 1, default: 2 }),
    parallelism: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  },
  { additionalProperties: false, default: {} },
);

const RouteSchema = Type.Object(
  {
    prefix: Type.String({ pattern: '^/[A-Za-z0-9._~!$&\'()*+,;=:@/-]*$', minLength: 1 }),
    upstream: Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$' }),
    audience: Type.String({ minLength: 1 }),
    roles: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
    unauthenticated: Type.Union([Type.Literal('401'), Type.Literal('redirect')], { default: '401' }),
    timeoutMs: Type.Integer({ minimum: 1, default: 10000 }),
    tokenLifetimeSeconds: Seconds(60, 5),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    dataDir: Type.String({ minLength: 1, default: '.latchkey' }),
    /**
     * Where accounts, sessions, refresh families, signing keys (private halves included),
     * the node-wide secrets, revocation events and the audit log live. sqlite (default): one
     * file in the data dir, one node. postgres: a shared database, for several nodes with
     * separate data dirs (docs/store.md), which requires keys.encryptionKey; `url` is
     * postgres://user:password@host/db, best given as LATCHKEY_DATABASE_URL rather than in the
     * config file.
     */
    store: Type.Union(
      [
        Type.Object({ kind: Type.Literal('sqlite') }, { additionalProperties: false }),
        Type.Object(
          {
            kind: Type.Literal('postgres'),
            url: Type.String({ minLength: 1 }),
            /** Connections each node keeps open at most. */
            poolSize: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
          },
          { additionalProperties: false },
        ),
      ],
      { default: { kind: 'sqlite' } },
    ),
    /** Public base URL of this server: token `iss`, metadata, and the origin CSRF checks expect. */
    issuer: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+$' })),
    /** Extra origins allowed to send cookie-authenticated state-changing requests. */
    allowedOrigins: Type.Array(Type.String({ pattern: '^https?://[^/?#]+$' }), { default: [] }),
    /**
     * Which proxies in front of latchkey to believe about the client's address
     * (X-Forwarded-For): the address every per-IP limit, audit event and session
     * record uses. `false` (default): none, the TCP peer is the client; behind a
     * proxy every client then shares the proxy's address. A number n: n proxies,
     * each appending the address it saw; the client is the n-th entry from the
     * right (only when latchkey cannot be reached except through them). A list of addresses and CIDRs (or one comma-separated string; the
     * names loopback, linklocal, uniquelocal stand for their ranges): the client is
     * the right-most address that is not a listed proxy. `true` is refused: it
     * believes the left-most entry, which the client writes. From LATCHKEY_TRUST_PROXY.
     */
    trustProxy: Type.Union(
      [Type.Literal(false), Type.Integer({ minimum: 1, maximum: 32 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
      { default: false },
    ),
    /** Bearer key for /v1/admin/*; at least 32 characters. Without it the admin API is off. */
    adminKey: Type.Optional(Type.String({ minLength: 32 })),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 1048576, default: 16384 }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    passwords: Type.Object(
      {
        minLength: Type.Integer({ minimum: 8, default: 8 }),
        maxLength: Type.Integer({ minimum: 64, maximum: 1024, default: 128 }),
        argon2: Argon2Schema,
      },
      { additionalProperties: false, default: {} },
    ),
    sessions: Type.Object(
      {
        /** Must start with `__Host-` (checked in parseConfig with a message that says so). */
        cookieName: Type.String({ pattern: '^[A-Za-z0-9_-]+$', default: '__Host-latchkey' }),
        sameSite: Type.Union([Type.Literal('lax'), Type.Literal('strict')], { default: 'lax' }),
        idleTimeoutSeconds: Seconds(12 * 3600, 60),
        absoluteLifetimeSeconds: Seconds(7 * 24 * 3600, 60),
        /** A session's last-seen time is written at most this often (reads stay reads). */
        touchIntervalSeconds: Seconds(60, 1),
        /** In-process cache of verified sessions (entries). */
        cacheSize: Type.Integer({ minimum: 0, default: 10000 }),
        /**
         * Sessions one user may hold (browser sessions and token clients' together). A new
         * login beyond it ends the user's least recently used session, with its revocation event.
         */
        maxPerUser: Type.Integer({ minimum: 1, maximum: 10000, default: 50 }),
        /**
         * Read the store on every request instead of trusting the in-process cache: a session
         * ended on another node is refused at once, at the cost of one store read per request.
         * Off: other nodes refuse it once their revocation feed has read the event (docs/store.md).
         */
        strict: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    rateLimit: Type.Object(
      {
        /**
         * Failed logins allowed per (IP, email) per window; also wrong current passwords per
         * user at password change, and wrong passwords per known-device cookie. IPv6
         * clients are counted per /64 in every per-IP limit.
         */
        loginPerAccount: Type.Integer({ minimum: 1, default: 10 }),
        /** Failed logins allowed per IP per window. */
        loginPerIp: Type.Integer({ minimum: 1, default: 100 }),
        /** Sign-up attempts allowed per IP per window, successful or not. */
        signupPerIp: Type.Integer({ minimum: 1, default: 20 }),
        windowSeconds: Seconds(900, 1),
        /**
         * Failed logins per account from all addresses together (credential stuffing
         * from many IPs) before backoff: after these, one attempt per
         * accountBackoffSeconds, doubling with each further failure up to
         * accountBackoffMaxSeconds. A browser that has signed in to the account
         * before (its device cookie) is exempt, so an attacker cannot lock the owner out.
         */
        accountFreeFailures: Type.Integer({ minimum: 1, default: 10 }),
        accountBackoffSeconds: Seconds(60, 1),
        accountBackoffMaxSeconds: Seconds(3600, 1),
        /** An account's failure count is forgotten this long after its first failure, or at a right password. */
        accountWindowSeconds: Seconds(24 * 3600, 60),
      },
      { additionalProperties: false, default: {} },
    ),
    tokens: Type.Object(
      {
        algorithm: Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256'), Type.Literal('RS256')], {
          default: 'EdDSA',
        }),
        /** Lifetime of access tokens from the token endpoint; short, because they cannot be recalled. */
        accessTokenLifetimeSeconds: Seconds(300, 10),
        /** `aud` of access tokens from the token endpoint. */
        audience: Type.String({ minLength: 1, default: 'latchkey' }),
        /** The first-party public client (mobile, CLI, SPA): identified by id, no secret. */
        clientId: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'latchkey' }),
        /** Space-separated `scope` claim put on every access token; none when absent. */
        scope: Type.Optional(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+( [\\x21\\x23-\\x5B\\x5D-\\x7E]+)*$' })),
      },
      { additionalProperties: false, default: {} },
    ),
    keys: Type.Object(
      {
        /** A key signs for this long, then the next one takes over. */
        rotationIntervalSeconds: Seconds(30 * 24 * 3600, 60),
        /** The next key is published this long before it starts signing. */
        prePublishSeconds: Seconds(24 * 3600, 1),
        /**
         * The key-encryption key: 32 random bytes, base64 or base64url (`openssl rand -base64 32`).
         * Private signing keys and the secrets (csrf.key, refresh.key, device.key) are kept in the
         * store, AES-256-GCM encrypted with it; plaintext ones are encrypted at the next start.
         * Required with the PostgreSQL store (every node sets the same one); on SQLite, without it
         * they are plaintext and `serve` warns at start. Set it in production, from the
         * environment (LATCHKEY_KEY_ENCRYPTION_KEY) rather than the config file.
         */
        encryptionKey: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+/_-]{43}=?$' })),
      },
      { additionalProperties: false, default: {} },
    ),
    audit: Type.Object(
      {
        /** Audit events older than this are deleted by the sweep (every minute). */
        retentionDays: Type.Integer({ minimum: 1, default: 90 }),
        /**
         * Events no account is tied to (failed token logins: anyone can cause them) written per
         * minute; past it they are counted and one `audit_events_suppressed` event says how many.
         */
        anonymousPerMinute: Type.Integer({ minimum: 1, default: 60 }),
        /** The same per user, for events a user's own requests cause (logins, refresh-token use). */
        perUserPerMinute: Type.Integer({ minimum: 1, default: 30 }),
      },
      { additionalProperties: false, default: {} },
    ),
    refresh: Type.Object(
      {
        /**
         * Concurrent refreshes with one token inside this window share one successor.
         * Capped: every second of grace is a second a stolen, already-used token still works.
         */
        graceSeconds: Type.Integer({ minimum: 0, maximum: 60, default: 5 }),
        idleTimeoutSeconds: Seconds(14 * 24 * 3600, 60),
        absoluteLifetimeSeconds: Seconds(30 * 24 * 3600, 60),
      },
      { additionalProperties: false, default: {} },
    ),
    clients: Type.Array(
      Type.Object(
        {
          id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
          /** Stored as given; used for HTTP Basic client authentication at introspection. */
          secret: Type.String({ minLength: 32 }),
          introspect: Type.Boolean({ default: true }),
          revocationFeed: Type.Boolean({ default: false }),
        },
        { additionalProperties: false },
      ),
      { default: [] },
    ),
    revocation: Type.Object(
      {
        /** A heartbeat on the feed this often: subscribers that hear nothing for longer fail closed. */
        heartbeatSeconds: Type.Integer({ minimum: 1, maximum: 60, default: 2 }),
        maxSubscribers: Type.Integer({ minimum: 1, default: 1000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Optional Redis (`redis://` or `rediss://` URL, credentials in it if any; from
     * LATCHKEY_REDIS_URL): rate-limit counters shared by every node. Nothing depends on
     * it for correctness: while it is down each node counts in its own persistent limiter.
     */
    redis: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^rediss?://[^\\s]+$' }),
          /** Prefix of every key latchkey writes (clusters sharing one Redis use different ones). */
          keyPrefix: Type.String({ pattern: '^[A-Za-z0-9:._-]{1,64}$', default: 'latchkey:' }),
          /** A Redis command not answered within this falls back. */
          commandTimeoutMs: Type.Integer({ minimum: 10, maximum: 60000, default: 500 }),
        },
        { additionalProperties: false },
      ),
    ),
    gateway: Type.Object(
      {
        routes: Type.Array(RouteSchema, { default: [] }),
        /** Where unauthenticated: "redirect" routes send a browser: a path here, ASCII (it goes into Location). */
        loginPath: Type.String({ pattern: '^/[\\x21-\\x7e]*$', default: '/signin' }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema> & { issuer: string };
export type RouteConfig = Static<typeof RouteSchema>;

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Flags the CLI understands, already split from argv. */
export interface ConfigOverrides {
  configFile?: string | undefined;
  port?: string | undefined;
  host?: string | undefined;
  dataDir?: string | undefined;
}

export { ENVIRONMENT, type EnvName } from './environment.js';

const ENV = {
  LATCHKEY_PORT: 'port',
  LATCHKEY_HOST: 'host',
  LATCHKEY_DATA_DIR: 'dataDir',
  LATCHKEY_ISSUER: 'issuer',
  LATCHKEY_ADMIN_KEY: 'adminKey',
  LATCHKEY_LOG_LEVEL: 'logLevel',
  LATCHKEY_TRUST_PROXY: 'trustProxy',
} satisfies Partial<Record<EnvName, string>>;

/** Build the config from file, env and flags; throws ConfigError naming the bad key. */
export function loadConfig(
  overrides: ConfigOverrides = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  let raw: Record<string, unknown> = {};
  const file = overrides.configFile ?? env.LATCHKEY_CONFIG;
  if (file) {
    let text: string;
    try {
      text = readFileSync(resolve(file), 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // JSON.parse's message quotes the text around the error, and a config file holds secrets
      throw new ConfigError(`config file ${file} is not valid JSON: ${jsonErrorAt(text)}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(`config file ${file} must hold a JSON object`);
    }
  }
  for (const [name, key] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  // a nested key, so not in ENV; a secret, so env rather than the config file is the usual home
  // a database URL holds a password: the environment is its usual home, and it selects PostgreSQL
  const databaseUrl = env.LATCHKEY_DATABASE_URL;
  if (databaseUrl) {
    const store = raw.store as Record<string, unknown> | undefined;
    raw.store = { ...(store?.kind === 'postgres' ? store : {}), kind: 'postgres', url: databaseUrl };
  }
  const kek = env.LATCHKEY_KEY_ENCRYPTION_KEY;
  if (kek) raw.keys = { ...(raw.keys as Record<string, unknown> | undefined), encryptionKey: kek };
  // nested too, and it may carry a password
  const redisUrl = env.LATCHKEY_REDIS_URL;
  if (redisUrl) raw.redis = { ...(raw.redis as Record<string, unknown> | undefined), url: redisUrl };
  if (overrides.port !== undefined) raw.port = overrides.port;
  if (overrides.host !== undefined) raw.host = overrides.host;
  if (overrides.dataDir !== undefined) raw.dataDir = overrides.dataDir;
  return parseConfig(raw);
}

/** Validate a plain object as config (defaults filled in). */
export function parseConfig(input: unknown): Config {
  const raw = structuredClone(input ?? {}) as Record<string, unknown>;
  // a union's errors would not say which member was meant: check the chosen kind's URL here,
  // without echoing it (it holds the password)
  const store = raw.store as Record<string, unknown> | undefined;
  if (store && typeof store === 'object' && store.kind === 'postgres') {
    if (typeof store.url !== 'string' || !isPostgresUrl(store.url)) {
      throw new ConfigError('invalid config: store.url: must be a postgres:// URL (postgres://user:password@host:port/database)');
    }
    if (store.poolSize === undefined) store.poolSize = 10;
  }
  // env and flags arrive as strings
  if (typeof raw.port === 'string' && /^\d{1,5}$/.test(raw.port)) raw.port = Number(raw.port);
  raw.trustProxy = trustProxyInput(raw.trustProxy);
  const withDefaults = Value.Default(ConfigSchema, raw);
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const key = first.path.replace(/^\//, '').replaceAll('/', '.') || '(root)';
    throw new ConfigError(`invalid config: ${key}: ${describe(first.schema, first.message)}`);
  }
  const cfg = withDefaults as Static<typeof ConfigSchema>;
  const cookieName = cfg.sessions.cookieName;
  if (!cookieName.startsWith(HOST_PREFIX) || cookieName.length === HOST_PREFIX.length) {
    throw new ConfigError(
      `invalid config: sessions.cookieName: must start with ${HOST_PREFIX} followed by a name (the browser then requires Secure, Path=/ and no Domain, so no sibling subdomain can set or shadow the session cookie)`,
    );
  }
  if (cookieName === PRESESSION_COOKIE) {
    throw new ConfigError(`invalid config: sessions.cookieName: ${PRESESSION_COOKIE} is the sign-in form's cookie`);
  }
  if (cfg.sessions.absoluteLifetimeSeconds < cfg.sessions.idleTimeoutSeconds) {
    throw new ConfigError('invalid config: sessions.absoluteLifetimeSeconds: must be >= sessions.idleTimeoutSeconds');
  }
  if (cfg.keys.prePublishSeconds >= cfg.keys.rotationIntervalSeconds) {
    throw new ConfigError('invalid config: keys.prePublishSeconds: must be < keys.rotationIntervalSeconds');
  }
  if (cfg.refresh.absoluteLifetimeSeconds < cfg.refresh.idleTimeoutSeconds) {
    throw new ConfigError('invalid config: refresh.absoluteLifetimeSeconds: must be >= refresh.idleTimeoutSeconds');
  }
  if (cfg.adminKey !== undefined) {
    const why = weakSecret(cfg.adminKey, true);
    if (why) throw new ConfigError(`invalid config: adminKey: ${why}`);
  }
  const clientIds = new Set<string>([cfg.tokens.clientId]);
  for (const [i, c] of cfg.clients.entries()) {
    const why = weakSecret(c.secret, false);
    if (why) throw new ConfigError(`invalid config: clients.${i}.secret: ${why}`);
    if (clientIds.has(c.id)) throw new ConfigError(`invalid config: clients.${i}.id: duplicate client id ${c.id} (tokens.clientId is taken by the first-party client)`);
    clientIds.add(c.id);
  }
  const seen = new Set<string>();
  for (const [i, r] of cfg.gateway.routes.entries()) {
    if (seen.has(r.prefix)) throw new ConfigError(`invalid config: gateway.routes.${i}.prefix: duplicate prefix ${r.prefix}`);
    if (!URL.canParse(r.upstream)) throw new ConfigError(`invalid config: gateway.routes.${i}.upstream: not a URL`);
    if (r.prefix !== '/' && r.prefix.endsWith('/')) throw new ConfigError(`invalid config: gateway.routes.${i}.prefix: must not end with /`);
    if (r.prefix.includes('//')) throw new ConfigError(`invalid config: gateway.routes.${i}.prefix: must not contain //`);
    seen.add(r.prefix);
  }
  if (Array.isArray(cfg.trustProxy)) {
    for (const [i, entry] of cfg.trustProxy.entries()) {
      if (!isProxyAddress(entry)) {
        throw new ConfigError(`invalid config: trustProxy.${i}: ${JSON.stringify(entry)} is not an IP address, a CIDR, loopback, linklocal or uniquelocal`);
      }
    }
  }
  if (cfg.rateLimit.accountBackoffMaxSeconds < cfg.rateLimit.accountBackoffSeconds) {
    throw new ConfigError('invalid config: rateLimit.accountBackoffMaxSeconds: must be >= rateLimit.accountBackoffSeconds');
  }
  const login = cfg.gateway.loginPath;
  if (login.startsWith('//') || login.includes('\\')) {
    throw new ConfigError('invalid config: gateway.loginPath: must be a path on this server (no // or \\)');
  }
  const issuer = cfg.issuer ?? `http://localhost:${cfg.port}`;
  return { ...cfg, issuer } as Config;
}

/** Fewer different characters than this in a secret is a pattern, not randomness (see weakSecret). */
export const SECRET_MIN_DISTINCT = 8;

/**
 * Why a configured secret (admin key, client secret) is unfit, or undefined. Never quotes it.
 *
 * - No whitespace, control, format or separator characters (`\s`, `\p{C}`, `\p{Z}`): 32 spaces
 *   or newlines pass a length check but are no secret, and invisible characters usually mean a
 *   copy-paste accident (a trailing newline from a file, a zero-width space from a web page).
 * - The admin key is sent in an `Authorization` header, which carries ASCII: anything else could
 *   never match, so it must be visible ASCII.
 * - At least SECRET_MIN_DISTINCT different characters. A length check passes `aaaa...` or
 *   `abababab...`; counting distinct characters refuses such patterns and nothing a generator
 *   produces: 32 hex digits from a CSPRNG (`openssl rand -hex 16`) have fewer than 8 different
 *   characters with probability 3.5e-8, base64 (`openssl rand -base64 32`) about 1e-22. It is a
 *   floor against obvious mistakes, not an entropy estimate: `abcdefghijklmnopqrstuvwxyz012345`
 *   passes, so generate secrets, never type them.
 *
 * Each test looks at one code point at a time: no regex runs over the whole value.
 */
export function weakSecret(value: string, asciiOnly: boolean): string | undefined {
  const distinct = new Set<string>();
  for (const ch of value) {
    if (/[\s\p{C}\p{Z}]/u.test(ch)) return 'must not contain whitespace, control or invisible characters';
    if (asciiOnly && (ch < '!' || ch > '~')) return 'must be visible ASCII characters only (it is sent in an Authorization header)';
    distinct.add(ch);
  }
  if (distinct.size < SECRET_MIN_DISTINCT) {
    return `too predictable: fewer than ${SECRET_MIN_DISTINCT} different characters (generate one, e.g. openssl rand -base64 32)`;
  }
  return undefined;
}

/**
 * trustProxy as the schema wants it: env and flags give strings ("1",
 * "10.0.0.0/8, 192.168.0.1"); `true` is refused here with the reason, since it
 * would let every client pick its own address.
 */
function trustProxyInput(v: unknown): unknown {
  if (v === true || v === 'true') {
    throw new ConfigError(
      'invalid config: trustProxy: true would believe the left-most X-Forwarded-For entry, which the client chooses; ' +
        'set the number of proxies in front of latchkey (e.g. 1) or their addresses/CIDRs (e.g. ["10.0.0.0/8"])',
    );
  }
  if (typeof v !== 'string') return v;
  const s = v.trim();
  if (s === 'false' || s === '') return false;
  if (/^[0-9]{1,2}$/.test(s)) return Number(s);
  return s.split(',').map((part) => part.trim());
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** An address, a CIDR with a prefix length that fits the family, or one of proxy-addr's range names. */
function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const slash = entry.indexOf('/');
  const family = isIP(slash < 0 ? entry : entry.slice(0, slash));
  if (family === 0) return false;
  if (slash < 0) return true;
  const prefix = entry.slice(slash + 1);
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * Where a text stops being JSON, and why in general words: line, column and
 * a reason such as "ValueExpected", never the text itself.
 */
export function jsonErrorAt(text: string): string {
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (!first) return 'syntax error';
  let line = 1;
  let column = 1;
  for (let i = 0; i < first.offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return `${printParseErrorCode(first.error)} at line ${line}, column ${column}`;
}

function describe(schema: TSchema, message: string): string {
  if (schema.pattern) return `${message} (pattern ${String(schema.pattern)})`;
  return message;
}
