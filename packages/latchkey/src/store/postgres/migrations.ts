/**
 * PostgreSQL schema, one entry per version (recorded in latchkey_migrations). Append only:
 * a released migration is never edited. Applied by `latchkey migrate` and at `serve` start,
 * under an advisory lock (db.ts), so nodes starting together apply each version once.
 *
 * Differences from the SQLite schema, and why:
 * - sessions reference users by their public id and keep the device label inline: no rowid
 *   to join through, and no shared `devices` table that concurrent logins on several nodes
 *   would contend for (a label is ~20 bytes).
 * - revocation positions are not a sequence (see revocations.ts): `revocation_position`
 *   holds the last one handed out, and its row lock orders allocation by commit.
 * - detail columns are `json`, not `jsonb`: the text is kept as written.
 */
export const migrations: readonly string[] = [
  // 1: the whole schema of latchkey 0.1 (SQLite migrations 1 to 4)
  `
  CREATE TABLE users (
    id text PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    roles text[] NOT NULL DEFAULT '{}',
    disabled boolean NOT NULL DEFAULT false,
    created_at bigint NOT NULL,
    -- tokens of this user with an earlier iat are refused (roles changed, disabled); the issuer never signs one again
    tokens_not_before bigint NOT NULL DEFAULT 0
  );
  -- keyed by SHA-256 of the secret; the public handle is a prefix of it (range scan on the key)
  CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    last_seen_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    device text NOT NULL,
    ip text NOT NULL,
    -- token clients' sessions idle out on their refresh family's timeout; NULL = the configured one
    idle_timeout integer
  );
  -- the per-user cap evicts the least recently used session of the user
  CREATE INDEX sessions_by_user_last_seen ON sessions(user_id, last_seen_at);
  CREATE INDEX sessions_by_expiry ON sessions(expires_at);
  -- one family per session; ending the session (any path) deletes the family and its tokens
  CREATE TABLE refresh_families (
    session_hash bytea PRIMARY KEY REFERENCES sessions(id_hash) ON DELETE CASCADE,
    -- an old token whose own row is gone still names its family by this, so its replay is detected
    key_hash bytea NOT NULL UNIQUE,
    client_id text NOT NULL,
    created_at bigint NOT NULL
  );
  -- the current token, plus tokens rotated within the grace window (pruned after it)
  CREATE TABLE refresh_tokens (
    hash bytea PRIMARY KEY,
    session_hash bytea NOT NULL REFERENCES refresh_families(session_hash) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    rotated_at bigint,
    successor_hash bytea,
    -- the successor's secret, AES-256-GCM sealed, so concurrent callers get the same one
    successor_sealed bytea
  );
  CREATE INDEX refresh_tokens_by_family ON refresh_tokens(session_hash, rotated_at);
  CREATE INDEX refresh_tokens_rotated ON refresh_tokens(rotated_at) WHERE rotated_at IS NOT NULL;
  CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    alg text NOT NULL,
    public_jwk text NOT NULL,
    created_at bigint NOT NULL,
    activates_at bigint NOT NULL,
    deactivates_at bigint,
    retired_at bigint
  );
  CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at bigint NOT NULL,
    type text NOT NULL,
    user_id text,
    session text,
    ip text,
    detail json NOT NULL DEFAULT '{}'
  );
  CREATE INDEX audit_events_by_user ON audit_events(user_id, id) WHERE user_id IS NOT NULL;
  CREATE INDEX audit_events_by_at ON audit_events(at);
  -- one row per revocation, written in the transaction of the change itself; seq is allocated
  -- from revocation_position in commit order (revocations.ts), never reused after a prune
  CREATE TABLE revocations (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    kind text NOT NULL,
    user_id text,
    sid text,
    kid text,
    tokens_issued_before bigint,
    -- kept until every token it refers to has expired
    until bigint NOT NULL,
    detail json NOT NULL DEFAULT '{}'
  );
  CREATE INDEX revocations_by_until ON revocations(until);
  CREATE TABLE revocation_position (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last bigint NOT NULL
  );
  INSERT INTO revocation_position (singleton, last) VALUES (true, 0);
  `,
  // 2: rate-limit counters (accounts/limiters.ts, rate-limiter-flexible's RateLimiterPostgres with
  // tableCreated): its own CREATE TABLE has key varchar(255), and a key is "<limit>:<network>|<email>"
  // with an email of up to 254 characters, so the table is made here with key text. Expiry is ms
  // since the epoch (the library's clock, Date.now); rows past it are swept by expire.
  `
  CREATE TABLE rate_limits (
    key text PRIMARY KEY,
    points integer NOT NULL DEFAULT 0,
    expire bigint
  );
  CREATE INDEX rate_limits_by_expire ON rate_limits(expire);
  `,
  // 3: secrets and private signing keys move from the data dir into the store (keys/at-rest.ts), so
  // nodes with separate, empty data dirs form one cluster. Always sealed with the key-encryption key
  // here: a node refuses to start on PostgreSQL without one (app.ts).
  `
  CREATE TABLE secrets (
    name text PRIMARY KEY,
    value text NOT NULL
  );
  -- the private half, bound (AAD) to its kid and alg; NULL once the key retired
  ALTER TABLE signing_keys ADD COLUMN private_key text;
  `,
];
