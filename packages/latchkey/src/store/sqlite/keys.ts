/**
 * Signing keys: public halves, schedule, and private halves (stored as the caller sealed them,
 * never read with the records: store/sqlite/secrets.ts reads them). Each change is one write
 * transaction, so two processes scheduling the same rotation, or starting together, add one key
 * (the second sees the first's with the guard), and "one signer at a time" is computed on a
 * stable table.
 */
import { keyRetired } from '../../revocation/events.js';
import type { AddKeyGuards, NewSigningKey, SigningKeyRecord } from '../store.js';
import { KEY_COLS, toKey, type KeyRow } from '../rows.js';
import type { Db } from './db.js';

const oneKey = (db: Db, kid: string) => db.get<KeyRow>(`SELECT ${KEY_COLS} FROM signing_keys WHERE kid = ?`, kid);

export function listSigningKeys(db: Db): SigningKeyRecord[] {
  // every node reads this every second: the public columns only, never the private halves
  return db.all<KeyRow>(`SELECT ${KEY_COLS} FROM signing_keys ORDER BY activates_at, kid`).map(toKey);
}

export function addSigningKey(db: Db, key: NewSigningKey, opts: AddKeyGuards = {}): boolean {
  return db.tx(() => {
    if (
      opts.unlessScheduledAfter !== undefined &&
      db.get('SELECT kid FROM signing_keys WHERE retired_at IS NULL AND activates_at > ? LIMIT 1', opts.unlessScheduledAfter)
    ) {
      return false;
    }
    if (
      opts.unlessSigningFrom !== undefined &&
      db.get(
        'SELECT kid FROM signing_keys WHERE retired_at IS NULL AND alg = ? AND (deactivates_at IS NULL OR deactivates_at > ?) LIMIT 1',
        key.alg,
        opts.unlessSigningFrom,
      )
    ) {
      return false;
    }
    db.run(
      `INSERT INTO signing_keys (kid, alg, public_jwk, created_at, activates_at, deactivates_at, retired_at, private_key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      key.kid,
      key.alg,
      key.publicJwk,
      key.createdAt,
      key.activatesAt,
      key.deactivatesAt,
      key.retiredAt,
      key.privateKey,
    );
    schedule(db, key.kid, key.activatesAt);
    return true;
  });
}

export function promoteSigningKey(db: Db, kid: string, at: number): boolean {
  return db.tx(() => {
    const row = oneKey(db, kid);
    if (!row || row.retired_at !== null) return false;
    schedule(db, kid, at);
    return true;
  });
}

/** Key `kid` signs from `at` until the next scheduled key; every other key signing at `at` stops then. */
function schedule(db: Db, kid: string, at: number): void {
  // one signer at a time: if a later key is already scheduled, this one hands over to it
  const next =
    db.get<{ at: number | null }>('SELECT MIN(activates_at) AS at FROM signing_keys WHERE retired_at IS NULL AND activates_at > ? AND kid != ?', at, kid)
      ?.at ?? null;
  db.run('UPDATE signing_keys SET activates_at = ?, deactivates_at = ? WHERE kid = ?', at, next, kid);
  db.run(
    `UPDATE signing_keys SET deactivates_at = @at WHERE kid != @kid AND retired_at IS NULL
     AND activates_at < @at AND (deactivates_at IS NULL OR deactivates_at > @at)`,
    { at, kid },
  );
}

export function retireSigningKey(db: Db, kid: string, at: number): SigningKeyRecord | undefined {
  return db.tx(() => {
    const row = oneKey(db, kid);
    if (!row) return undefined;
    // the private half goes with the retirement: a retired key must never sign again
    if (db.run('UPDATE signing_keys SET retired_at = ?, private_key = NULL WHERE kid = ? AND retired_at IS NULL', at, kid) === 1) {
      db.revoke(keyRetired(kid));
    }
    return toKey(row);
  });
}
