/** The audit log: append, list newest first (paged by id), prune by age. */
import type { AuditEvent, NewAuditEvent } from '../store.js';
import type { Db } from './db.js';

interface AuditRow {
  id: number;
  at: number;
  type: string;
  user_id: string | null;
  session: string | null;
  ip: string | null;
  detail: string;
}

export function appendAuditEvent(db: Db, e: NewAuditEvent): void {
  db.run('INSERT INTO audit_events (at, type, user_id, session, ip, detail) VALUES (?, ?, ?, ?, ?, ?)', e.at, e.type, e.userId, e.session, e.ip, JSON.stringify(e.detail));
}

export function pruneAuditEvents(db: Db, before: number): number {
  return db.run('DELETE FROM audit_events WHERE at < ?', before);
}

export function listAuditEvents(db: Db, q: { userId?: string; type?: string; before?: number; limit: number }): AuditEvent[] {
  const where: string[] = [];
  const params: (string | number)[] = [];
  // only fixed column names go into the text; every value is a parameter
  if (q.before !== undefined) {
    where.push('id < ?');
    params.push(q.before);
  }
  if (q.userId !== undefined) {
    where.push('user_id = ?');
    params.push(q.userId);
  }
  if (q.type !== undefined) {
    where.push('type = ?');
    params.push(q.type);
  }
  params.push(Math.max(1, Math.min(q.limit, 1000)));
  const rows = db.all<AuditRow>(`SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, ...params);
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    type: r.type,
    userId: r.user_id,
    session: r.session,
    ip: r.ip,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  }));
}
