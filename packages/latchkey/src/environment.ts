/** The environment variables latchkey reads, apart from config.ts so that `--help` loads nothing else. */

/**
 * Every environment variable loadConfig (config.ts) reads, with what it sets: the CLI's help prints
 * these, and test/cli.test.ts checks that they are every LATCHKEY_ variable config.ts reads.
 */
export const ENVIRONMENT = {
  LATCHKEY_CONFIG: 'JSON config file (as --config)',
  LATCHKEY_PORT: 'listen port (as --port), default 8080',
  LATCHKEY_HOST: 'listen address (as --host), default 127.0.0.1',
  LATCHKEY_DATA_DIR: 'the data dir: the SQLite store and rate-limit counters (as --data-dir), default ./.latchkey; unused on PostgreSQL',
  LATCHKEY_DATABASE_URL: 'postgres://user:password@host:port/db: keep the store in PostgreSQL instead of the data dir\'s SQLite file',
  LATCHKEY_ISSUER: 'public base URL of the server (token iss, CSRF origin), default http://localhost:<port>',
  LATCHKEY_ADMIN_KEY: 'bearer key of the admin API (/v1/admin/*), at least 32 characters; the API is off without it',
  LATCHKEY_KEY_ENCRYPTION_KEY: '32 random bytes, base64 (openssl rand -base64 32): encrypts the private signing keys and secrets in the store; required on PostgreSQL',
  LATCHKEY_REDIS_URL: 'redis:// or rediss:// URL: rate-limit counters shared by every node',
  LATCHKEY_LOG_LEVEL: 'fatal, error, warn, info (default), debug, trace or silent',
  LATCHKEY_TRUST_PROXY: 'proxies to believe about X-Forwarded-For: a count, or addresses/CIDRs, comma-separated',
} as const satisfies Record<string, string>;

export type EnvName = keyof typeof ENVIRONMENT;
