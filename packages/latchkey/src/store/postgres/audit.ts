/** The audit log: append, list newest first (paged by id), prune by age. */
import { auditQuery, toAuditEvent, type AuditRow } from '../rows.js';
import type { AuditEvent, NewAuditEvent } from '../store.js';
import type { Queryable } from './db.js';

export async function appendAuditEvent(db: Queryable, e: NewAuditEvent): Promise<void> {
  await db.query('INSERT INTO audit_events (at, type, user_id, session, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)', [
    e.at,
    e.type,
    e.userId,
    e.session,
    e.ip,
    JSON.stringify(e.detail),
  ]);
}

export async function pruneAuditEvents(db: Queryable, before: number): Promise<number> {
  return (await db.query('DELETE FROM audit_events WHERE at < $1', [before])).rowCount ?? 0;
}

export async function listAuditEvents(
  db: Queryable,
  q: { userId?: string; type?: string; before?: number; limit: number },
): Promise<AuditEvent[]> {
  const { text, values } = auditQuery(q, (n) => `$${n}`);
  return (await db.query<AuditRow>(text, values)).rows.map(toAuditEvent);
}
