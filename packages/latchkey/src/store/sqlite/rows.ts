/**
 * SQLite's session columns: device labels live in their own table and users are joined by rowid.
 * The row shapes and their mapping are ../rows.ts.
 */
export const SESSION_COLS = `s.id_hash, u.id AS user_id, s.created_at, s.last_seen_at, s.expires_at, d.label AS device, s.ip, s.idle_timeout`;
export const SESSION_FROM = `sessions s JOIN users u ON u.rowid = s.user_rowid JOIN devices d ON d.id = s.device_id`;
