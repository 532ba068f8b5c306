/** Accounts: create, read, and the changes that end sessions or move the token cutoff. */
import { LatchkeyError } from '../../errors.js';
import { nextTokenCutoff, passwordChanged, userTokensRevoked, type UserChange } from '../../revocation/events.js';
import { toUser, type UserRow } from '../rows.js';
import type { NewUser, Session, User, UserWithSecret } from '../store.js';
import type { Db, Queryable, Tx } from './db.js';
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
    const r = await tx.query<CutoffRow>('UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING tokens_not_before', [passwordHash, userId]);
    if (!r.rows[0]) throw new LatchkeyError('user_not_found', 'no such user');
    tx.revoke(passwordChanged(userId));
    // one cutoff for the user, not an event per session: the kept session is renewed by the caller,
    // and the renewed session's tokens are minted after the cutoff
    const ended = await deleteUserSessionsIn(tx, userId, keepSession);
    await revokeUserTokens(tx, userId, r.rows[0].tokens_not_before, { change: 'password_changed', ended });
    return ended;
  });
}

export function setUserDisabled(db: Db, userId: string, disabled: boolean): Promise<Session[]> {
  return db.tx(async (tx) => {
    const r = await tx.query<CutoffRow>('UPDATE users SET disabled = $1 WHERE id = $2 RETURNING tokens_not_before', [disabled, userId]);
    if (!r.rows[0]) throw new LatchkeyError('user_not_found', 'no such user');
    if (!disabled) return [];
    // one event for the user as a whole: it also covers tokens of sessions ended earlier
    const ended = await deleteUserSessionsIn(tx, userId);
    await revokeUserTokens(tx, userId, r.rows[0].tokens_not_before, { change: 'disabled', ended });
    return ended;
  });
}

export function setUserRoles(db: Db, userId: string, roles: string[]): Promise<boolean> {
  return db.tx(async (tx) => {
    const r = await tx.query<CutoffRow>('UPDATE users SET roles = $1 WHERE id = $2 RETURNING tokens_not_before', [roles, userId]);
    if (!r.rows[0]) return false;
    // tokens carrying the old roles are refused; the issuer signs new ones from the next second
    await revokeUserTokens(tx, userId, r.rows[0].tokens_not_before, { change: 'roles_changed', roles });
    return true;
  });
}

/** The user's token cutoff as the statement that locked the row read it. */
interface CutoffRow {
  tokens_not_before: number;
}

/**
 * Move the user's token cutoff from `previous` (revocation/events.ts nextTokenCutoff) and write
 * the change's events. `previous` was read by the statement that locked the user's row (the
 * change's UPDATE, or lockUser) in this transaction, so concurrent changes on several nodes
 * read and move the cutoff one after another.
 */
export async function revokeUserTokens(tx: Tx, userId: string, previous: number, change: UserChange): Promise<void> {
  const cutoff = nextTokenCutoff(previous, tx.now());
  await tx.query('UPDATE users SET tokens_not_before = $1 WHERE id = $2', [cutoff, userId]);
  tx.revoke(...userTokensRevoked(userId, cutoff, change));
}

/**
 * Lock the user's row for the rest of the transaction (the first lock, see Db.tx). Returns the
 * user's token cutoff (see revokeUserTokens), undefined if there is no such user.
 */
export async function lockUser(tx: Tx, userId: string): Promise<number | undefined> {
  const r = await tx.query<CutoffRow>('SELECT tokens_not_before FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]);
  return r.rows[0]?.tokens_not_before;
}
