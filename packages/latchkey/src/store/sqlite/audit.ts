/** The audit log: append, list newest first (paged by id), prune by age. */
import { auditQuery, toAuditEvent, type AuditRow } from '../rows.js';
import type { AuditEvent, NewAuditEvent } from '../store.js';
import type { Db } from './db.js';

export function appendAuditEvent(db: Db, e: NewAuditEvent): void {
  db.run('INSERT INTO audit_events (at, type, user_id, session, ip, detail) VALUES (?, ?, ?, ?, ?, ?)', e.at, e.type, e.userId, e.session, e.ip, JSON.stringify(e.detail));
}

export function pruneAuditEvents(db: Db, before: number): number {
  return db.run('DELETE FROM audit_events WHERE at < ?', before);
}

export function listAuditEvents(db: Db, q: { userId?: string; type?: string; before?: number; limit: number }): AuditEvent[] {
  const { text, values } = auditQuery(q, () => '?');
  return db.all<AuditRow>(text, ...values).map(toAuditEvent);
}
