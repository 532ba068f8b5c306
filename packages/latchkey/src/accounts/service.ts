/**
 * Sign-up, login and password change. Login answers unknown email and wrong
 * password identically (status, body, and time: the unknown path verifies
 * against a dummy hash) and throttles failures per account and per IP.
 */
import { randomBytes } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { LatchkeyError } from '../errors.js';
import type { Store, User } from '../store/store.js';
import { normaliseEmail } from './email.js';
import { checkPasswordPolicy, normalisePassword, type PasswordHasher, type PasswordPolicy } from './passwords.js';

export interface LoginLimits {
  loginPerAccount: number;
  loginPerIp: number;
  windowSeconds: number;
}

/** `u_` + 128 random bits: the public user id (`sub`). */
const newUserId = (): string => `u_${randomBytes(16).toString('base64url')}`;

export class AccountService {
  private readonly perAccount: RateLimiterMemory;
  private readonly perIp: RateLimiterMemory;

  constructor(
    private readonly store: Store,
    private readonly hasher: PasswordHasher,
    private readonly policy: PasswordPolicy,
    limits: LoginLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.perAccount = new RateLimiterMemory({ points: limits.loginPerAccount, duration: limits.windowSeconds });
    this.perIp = new RateLimiterMemory({ points: limits.loginPerIp, duration: limits.windowSeconds });
  }

  async signup(emailInput: string, password: string): Promise<User> {
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
    if (!(await this.hasher.verify(user.passwordHash, normalisePassword(current)))) {
      throw new LatchkeyError('invalid_credentials', 'current password is incorrect', {
        fields: { currentPassword: 'Your current password is incorrect.' },
      });
    }
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
    if (blocked) {
      throw new LatchkeyError('rate_limited', 'too many failed attempts; try again later', {
        retryAfter: Math.max(1, Math.ceil(blocked.msBeforeNext / 1000)),
      });
    }
  }
}
