/**
 * Sign-up, login and password change. Login answers unknown email and wrong
 * password identically (status, body, and time: the unknown path verifies
 * against a dummy hash) and throttles failures per account and per IP.
 * Password change throttles wrong current passwords per user (a stolen
 * session must not become a password-guessing oracle), and sign-up throttles
 * attempts per IP (mass account creation, and probing which emails exist).
 *
 * Every attempt takes its point before the password is checked, and a right
 * password gives it back: checking the count first and adding a failure
 * after the (slow) hash would let concurrent guesses all pass the check.
 */
import { randomBytes } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { AuditLog } from '../audit/log.js';
import { LatchkeyError } from '../errors.js';
import type { Store, User } from '../store/store.js';
import { legacyEmailForm, normaliseEmail } from './email.js';
import { checkPasswordPolicy, normalisePassword, type PasswordHasher, type PasswordPolicy } from './passwords.js';

export interface LoginLimits {
  /** Failed logins per (IP, email), and wrong current passwords per user at password change. */
  loginPerAccount: number;
  loginPerIp: number;
  /** Sign-up attempts per IP, successful or not. */
  signupPerIp: number;
  windowSeconds: number;
}

/** `u_` + 128 random bits: the public user id (`sub`). */
const newUserId = (): string => `u_${randomBytes(16).toString('base64url')}`;

export class AccountService {
  private readonly perAccount: RateLimiterMemory;
  private readonly perIp: RateLimiterMemory;
  private readonly perUserPassword: RateLimiterMemory;
  private readonly signupsPerIp: RateLimiterMemory;

  constructor(
    private readonly store: Store,
    private readonly hasher: PasswordHasher,
    private readonly policy: PasswordPolicy,
    limits: LoginLimits,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {
    this.perAccount = new RateLimiterMemory({ points: limits.loginPerAccount, duration: limits.windowSeconds });
    this.perIp = new RateLimiterMemory({ points: limits.loginPerIp, duration: limits.windowSeconds });
    this.perUserPassword = new RateLimiterMemory({ points: limits.loginPerAccount, duration: limits.windowSeconds });
    this.signupsPerIp = new RateLimiterMemory({ points: limits.signupPerIp, duration: limits.windowSeconds });
  }

  /** A new user; LatchkeyError rate_limited past `signupPerIp` attempts from `ip` in the window. */
  async signup(emailInput: string, password: string, ip: string): Promise<User> {
    // every attempt counts, before any check: failures probe the policy and which emails are taken
    await take(this.signupsPerIp, ip, 'too many sign-ups from this address; try again later');
    const email = normaliseEmail(emailInput);
    await checkPasswordPolicy(password, this.policy, email);
    const passwordHash = await this.hasher.hash(normalisePassword(password));
    return this.store.createUser({ id: newUserId(), email, passwordHash, createdAt: Math.floor(this.now() / 1000) });
  }

  /** The user for these credentials, or LatchkeyError invalid_credentials / rate_limited / user_disabled. */
  async login(emailInput: string, password: string, ip: string): Promise<User> {
    let email: string;
    try {
      email = normaliseEmail(emailInput);
    } catch {
      email = emailInput.trim().toLowerCase().slice(0, 254);
    }
    const accountKey = `${ip}|${email}`;
    await Promise.all([
      take(this.perAccount, accountKey, 'too many failed attempts; try again later'),
      take(this.perIp, ip, 'too many failed attempts; try again later'),
    ]);
    const tooLong = password.length > this.policy.maxLength * 4;
    // accounts created under the earlier normal form keep their stored address
    const legacy = legacyEmailForm(emailInput);
    const user =
      (await this.store.getUserByEmail(email)) ?? (legacy !== undefined && legacy !== email ? await this.store.getUserByEmail(legacy) : undefined);
    const ok = await this.hasher.verify(tooLong ? undefined : user?.passwordHash, normalisePassword(password.slice(0, this.policy.maxLength * 4)));
    // a failure keeps the points it took
    if (!ok || !user) throw new LatchkeyError('invalid_credentials', 'email or password is incorrect');
    // the password was right: the account's failures are forgiven, and this attempt does not count for the IP
    await Promise.all([this.perAccount.delete(accountKey), this.perIp.reward(ip, 1)]);
    // telling a disabled user so reveals nothing new
    if (user.disabled) throw new LatchkeyError('user_disabled', 'this account is disabled');
    const { passwordHash: _omit, ...publicUser } = user;
    return publicUser;
  }

  /** Check the current password and store a new hash; ends every session but `keepSession` (audited). */
  async changePassword(userId: string, current: string, next: string, ip: string, keepSession?: Buffer) {
    const user = await this.store.getUserById(userId);
    if (!user) throw new LatchkeyError('unauthenticated', 'sign in again');
    await take(this.perUserPassword, userId, 'too many wrong current passwords; try again later');
    if (!(await this.hasher.verify(user.passwordHash, normalisePassword(current)))) {
      throw new LatchkeyError('invalid_credentials', 'current password is incorrect', {
        fields: { currentPassword: 'Your current password is incorrect.' },
      });
    }
    await this.perUserPassword.delete(userId);
    // compared in the hashed (NFKC) form: a "new" password that only differs in width is the same one
    if (normalisePassword(next) === normalisePassword(current)) {
      const reason = 'Choose a password different from your current one.';
      throw new LatchkeyError('password_unchanged', 'the new password is the current one', { fields: { newPassword: reason } });
    }
    await checkPasswordPolicy(next, this.policy, user.email);
    const passwordHash = await this.hasher.hash(normalisePassword(next));
    const ended = await this.store.changePassword(userId, passwordHash, keepSession);
    await this.audit.record({ type: 'password_changed', userId, ip, detail: { endedSessions: ended.length } });
    return ended;
  }
}

/** Take one attempt's point from `limiter` for `key`, or throw rate_limited (consume is atomic). */
async function take(limiter: RateLimiterMemory, key: string, message: string): Promise<void> {
  try {
    await limiter.consume(key, 1);
  } catch (r) {
    if (r instanceof RateLimiterRes) throw tooMany(message, r);
    throw r;
  }
}

const tooMany = (message: string, r: RateLimiterRes): LatchkeyError =>
  new LatchkeyError('rate_limited', message, { retryAfter: Math.max(1, Math.ceil(r.msBeforeNext / 1000)) });
