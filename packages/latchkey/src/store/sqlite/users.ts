/** Accounts: create, read, and the changes that end sessions or move the token cutoff. */
import { LatchkeyError } from '../../errors.js';
import { userEventDetails } from '../../revocation/user-events.js';
import type { NewUser, Session, User, UserWithSecret } from '../store.js';
import type { Db } from './db.js';
import { toUser, type UserRow } from './rows.js';
import { deleteUserSessionsIn } from './sessions.js';

export function createUser(db: Db, user: NewUser): User {
  try {
    db.run(
      'INSERT INTO users (id, email, password_hash, roles, disabled, created_at) VALUES (?, ?, ?, ?, 0, ?)',
      user.id,
      user.email,
      user.passwordHash,
      JSON.stringify(user.roles ?? []),
      user.createdAt,
    );
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
      throw new LatchkeyError('email_taken', 'an account with this email exists');
    }
    throw err;
  }
  return { id: user.id, email: user.email, roles: user.roles ?? [], disabled: false, createdAt: user.createdAt };
}

export function getUserByEmail(db: Db, email: string): UserWithSecret | undefined {
  const row = db.get<UserRow>('SELECT * FROM users WHERE email = ?', email);
  return row && toUser(row);
}

export function getUserById(db: Db, id: string): UserWithSecret | undefined {
  const row = db.get<UserRow>('SELECT * FROM users WHERE id = ?', id);
  return row && toUser(row);
}

export function changePassword(db: Db, userId: string, passwordHash: string, keepSession?: Buffer): Session[] {
  return db.tx(() => {
    if (db.run('UPDATE users SET password_hash = ? WHERE id = ?', passwordHash, userId) === 0) {
      throw new LatchkeyError('user_not_found', 'no such user');
    }
    db.revoke('credential', { userId, detail: { credential_type: 'password', initiator: 'user' } });
    // one cutoff for the user, not an event per session: the kept session is renewed by the caller,
    // and the renewed session's tokens are minted after the cutoff
    const ended = deleteUserSessionsIn(db, userId, keepSession);
    revokeUserTokens(db, 'user', userId, { initiator: 'user', reason: 'password_changed' }, ended);
    return ended;
  });
}

export function setUserDisabled(db: Db, userId: string, disabled: boolean): Session[] {
  return db.tx(() => {
    if (db.run('UPDATE users SET disabled = ? WHERE id = ?', disabled ? 1 : 0, userId) === 0) {
      throw new LatchkeyError('user_not_found', 'no such user');
    }
    if (!disabled) return [];
    // one event for the user as a whole: it also covers tokens of sessions ended earlier
    const ended = deleteUserSessionsIn(db, userId);
    revokeUserTokens(db, 'user', userId, { initiator: 'admin', reason: 'disabled' }, ended);
    return ended;
  });
}

export function setUserRoles(db: Db, userId: string, roles: string[]): boolean {
  return db.tx(() => {
    if (db.run('UPDATE users SET roles = ? WHERE id = ?', JSON.stringify(roles), userId) === 0) return false;
    // tokens carrying the old roles are refused; the issuer signs new ones from the next second
    revokeUserTokens(db, 'claims', userId, { roles });
    return true;
  });
}

/**
 * Every token of the user issued before the next second is revoked; the issuer never signs an earlier iat again.
 * `ended`: the sessions this change ends, named in the event (`detail.sids`) so that a token minted for one of
 * them after the cutoff (by a request or refresh grant that read the session just before it ended) is refused
 * too: the cutoff alone cannot tell such a token from one of a session that lives on (docs/revocation.md).
 */
export function revokeUserTokens(
  db: Db,
  kind: 'user' | 'claims',
  userId: string,
  detail: Record<string, unknown>,
  ended?: readonly Session[],
): void {
  // strictly past the previous cutoff: tokens minted since a change earlier in the same second carry
  // iat = that cutoff, and this change must revoke them too (else a role granted and taken back within
  // a second would leave the granted tokens valid). Many changes in one second date new tokens ahead;
  // verifiers refuse those past their clock tolerance until time catches up (fail closed).
  const previous = db.get<UserRow>('SELECT * FROM users WHERE id = ?', userId)?.tokens_not_before ?? 0;
  const cutoff = Math.max(Math.floor(db.now() / 1000) + 1, previous + 1);
  db.run('UPDATE users SET tokens_not_before = MAX(tokens_not_before, ?) WHERE id = ?', cutoff, userId);
  if (ended === undefined) {
    db.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail });
    return;
  }
  for (const d of userEventDetails(detail, ended)) db.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail: d });
}
