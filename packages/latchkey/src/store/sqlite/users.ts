/** Accounts: create, read, and the changes that end sessions or move the token cutoff. */
import { LatchkeyError } from '../../errors.js';
import { nextTokenCutoff, passwordChanged, userTokensRevoked, type UserChange } from '../../revocation/events.js';
import { toUser, type UserRow } from '../rows.js';
import type { NewUser, Session, User, UserWithSecret } from '../store.js';
import type { Db } from './db.js';
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
    db.revoke(passwordChanged(userId));
    // one cutoff for the user, not an event per session: the kept session is renewed by the caller,
    // and the renewed session's tokens are minted after the cutoff
    const ended = deleteUserSessionsIn(db, userId, keepSession);
    revokeUserTokens(db, userId, { change: 'password_changed', ended });
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
    revokeUserTokens(db, userId, { change: 'disabled', ended });
    return ended;
  });
}

export function setUserRoles(db: Db, userId: string, roles: string[]): boolean {
  return db.tx(() => {
    if (db.run('UPDATE users SET roles = ? WHERE id = ?', JSON.stringify(roles), userId) === 0) return false;
    // tokens carrying the old roles are refused; the issuer signs new ones from the next second
    revokeUserTokens(db, userId, { change: 'roles_changed', roles });
    return true;
  });
}

/**
 * Move the user's token cutoff (revocation/events.ts nextTokenCutoff) and write the change's
 * events, inside the caller's transaction: under SQLite's write lock, the cutoff read is the
 * one moved.
 */
export function revokeUserTokens(db: Db, userId: string, change: UserChange): void {
  const previous = db.get<{ tokens_not_before: number }>('SELECT tokens_not_before FROM users WHERE id = ?', userId)?.tokens_not_before;
  if (previous === undefined) return;
  const cutoff = nextTokenCutoff(previous, db.now());
  db.run('UPDATE users SET tokens_not_before = ? WHERE id = ?', cutoff, userId);
  db.revoke(...userTokensRevoked(userId, cutoff, change));
}
