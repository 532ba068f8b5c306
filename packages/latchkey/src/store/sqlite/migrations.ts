/**
 * SQLite schema, one entry per version (PRAGMA user_version). Append only:
 * a released migration is never edited.
 */
export const migrations: readonly string[] = [
  // 1: accounts and browser sessions
  `
  CREATE TABLE users (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  -- device labels repeat across sessions ("Chrome on macOS"): store each once
  CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE
  );
  -- WITHOUT ROWID: the 32-byte hash is the key, no second copy in a rowid index
  CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    user_rowid INTEGER NOT NULL REFERENCES users(rowid) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    ip TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX sessions_by_user ON sessions(user_rowid);
  CREATE INDEX sessions_by_expiry ON sessions(expires_at);
  `,
  // 2: token clients (refresh families), signing keys, audit log
  `
  -- token clients' sessions idle out on their refresh family's timeout, not the browser's; NULL = configured
  ALTER TABLE sessions ADD COLUMN idle_timeout INTEGER;
  -- one family per session; ending the session (any path) deletes the family and its tokens
  CREATE TABLE refresh_families (
    session_hash BLOB PRIMARY KEY REFERENCES sessions(id_hash) ON DELETE CASCADE,
    -- SHA-256 of the family key every token of the family starts with: an old token
    -- whose own row is gone still names its family, so its replay is detected
    key_hash BLOB NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- the current token, plus tokens rotated within the grace window (pruned after it)
  CREATE TABLE refresh_tokens (
    hash BLOB PRIMARY KEY,
    session_hash BLOB NOT NULL REFERENCES refresh_families(session_hash) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER,
    successor_hash BLOB,
    -- the successor's secret, AES-256-GCM sealed, so concurrent callers get the same one
    successor_sealed BLOB
  ) WITHOUT ROWID;
  -- (family, rotated_at): the per-rotation prune is a range scan, not a walk over the family
  CREATE INDEX refresh_tokens_by_family ON refresh_tokens(session_hash, rotated_at);
  CREATE INDEX refresh_tokens_rotated ON refresh_tokens(rotated_at) WHERE rotated_at IS NOT NULL;
  -- key state is shared with the CLI through this table; private keys live in files
  CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    deactivates_at INTEGER,
    retired_at INTEGER
  );
  CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT,
    session TEXT,
    ip TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX audit_events_by_user ON audit_events(user_id, id) WHERE user_id IS NOT NULL;
  `,
  // 3: the revocation feed (docs/revocation.md)
  `
  -- tokens of this user with an earlier iat are refused (roles changed, disabled); the issuer never signs one again
  ALTER TABLE users ADD COLUMN tokens_not_before INTEGER NOT NULL DEFAULT 0;
  -- one row per revocation, written in the transaction of the change itself; AUTOINCREMENT: a pruned
  -- seq is never handed out again, so a subscriber's position stays meaningful
  CREATE TABLE revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    sid TEXT,
    kid TEXT,
    tokens_issued_before INTEGER,
    -- kept until every token it refers to has expired
    until INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX revocations_by_until ON revocations(until);
  `,
  // 4: resource bounds (audit retention; sessions per user)
  `
  -- the retention sweep deletes by age
  CREATE INDEX audit_events_by_at ON audit_events(at);
  -- the per-user cap evicts the least recently used session of the user
  CREATE INDEX sessions_by_user_last_seen ON sessions(user_rowid, last_seen_at);
  DROP INDEX sessions_by_user;
  `,
  // 5: secrets and private signing keys move from the data dir into the store (keys/at-rest.ts)
  `
  -- csrf.key, refresh.key, device.key: sealed with the key-encryption key (or plaintext without one)
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  -- the private half, sealed like the secrets, bound (AAD) to its kid and alg; NULL once the key retired
  ALTER TABLE signing_keys ADD COLUMN private_key TEXT;
  `,
];
