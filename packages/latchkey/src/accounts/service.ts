/**
 * Sign-up, login and password change. Login answers unknown email and wrong
 * password identically (status, body, and time: the unknown path verifies
 * against a dummy hash) and throttles failures per account and per IP.
 * Password change throttles wrong current passwords per user (a stolen
 * session must not become a password-guessing oracle), and sign-up throttles
 * attempts per IP (mass account creation, and probing which emails exist).
 */
import { randomBytes } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { LatchkeyError } from '../errors.js';
import type { Store, User } from '../store/store.js';
import { normaliseEmail } from './email.js';
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
    await this.signupsPerIp.consume(ip, 1).catch((r: unknown) => {
      if (r instanceof RateLimiterRes) throw tooMany('too many sign-ups from this address; try again later', r);
      throw r;
    });
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
    await this.refuseIfBlocked(accountKey, ip);
    const tooLong = password.length > this.policy.maxLength * 4;
    const user = await this.store.getUserByEmail(email);
    const ok = await this.hasher.verify(tooLong ? undefined : user?.passwordHash, normalisePassword(password.slice(0, this.policy.maxLength * 4)));
    if (!ok || !user) {
      await Promise.all([this.perAccount.penalty(accountKey, 1), this.perIp.penalty(ip, 1)]);
      throw new LatchkeyError('invalid_credentials', 'email or password is incorrect');
    }
    // the password was right: telling a disabled user so reveals nothing new
    if (user.disabled) throw new LatchkeyError('user_disabled', 'this account is disabled');
    await this.perAccount.delete(accountKey);
    const { passwordHash: _omit, ...publicUser } = user;
    return publicUser;
  }

  /** Check the current password and store a new hash; ends every session but `keepSession`. */
  async changePassword(userId: string, current: string, next: string, keepSession?: Buffer) {
    const user = await this.store.getUserById(userId);
    if (!user) throw new LatchkeyError('unauthenticated', 'sign in again');
    const failures = await this.perUserPassword.get(userId);
    if (failures !== null && failures.consumedPoints >= this.perUserPassword.points) {
      throw tooMany('too many wrong current passwords; try again later', failures);
    }
    if (!(await this.hasher.verify(user.passwordHash, normalisePassword(current)))) {
      await this.perUserPassword.penalty(userId, 1);
      throw new LatchkeyError('invalid_credentials', 'current password is incorrect', {
        fields: { currentPassword: 'Your current password is incorrect.' },
      });
    }
    await this.perUserPassword.delete(userId);
    await checkPasswordPolicy(next, this.policy, user.email);
    const passwordHash = await this.hasher.hash(normalisePassword(next));
    return this.store.changePassword(userId, passwordHash, keepSession);
  }

  private async refuseIfBlocked(accountKey: string, ip: string): Promise<void> {
    const [a, b] = await Promise.all([this.perAccount.get(accountKey), this.perIp.get(ip)]);
    const blocked = [a, b].find(
      (r, i): r is RateLimiterRes =>
        r !== null && r.consumedPoints >= (i === 0 ? this.perAccount.points : this.perIp.points),
    );
    if (blocked) throw tooMany('too many failed attempts; try again later', blocked);
  }
}

const tooMany = (message: string, r: RateLimiterRes): LatchkeyError =>
  new LatchkeyError('rate_limited', message, { retryAfter: Math.max(1, Math.ceil(r.msBeforeNext / 1000)) });
