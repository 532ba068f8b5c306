/**
 * What each change a store makes writes to the revocation feed (docs/revocation.md): the
 * event's kind, whom it names (a session's `sid` is its public handle, sessions/ids.ts) and
 * its detail, and the per-user token cutoff. Domain rules, written once: adapters only store
 * these events, in the transaction of the change, and give them their positions.
 */
import { handleOf } from '../sessions/ids.js';
import type { RevocationKind, Session } from '../store/store.js';
import { userEventDetails } from './user-events.js';

/** One event as a change writes it; the store adds when (at, until) and its position (seq). */
export interface NewRevocation {
  kind: RevocationKind;
  userId?: string;
  sid?: string;
  kid?: string;
  tokensIssuedBefore?: number;
  detail: Record<string, unknown>;
}

/** Why one session ended. */
export type SessionEnd = 'deleted' | 'session_limit' | 'refresh_token_reuse' | 'refresh_token_revoked';

const SESSION_END_DETAIL: Record<SessionEnd, Record<string, unknown>> = {
  // the caller (a user ending one of their sessions, an operator) is not known to the store
  deleted: {},
  session_limit: { initiator: 'policy', reason: 'session_limit' },
  refresh_token_reuse: { initiator: 'policy', reason: 'refresh_token_reuse' },
  refresh_token_revoked: { initiator: 'user', reason: 'refresh_token_revoked' },
};

/** A session ended: tokens carrying its `sid` (its public handle) are refused. */
export function sessionEnded(s: Session, why: SessionEnd): NewRevocation {
  return { kind: 'session', userId: s.userId, sid: handleOf(s.idHash), detail: { ...SESSION_END_DETAIL[why] } };
}

/** The password changed (informational: the user event written with it revokes the tokens). */
export function passwordChanged(userId: string): NewRevocation {
  return { kind: 'credential', userId, detail: { credential_type: 'password', initiator: 'user' } };
}

/** An operator retired a signing key: every token it signed is refused. */
export function keyRetired(kid: string): NewRevocation {
  return { kind: 'key', kid, detail: { initiator: 'admin' } };
}

/** A change that revokes every token of a user issued before a cutoff. */
export type UserChange =
  | { change: 'password_changed'; ended: readonly Session[] }
  | { change: 'disabled'; ended: readonly Session[] }
  | { change: 'signed_out_everywhere'; ended: readonly Session[]; initiator?: 'user' | 'admin' }
  | { change: 'roles_changed'; roles: string[] };

/**
 * The user's next token cutoff (Unix seconds), from the one it has (`previous`, 0 if none) and
 * the time in ms: tokens of the user issued before it are revoked, and the issuer never signs
 * an earlier iat for the user again. The next second, and strictly past the previous cutoff:
 * tokens minted since a change earlier in the same second carry iat = that cutoff, and this
 * change must revoke them too (else a role granted and taken back within a second would leave
 * the granted tokens valid). Many changes in one second date new tokens ahead; verifiers
 * refuse those past their clock tolerance until time catches up (fail closed).
 */
export function nextTokenCutoff(previous: number, nowMs: number): number {
  return Math.max(Math.floor(nowMs / 1000) + 1, previous + 1);
}

/**
 * The events a user-wide change writes with its cutoff. Ending sessions writes `user` events
 * naming them (`detail.sids`, see userEventDetails): one cutoff for the user however many
 * sessions ended, never an event per session (the feed's growth is not the user's to choose).
 * A role change writes one `claims` event with the new roles.
 */
export function userTokensRevoked(userId: string, cutoff: number, c: UserChange): NewRevocation[] {
  if (c.change === 'roles_changed') return [{ kind: 'claims', userId, tokensIssuedBefore: cutoff, detail: { roles: c.roles } }];
  const detail =
    c.change === 'password_changed'
      ? { initiator: 'user', reason: 'password_changed' }
      : c.change === 'disabled'
        ? { initiator: 'admin', reason: 'disabled' }
        : { ...(c.initiator ? { initiator: c.initiator } : {}), reason: 'signed_out_everywhere' };
  return userEventDetails(detail, c.ended).map((d) => ({ kind: 'user', userId, tokensIssuedBefore: cutoff, detail: d }));
}
