/** Accounts: create, read, and the changes that end sessions or move the token cutoff. */
import { LatchkeyError } from '../../errors.js';
import { userEventDetails } from '../../revocation/user-events.js';
import type { NewUser, Session, User, UserWithSecret } from '../store.js';
import type { Db, Queryable, Tx } from './db.js';
import { toUser, type UserRow } from './rows.js';
import { deleteUserSessionsIn } from './sessions.js';

/** SQLSTATE unique_violation. */
export const UNIQUE_VIOLATION = '23505';

export async function createUser(db: Queryable, user: NewUser): Promise<User> {
  const roles = user.roles ?? [];
  try {
    await db.query(
      'INSERT INTO users (id, email, password_hash, roles, disabled, created_at) VALUES ($1, $2, $3, $4, false, $5)',
      [user.id, user.email, user.passwordHash, roles, user.createdAt],
    );
  } catch (err) {
    const e = err as { code?: string; constraint?: string };
    if (e.code === UNIQUE_VIOLATION && e.constraint === 'users_email_key') {
      throw new LatchkeyError('email_taken', 'an account with this email exists');
    }
    throw err;
  }
  return { id: user.id, email: user.email, roles, disabled: false, createdAt: user.createdAt };
}

export async function getUserByEmail(db: Queryable, email: string): Promise<UserWithSecret | undefined> {
  const r = await db.query<UserRow>('SELECT * FROM users WHERE email = $1', [email]);
  return r.rows[0] && toUser(r.rows[0]);
}

export async function getUserById(db: Queryable, id: string): Promise<UserWithSecret | undefined> {
  const r = await db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
  return r.rows[0] && toUser(r.rows[0]);
}

export function changePassword(db: Db, userId: string, passwordHash: string, keepSession?: Buffer): Promise<Session[]> {
  return db.tx(async (tx) => {
    const r = await tx.query('UPDATE users SET password_hash = $1 WHERE id = $2', [passwordHash, userId]);
    if (r.rowCount === 0) throw new LatchkeyError('user_not_found', 'no such user');
    tx.revoke('credential', { userId, detail: { credential_type: 'password', initiator: 'user' } });
    // one cutoff for the user, not an event per session: the kept session is renewed by the caller,
    // and the renewed session's tokens are minted after the cutoff
    const ended = await deleteUserSessionsIn(tx, userId, keepSession);
    await revokeUserTokens(tx, 'user', userId, { initiator: 'user', reason: 'password_changed' }, ended);
    return ended;
  });
}

export function setUserDisabled(db: Db, userId: string, disabled: boolean): Promise<Session[]> {
  return db.tx(async (tx) => {
    const r = await tx.query('UPDATE users SET disabled = $1 WHERE id = $2', [disabled, userId]);
    if (r.rowCount === 0) throw new LatchkeyError('user_not_found', 'no such user');
    if (!disabled) return [];
    // one event for the user as a whole: it also covers tokens of sessions ended earlier
    const ended = await deleteUserSessionsIn(tx, userId);
    await revokeUserTokens(tx, 'user', userId, { initiator: 'admin', reason: 'disabled' }, ended);
    return ended;
  });
}

export function setUserRoles(db: Db, userId: string, roles: string[]): Promise<boolean> {
  return db.tx(async (tx) => {
    const r = await tx.query('UPDATE users SET roles = $1 WHERE id = $2', [roles, userId]);
    if (r.rowCount === 0) return false;
    // tokens carrying the old roles are refused; the issuer signs new ones from the next second
    await revokeUserTokens(tx, 'claims', userId, { roles });
    return true;
  });
}

/**
 * Every token of the user issued before the next second is revoked; the issuer never signs an
 * earlier iat again. Strictly past the previous cutoff (see the SQLite adapter): a change in the
 * same second as the last must revoke the tokens minted since. One UPDATE reads and moves the
 * cutoff under the row lock, so concurrent changes on several nodes each move it further.
 */
export async function revokeUserTokens(
  tx: Tx,
  kind: 'user' | 'claims',
  userId: string,
  detail: Record<string, unknown>,
  ended?: readonly Session[],
): Promise<void> {
  const nextSecond = Math.floor(tx.now() / 1000) + 1;
  const r = await tx.query<{ tokens_not_before: number }>(
    'UPDATE users SET tokens_not_before = GREATEST(tokens_not_before + 1, $1) WHERE id = $2 RETURNING tokens_not_before',
    [nextSecond, userId],
  );
  const cutoff = r.rows[0]?.tokens_not_before;
  if (cutoff === undefined) return;
  // a user-wide end of sessions names them (`sids`): see userEventDetails
  if (ended === undefined) tx.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail });
  else for (const d of userEventDetails(detail, ended)) tx.revoke(kind, { userId, tokensIssuedBefore: cutoff, detail: d });
}

/** Lock the user's row for the rest of the transaction (the first lock, see Db.tx); false if there is no such user. */
export async function lockUser(tx: Tx, userId: string): Promise<boolean> {
  const r = await tx.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]);
  return r.rowCount === 1;
}
