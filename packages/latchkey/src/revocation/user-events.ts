/**
 * The details of a user-wide revocation event: a domain rule every store adapter
 * applies in the transaction that ends the sessions (docs/revocation.md).
 */
import { handleOf } from '../sessions/ids.js';
import type { Session } from '../store/store.js';

/**
 * Session ids named by one user-wide revocation event. 200 handles (16 characters each) keep its
 * SET under 6 KiB even signed with RS256-4096, below @latchkey/verify's 8 KiB limit; the default
 * sessions.maxPerUser (50) always fits in one event.
 */
export const SIDS_PER_EVENT = 200;

/**
 * `detail` for each `user` event a change writes: one, naming the sessions it ended (`sids`), so
 * that a token minted for one of them after the cutoff (by a request or refresh grant that read
 * the session just before it ended) is refused too, since the cutoff alone cannot tell such a token
 * from one of a session that lives on. Past SIDS_PER_EVENT sessions, one more per SIDS_PER_EVENT,
 * so every SET stays within what a verifier accepts.
 */
export function userEventDetails(detail: Record<string, unknown>, ended: readonly Session[]): Record<string, unknown>[] {
  const sids = ended.map((s) => handleOf(s.idHash));
  const out: Record<string, unknown>[] = [];
  let i = 0;
  do {
    out.push({ ...detail, sids: sids.slice(i, i + SIDS_PER_EVENT) });
    i += SIDS_PER_EVENT;
  } while (i < sids.length);
  return out;
}
