/**
 * Signing keys' public halves and schedule. Every change runs under one transaction-level
 * advisory lock: two nodes scheduling the same rotation add one key (the second sees the
 * first's with unlessScheduledAfter), and "one signer at a time" is computed on a stable table.
 */
import { keyRetired } from '../../revocation/events.js';
import type { SigningKeyRecord } from '../store.js';
import { toKey, type KeyRow } from '../rows.js';
import { LOCK_KEYS, LOCK_SPACE, type Db, type Queryable, type Tx } from './db.js';


function keysTx<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.tx(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, LOCK_KEYS]);
    return fn(tx);
  });
}

export async function listSigningKeys(db: Queryable): Promise<SigningKeyRecord[]> {
  return (await db.query<KeyRow>('SELECT * FROM signing_keys ORDER BY activates_at, kid')).rows.map(toKey);
}

export function addSigningKey(db: Db, key: SigningKeyRecord, opts: { unlessScheduledAfter?: number } = {}): Promise<boolean> {
  return keysTx(db, async (tx) => {
    if (opts.unlessScheduledAfter !== undefined) {
      const later = await tx.query('SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND activates_at > $1 LIMIT 1', [opts.unlessScheduledAfter]);
      if (later.rowCount) return false;
    }
    await tx.query(
      `INSERT INTO signing_keys (kid, alg, public_jwk, created_at, activates_at, deactivates_at, retired_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [key.kid, key.alg, key.publicJwk, key.createdAt, key.activatesAt, key.deactivatesAt, key.retiredAt],
    );
    await schedule(tx, key.kid, key.activatesAt);
    return true;
  });
}

export function promoteSigningKey(db: Db, kid: string, at: number): Promise<boolean> {
  return keysTx(db, async (tx) => {
    const row = (await tx.query<KeyRow>('SELECT * FROM signing_keys WHERE kid = $1', [kid])).rows[0];
    if (!row || row.retired_at !== null) return false;
    await schedule(tx, kid, at);
    return true;
  });
}

/** Key `kid` signs from `at` until the next scheduled key; every other key signing at `at` stops then. */
async function schedule(tx: Tx, kid: string, at: number): Promise<void> {
  // one signer at a time: if a later key is already scheduled, this one hands over to it
  const next = await tx.query<{ at: number | null }>(
    'SELECT MIN(activates_at) AS at FROM signing_keys WHERE retired_at IS NULL AND activates_at > $1 AND kid <> $2',
    [at, kid],
  );
  await tx.query('UPDATE signing_keys SET activates_at = $1, deactivates_at = $2 WHERE kid = $3', [at, next.rows[0]?.at ?? null, kid]);
  await tx.query(
    `UPDATE signing_keys SET deactivates_at = $1 WHERE kid <> $2 AND retired_at IS NULL
     AND activates_at < $1 AND (deactivates_at IS NULL OR deactivates_at > $1)`,
    [at, kid],
  );
}

export function retireSigningKey(db: Db, kid: string, at: number): Promise<SigningKeyRecord | undefined> {
  return keysTx(db, async (tx) => {
    const row = (await tx.query<KeyRow>('SELECT * FROM signing_keys WHERE kid = $1', [kid])).rows[0];
    if (!row) return undefined;
    const r = await tx.query('UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL', [at, kid]);
    if (r.rowCount === 1) tx.revoke(keyRetired(kid));
    return toKey(row);
  });
}

