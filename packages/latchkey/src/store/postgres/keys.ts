/**
 * Signing keys: public halves, schedule, and private halves (stored as the caller sealed them,
 * never read with the records). Every schedule change runs under one transaction-level
 * advisory lock: two nodes scheduling the same rotation, or starting together, add one key (the
 * second sees the first's with the guard), and "one signer at a time" is computed on a stable table.
 */
import { keyRetired } from '../../revocation/events.js';
import type { AddKeyGuards, NewSigningKey, SigningKeyRecord } from '../store.js';
import { KEY_COLS, toKey, type KeyRow } from '../rows.js';
import { LOCK_KEYS, LOCK_SPACE, type Db, type Queryable, type Tx } from './db.js';

function keysTx<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.tx(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, LOCK_KEYS]);
    return fn(tx);
  });
}

export async function listSigningKeys(db: Queryable): Promise<SigningKeyRecord[]> {
  // every node reads this every second: the public columns only, never the private halves
  return (await db.query<KeyRow>(`SELECT ${KEY_COLS} FROM signing_keys ORDER BY activates_at, kid`)).rows.map(toKey);
}

export function addSigningKey(db: Db, key: NewSigningKey, opts: AddKeyGuards = {}): Promise<boolean> {
  return keysTx(db, async (tx) => {
    if (opts.unlessScheduledAfter !== undefined) {
      const later = await tx.query('SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND activates_at > $1 LIMIT 1', [opts.unlessScheduledAfter]);
      if (later.rowCount) return false;
    }
    if (opts.unlessSigningFrom !== undefined) {
      const signing = await tx.query(
        'SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND alg = $1 AND (deactivates_at IS NULL OR deactivates_at > $2) LIMIT 1',
        [key.alg, opts.unlessSigningFrom],
      );
      if (signing.rowCount) return false;
    }
    await tx.query(
      `INSERT INTO signing_keys (kid, alg, public_jwk, created_at, activates_at, deactivates_at, retired_at, private_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [key.kid, key.alg, key.publicJwk, key.createdAt, key.activatesAt, key.deactivatesAt, key.retiredAt, key.privateKey],
    );
    await schedule(tx, key.kid, key.activatesAt);
    return true;
  });
}

export function promoteSigningKey(db: Db, kid: string, at: number): Promise<boolean> {
  return keysTx(db, async (tx) => {
    const row = (await tx.query<KeyRow>(`SELECT ${KEY_COLS} FROM signing_keys WHERE kid = $1`, [kid])).rows[0];
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
    const row = (await tx.query<KeyRow>(`SELECT ${KEY_COLS} FROM signing_keys WHERE kid = $1`, [kid])).rows[0];
    if (!row) return undefined;
    // the private half goes with the retirement: a retired key must never sign again, on any node
    const r = await tx.query('UPDATE signing_keys SET retired_at = $1, private_key = NULL WHERE kid = $2 AND retired_at IS NULL', [at, kid]);
    if (r.rowCount === 1) tx.revoke(keyRetired(kid));
    return toKey(row);
  });
}

export async function getPrivateKey(db: Queryable, kid: string): Promise<string | undefined> {
  const r = await db.query<{ private_key: string | null }>('SELECT private_key FROM signing_keys WHERE kid = $1 AND retired_at IS NULL', [kid]);
  return r.rows[0]?.private_key ?? undefined;
}

export async function forgetPrivateKeys(db: Queryable, kids: readonly string[]): Promise<number> {
  if (!kids.length) return 0;
  const r = await db.query('UPDATE signing_keys SET private_key = NULL WHERE kid = ANY($1::text[]) AND private_key IS NOT NULL', [kids]);
  return r.rowCount ?? 0;
}
