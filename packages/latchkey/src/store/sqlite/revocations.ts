/**
 * The revocation feed's rows. Positions come from AUTOINCREMENT under SQLite's single writer:
 * a transaction's events get their positions when it writes them, and no other writer commits
 * in between, so positions become visible in order and a pruned one is never handed out again.
 * Events are appended by the transaction of the change itself (Db.revoke).
 */
import { toRevocation, type RevocationRow } from '../rows.js';
import type { RevocationEvent } from '../store.js';
import type { Db } from './db.js';

export function listRevocations(db: Db, afterSeq: number, limit: number, nowSeconds: number): RevocationEvent[] {
  return db
    .all<RevocationRow>('SELECT * FROM revocations WHERE seq > ? AND until > ? ORDER BY seq LIMIT ?', afterSeq, nowSeconds, Math.max(1, limit))
    .map(toRevocation);
}

export function lastRevocationSeq(db: Db): number {
  return db.get<{ seq: number }>(`SELECT seq FROM sqlite_sequence WHERE name = 'revocations'`)?.seq ?? 0;
}

export function pruneRevocations(db: Db, nowSeconds: number): number {
  return db.run('DELETE FROM revocations WHERE until <= ?', nowSeconds);
}
