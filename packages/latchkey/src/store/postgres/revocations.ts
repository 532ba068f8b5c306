/**
 * The revocation feed's rows. Positions must be gap-free in commit order: a subscriber that has
 * read up to position N asks for `seq > N` and must never find a smaller position committed
 * later. A PostgreSQL sequence does not give that: nextval() is handed out at call time, not at
 * commit, so a transaction that took 41 can commit after one that took 42, and a reader that
 * has seen 42 never gets 41.
 *
 * So positions come from one counter row, `revocation_position`, updated as the very last
 * statement before COMMIT (Db.tx appends a transaction's events at its end). The UPDATE takes
 * the row's lock and holds it until the transaction ends, so a second writer's UPDATE waits,
 * and PostgreSQL releases row locks only after the commit is visible to new snapshots: the
 * next writer's position is allocated, and so becomes visible, strictly after the previous
 * one. Allocation order is commit order, on one node or many (they share the row). A
 * transaction that rolls back releases the lock with its increment undone, leaving no gap.
 *
 * The cost is that revocation-writing transactions commit one at a time, for the span of one
 * UPDATE, the INSERTs and the COMMIT. They are rare (logouts, evictions, admin actions), and
 * the lock is taken after every other lock of the transaction (nothing waits on it while
 * holding it), so it adds no deadlock. The counter also remembers the highest position handed
 * out after its events are pruned (lastRevocationSeq).
 */
import type pg from 'pg';
import { toRevocation, type PendingRevocation, type RevocationRow } from '../rows.js';
import type { RevocationEvent } from '../store.js';
import type { Queryable } from './db.js';

export async function appendRevocations(client: pg.PoolClient, events: PendingRevocation[]): Promise<void> {
  const r = await client.query<{ last: number }>(
    'UPDATE revocation_position SET last = last + $1 RETURNING last',
    [events.length],
  );
  let seq = r.rows[0]!.last - events.length;
  for (const e of events) {
    await client.query(
      `INSERT INTO revocations (seq, at, kind, user_id, sid, kid, tokens_issued_before, until, detail)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [++seq, e.at, e.kind, e.userId, e.sid, e.kid, e.tokensIssuedBefore, e.until, e.detail],
    );
  }
  // delivered to every LISTENing node when (and only if) this transaction commits (listen.ts);
  // sent under the counter row's lock, so notifications queue in position order too
  await client.query('SELECT pg_notify($1, $2)', [REVOCATION_CHANNEL, String(seq)]);
}

/** The LISTEN/NOTIFY channel a revocation-writing commit notifies (payload: its last position). */
export const REVOCATION_CHANNEL = 'latchkey_revocations';

export async function listRevocations(db: Queryable, afterSeq: number, limit: number, nowSeconds: number): Promise<RevocationEvent[]> {
  const r = await db.query<RevocationRow>(
    'SELECT * FROM revocations WHERE seq > $1 AND until > $2 ORDER BY seq LIMIT $3',
    [afterSeq, nowSeconds, Math.max(1, limit)],
  );
  return r.rows.map(toRevocation);
}

export async function lastRevocationSeq(db: Queryable): Promise<number> {
  const r = await db.query<{ last: number }>('SELECT last FROM revocation_position');
  return r.rows[0]?.last ?? 0;
}

export async function pruneRevocations(db: Queryable, nowSeconds: number): Promise<number> {
  return (await db.query('DELETE FROM revocations WHERE until <= $1', [nowSeconds])).rowCount ?? 0;
}
