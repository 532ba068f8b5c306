/**
 * Password hashing (argon2id) and policy (NIST SP 800-63B: length limits, a
 * blocklist of common passwords, no composition rules).
 */
import { hash, verify } from '@node-rs/argon2';
import pLimit, { type LimitFunction } from 'p-limit';

/** Algorithm.Argon2id; the package exports it as a const enum, which isolated modules cannot read. */
const ARGON2ID = 2;
import { LatchkeyError } from '../errors.js';

export interface Argon2Params {
  memoryKiB: number;
  iterations: number;
  parallelism: number;
}

export interface PasswordPolicy {
  minLength: number;
  maxLength: number;
}

let common: Set<string> | undefined;

/** The bundled list: the 49k most common passwords from @zxcvbn-ts/language-common (MIT). */
async function commonPasswords(): Promise<Set<string>> {
  if (!common) {
    const { dictionary } = await import('@zxcvbn-ts/language-common');
    common = new Set((dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  }
  return common;
}

/**
 * argon2id jobs go to libuv's thread pool, and Web Crypto's jobs queue behind them: node-postgres
 * derives its SCRAM key with Web Crypto's PBKDF2. Unbounded, a burst of sign-ins queues hundreds
 * of hashes ahead of a new database connection's handshake, which then times out, and the
 * logins of the burst answer 503 although PostgreSQL is fine (test/accounts.test.ts shows the
 * queueing). Jobs past the cap wait in JavaScript instead, and the other
 * threads stay free. Hashes are CPU-bound, so on a machine with fewer cores than threads the cap
 * costs no throughput.
 */
export function defaultHashConcurrency(threadPoolSize: number): number {
  return Math.max(1, threadPoolSize - 1);
}

export class PasswordHasher {
  private readonly options: Parameters<typeof hash>[1];
  /** A hash of a random password, verified against when the user is unknown, so both paths cost the same. */
  private dummy: Promise<string>;
  private readonly limit: LimitFunction;

  /** `maxConcurrent`: argon2id jobs on the thread pool at once (defaultHashConcurrency). */
  constructor(params: Argon2Params, maxConcurrent = defaultHashConcurrency(4)) {
    this.options = {
      algorithm: ARGON2ID,
      memoryCost: params.memoryKiB,
      timeCost: params.iterations,
      parallelism: params.parallelism,
    };
    this.limit = pLimit(Math.max(1, maxConcurrent));
    this.dummy = this.limit(() => hash(crypto.randomUUID(), this.options));
  }

  hash(password: string): Promise<string> {
    return this.limit(() => hash(password, this.options));
  }

  /** Jobs waiting for a place on the thread pool (not counting those running). */
  get queued(): number {
    return this.limit.pendingCount;
  }

  /** Constant-time verify; `undefined` hash means "no such user" and still costs one verify. */
  async verify(passwordHash: string | undefined, password: string): Promise<boolean> {
    if (passwordHash === undefined) {
      const dummy = await this.dummy;
      await this.limit(() => verify(dummy, password));
      return false;
    }
    return this.limit(async () => {
      try {
        return await verify(passwordHash, password);
      } catch {
        return false;
      }
    });
  }
}

/**
 * Throws LatchkeyError('weak_password') with a reason a person can act on.
 * Every rule runs on the NFKC form, the string that is hashed: checking the raw
 * input let `ｐａｓｓｗｏｒｄ１` (full-width) pass as uncommon, and then `password1`
 * signed in, because both hash the same.
 */
export async function checkPasswordPolicy(password: string, policy: PasswordPolicy, email?: string): Promise<void> {
  const fail = (reason: string) =>
    new LatchkeyError('weak_password', reason, { fields: { password: reason } });
  const normal = normalisePassword(password);
  // NIST counts characters, not bytes or UTF-16 units
  const length = [...normal].length;
  if (length < policy.minLength) throw fail(`Use at least ${policy.minLength} characters.`);
  if (length > policy.maxLength) throw fail(`Use at most ${policy.maxLength} characters.`);
  const lower = normal.toLowerCase();
  if ((await commonPasswords()).has(lower)) throw fail('This password is too common. Choose a less guessable one.');
  if (email) {
    const local = email.slice(0, email.indexOf('@'));
    if (lower === email || (local.length >= 4 && lower.includes(local))) {
      throw fail('Do not use your email address in your password.');
    }
  }
  if (new Set(normal).size === 1) throw fail('Do not repeat a single character.');
}

/** Password normalisation applied before hashing and verifying (and before every policy rule). */
export const normalisePassword = (password: string): string => password.normalize('NFKC');
