/**
 * Every rate limit on password checks and sign-ups, built in one place from
 * a LimiterBackend (accounts/limiters.ts): counters live in SQLite, Redis or
 * PostgreSQL, shared by every process and node and kept across restarts;
 * none is held in process memory (an unknown email's counters included).
 *
 * - per (client network, email) and per client network: the classic limits;
 *   IPv6 clients are keyed by their /64 (one subscriber's allocation: rotating
 *   addresses inside it must not buy fresh limits).
 * - per account across all addresses (credential stuffing from many IPs):
 *   `accountFreeFailures` failures, then one attempt per backoff period, the
 *   period doubling with each further failure up to a cap; a right password
 *   forgets the count.
 * - per known-device cookie: a device that has signed in to the account before
 *   is exempt from the per-account backoff and the per-network limits (OWASP
 *   "device cookies"), so spraying an account from elsewhere cannot lock its
 *   owner out; the device's own wrong passwords are limited instead, and past
 *   that it is treated as unknown.
 */
import { isIPv6 } from 'node:net';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { LatchkeyError } from '../errors.js';
import type { Limiter, LimiterBackend } from './limiters.js';

export interface LoginLimits {
  /** Failed logins per (network, email), wrong current passwords per user, wrong passwords per device cookie. */
  loginPerAccount: number;
  loginPerIp: number;
  /** Sign-up attempts per network, successful or not. */
  signupPerIp: number;
  windowSeconds: number;
  accountFreeFailures: number;
  accountBackoffSeconds: number;
  accountBackoffMaxSeconds: number;
  accountWindowSeconds: number;
}

/**
 * The key per-IP limits use: an IPv4 address (IPv4-mapped IPv6 unwrapped), or
 * the /64 of an IPv6 address. Fed only addresses Fastify already parsed.
 */
export function networkKey(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const zone = ip.indexOf('%');
  const addr = (zone < 0 ? ip : ip.slice(0, zone)).toLowerCase();
  const groups = expandIPv6(addr);
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** Eight 16-bit groups of a valid IPv6 address (with "::" and an optional dotted IPv4 tail). */
function expandIPv6(addr: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = addr.indexOf('::');
  if (gap < 0) return parse(addr);
  const head = parse(addr.slice(0, gap));
  const tail = parse(addr.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Seconds an account waits after its `n`-th failure beyond the free ones (n >= 1). */
export function backoffSeconds(n: number, limits: Pick<LoginLimits, 'accountBackoffSeconds' | 'accountBackoffMaxSeconds'>): number {
  // 2^31 seconds is past any cap: stop doubling before the number stops being exact
  return Math.min(limits.accountBackoffSeconds * 2 ** Math.min(n - 1, 31), limits.accountBackoffMaxSeconds);
}

export class Throttle {
  private readonly perIpAccount: Limiter;
  private readonly perIp: Limiter;
  private readonly accountFailures: Limiter;
  /** One point per backoff period: taking it is the one attempt that period allows (atomic). */
  private readonly accountGate: Limiter;
  private readonly perDevice: Limiter;
  private readonly perUserPassword: Limiter;
  private readonly signups: Limiter;

  constructor(
    private readonly limits: LoginLimits,
    backend: LimiterBackend,
  ) {
    const w = limits.windowSeconds;
    // the one place limiters are made: the backend decides where their counters live
    const limiter = (points: number, durationSeconds: number, keyPrefix: string) => backend.limiter({ points, durationSeconds, keyPrefix });
    this.perIpAccount = limiter(limits.loginPerAccount, w, 'login-ip-email');
    this.perIp = limiter(limits.loginPerIp, w, 'login-ip');
    // never refuses by itself: it counts, and the gate decides
    this.accountFailures = limiter(Number.MAX_SAFE_INTEGER, limits.accountWindowSeconds, 'login-account');
    this.accountGate = limiter(1, limits.accountBackoffSeconds, 'login-account-gate');
    this.perDevice = limiter(limits.loginPerAccount, w, 'login-device');
    this.perUserPassword = limiter(limits.loginPerAccount, w, 'password-change');
    this.signups = limiter(limits.signupPerIp, w, 'signup-ip');
  }

  /** Take a sign-up attempt's point for the client's network, or throw rate_limited. */
  signup(ip: string): Promise<void> {
    return take(this.signups, networkKey(ip), 'too many sign-ups from this address; try again later');
  }

  /**
   * Take a login attempt's points before its password is checked, or throw
   * rate_limited. `account` is the user id, or the normalised email when no
   * such user exists (counted the same way, so limits reveal nothing);
   * `device` is the verified device-cookie id for this account, if any.
   * Returns how to settle the attempt once the password has been checked.
   */
  async login(ip: string, account: string, device: string | undefined): Promise<{ succeeded(): Promise<void> }> {
    if (device !== undefined) {
      const deviceKey = `${account}|${device}`;
      // a device past its own limit is treated as any unknown device
      if (await tryTake(this.perDevice, deviceKey)) {
        // forgives the device's own failures only: the owner signing in mid-attack must not
        // hand the attacker a fresh set of free guesses against the account
        return { succeeded: () => this.perDevice.delete(deviceKey).then(() => undefined) };
      }
    }
    const net = networkKey(ip);
    const pairKey = `${net}|${account}`;
    const message = 'too many failed attempts; try again later';
    await Promise.all([take(this.perIpAccount, pairKey, message), take(this.perIp, net, message)]);
    const counted = await this.accountFailures.consume(account, 1);
    const beyond = counted.consumedPoints - this.limits.accountFreeFailures;
    if (beyond > 0) {
      const wait = backoffSeconds(beyond, this.limits);
      try {
        await this.accountGate.consume(account, 1, { customDuration: wait });
      } catch (r) {
        // a refused attempt checked no password: it must not lengthen the next wait
        await this.accountFailures.reward(account, 1);
        if (r instanceof RateLimiterRes) throw tooMany(message, r);
        throw r;
      }
    }
    return {
      // the password was right: the account's failures are forgiven, and the attempt does not count for the network
      succeeded: async () => {
        await Promise.all([this.perIpAccount.delete(pairKey), this.perIp.reward(net, 1), this.accountFailures.delete(account), this.accountGate.delete(account)]);
      },
    };
  }

  /** Take a password-change attempt's point for the user (a stolen session must not be a guessing oracle). */
  passwordChange(userId: string): Promise<void> {
    return take(this.perUserPassword, userId, 'too many wrong current passwords; try again later');
  }

  async passwordChangeSucceeded(userId: string): Promise<void> {
    await this.perUserPassword.delete(userId);
  }
}

/** Take one point from `limiter` for `key`, or throw rate_limited (consume is atomic). */
async function take(l: Limiter, key: string, message: string): Promise<void> {
  try {
    await l.consume(key, 1);
  } catch (r) {
    if (r instanceof RateLimiterRes) throw tooMany(message, r);
    throw r;
  }
}

async function tryTake(l: Limiter, key: string): Promise<boolean> {
  try {
    await l.consume(key, 1);
    return true;
  } catch (r) {
    if (r instanceof RateLimiterRes) return false;
    throw r;
  }
}

const tooMany = (message: string, r: RateLimiterRes): LatchkeyError =>
  new LatchkeyError('rate_limited', message, { retryAfter: Math.max(1, Math.ceil(r.msBeforeNext / 1000)) });
