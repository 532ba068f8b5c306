/** The audit log: append, list newest first (paged by id), prune by age. */
import type { AuditEvent, NewAuditEvent } from '../store.js';
import type { Queryable } from './db.js';

interface AuditRow {
  id: number;
  at: number;
  type: string;
  user_id: string | null;
  session: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
}

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
  const where: string[] = [];
  const params: (string | number)[] = [];
  // only fixed column names go into the text; every value is a parameter
  const add = (sql: string, value: string | number) => {
    params.push(value);
    where.push(`${sql} $${params.length}`);
  };
  if (q.before !== undefined) add('id <', q.before);
  if (q.userId !== undefined) add('user_id =', q.userId);
  if (q.type !== undefined) add('type =', q.type);
  params.push(Math.max(1, Math.min(q.limit, 1000)));
  const r = await db.query<AuditRow>(
    `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
    params,
  );
  return r.rows.map((row) => ({
    id: row.id,
    at: row.at,
    type: row.type,
    userId: row.user_id,
    session: row.session,
    ip: row.ip,
    detail: row.detail,
  }));
}
