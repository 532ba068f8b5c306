/**
 * Sign-up, login and password change. Login answers unknown email and wrong
 * password identically (status, body, and time: the unknown path verifies
 * against a dummy hash). Every path that checks a password is throttled
 * (accounts/throttle.ts): per network and (network, email), per account
 * across all networks with exponential backoff (a known device is exempt),
 * per user at password change (a stolen session must not become a
 * password-guessing oracle), and sign-ups per network (mass account creation,
 * and probing which emails exist).
 *
 * Every attempt takes its point before the password is checked, and a right
 * password gives it back: checking the count first and adding a failure
 * after the (slow) hash would let concurrent guesses all pass the check.
 */
import { randomBytes } from 'node:crypto';
import type { AuditLog } from '../audit/log.js';
import { LatchkeyError } from '../errors.js';
import type { Store, User } from '../store/store.js';
import { legacyEmailForm, normaliseEmail } from './email.js';
import { KnownDevices } from './known-devices.js';
import { checkPasswordPolicy, normalisePassword, type PasswordHasher, type PasswordPolicy } from './passwords.js';
import type { LimiterBackend } from './limiters.js';
import { Throttle, type LoginLimits } from './throttle.js';

export type { LoginLimits } from './throttle.js';

/** `u_` + 128 random bits: the public user id (`sub`). */
const newUserId = (): string => `u_${randomBytes(16).toString('base64url')}`;

export class AccountService {
  private readonly throttle: Throttle;
  private readonly devices: KnownDevices;

  constructor(
    private readonly store: Store,
    private readonly hasher: PasswordHasher,
    private readonly policy: PasswordPolicy,
    limits: LoginLimits,
    /** Where the rate-limit counters live (shared by every process and node on it). */
    limiters: LimiterBackend,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    /** Key of the device-cookie HMAC (a data-dir secret, so cookies outlive restarts). */
    deviceKey: Buffer,
  ) {
    this.throttle = new Throttle(limits, limiters);
    this.devices = new KnownDevices(deviceKey);
  }

  /** A new user; LatchkeyError rate_limited past `signupPerIp` attempts from `ip`'s network in the window. */
  async signup(emailInput: string, password: string, ip: string): Promise<User> {
    // every attempt counts, before any check: failures probe the policy and which emails are taken
    await this.throttle.signup(ip);
    const email = normaliseEmail(emailInput);
    await checkPasswordPolicy(password, this.policy, email);
    const passwordHash = await this.hasher.hash(normalisePassword(password));
    return this.store.createUser({ id: newUserId(), email, passwordHash, createdAt: Math.floor(this.now() / 1000) });
  }

  /**
   * The user for these credentials, or LatchkeyError invalid_credentials / rate_limited / user_disabled.
   * `deviceToken` is the browser's device cookie, if any (see known-devices.ts).
   */
  async login(emailInput: string, password: string, ip: string, deviceToken?: string): Promise<User> {
    let email: string;
    try {
      email = normaliseEmail(emailInput);
    } catch {
      email = emailInput.trim().toLowerCase().slice(0, 254);
    }
    // accounts created under the earlier normal form keep their stored address
    const legacy = legacyEmailForm(emailInput);
    const user =
      (await this.store.getUserByEmail(email)) ?? (legacy !== undefined && legacy !== email ? await this.store.getUserByEmail(legacy) : undefined);
    const device = user ? this.devices.verify(deviceToken, user.id) : undefined;
    // an existing account is counted by its id, so no spelling of its address gets a fresh count
    const attempt = await this.throttle.login(ip, user ? user.id : email, device);
    const tooLong = password.length > this.policy.maxLength * 4;
    const ok = await this.hasher.verify(tooLong ? undefined : user?.passwordHash, normalisePassword(password.slice(0, this.policy.maxLength * 4)));
    // a failure keeps the points it took
    if (!ok || !user) throw new LatchkeyError('invalid_credentials', 'email or password is incorrect');
    await attempt.succeeded();
    // telling a disabled user so reveals nothing new
    if (user.disabled) throw new LatchkeyError('user_disabled', 'this account is disabled');
    const { passwordHash: _omit, ...publicUser } = user;
    return publicUser;
  }

  /**
   * The device cookie to hold after `userId` signed in on this browser: the
   * one presented if it is already bound to this account (its own failure
   * count carries on), else a new one.
   */
  deviceToken(userId: string, presented?: string): string {
    return presented !== undefined && this.devices.verify(presented, userId) !== undefined ? presented : this.devices.issue(userId);
  }

  /** Check the current password and store a new hash; ends every session but `keepSession` (audited). */
  async changePassword(userId: string, current: string, next: string, ip: string, keepSession?: Buffer) {
    const user = await this.store.getUserById(userId);
    if (!user) throw new LatchkeyError('unauthenticated', 'sign in again');
    await this.throttle.passwordChange(userId);
    if (!(await this.hasher.verify(user.passwordHash, normalisePassword(current)))) {
      throw new LatchkeyError('invalid_credentials', 'current password is incorrect', {
        fields: { currentPassword: 'Your current password is incorrect.' },
      });
    }
    await this.throttle.passwordChangeSucceeded(userId);
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
