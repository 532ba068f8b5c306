/**
 * What every contender of bench/seeds.ts shares, so they differ only in how they
 * authenticate: the accounts (same emails, same argon2id hash), the session and
 * token lifetimes, the listen backlog, and how a server says it is listening.
 *
 * The runner (bench/seeds.ts) hashes the password once and hands the hash to each
 * server in SEEDS_HASH: every account of every stack verifies against it, so a
 * sign-in costs the same argon2id verification everywhere.
 */
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../../packages/latchkey/src/config.js';

const defaults = parseConfig({});

/** latchkey's argon2id parameters (its config defaults): every stack's hash is made with them. */
export const ARGON2 = defaults.passwords.argon2;

/** The same parameters in @node-rs/argon2's terms (algorithm 2 = Argon2id). */
export const ARGON2_OPTIONS = { algorithm: 2, memoryCost: ARGON2.memoryKiB, timeCost: ARGON2.iterations, parallelism: ARGON2.parallelism } as const;

export const PASSWORD = 'correct horse battery staple';

/** The account of virtual user `i`. */
export const emailOf = (i: number): string => `vu${i}@example.com`;

/**
 * express-session's cookie lifetime, slid by every request (connect-redis touches the key): the
 * equivalent of latchkey's idle timeout, so both stores keep a session as long.
 */
export const IDLE_SECONDS = defaults.sessions.idleTimeoutSeconds;

/** The seeds' access-token lifetime ("short-lived, e.g. 15 minutes"): the window a jsonwebtoken token cannot be recalled in. */
export const JWT_LIFETIME_SECONDS = 15 * 60;

/**
 * Every server listens with this backlog: with Node's default (511), 2,000 clients connecting at
 * once overflow the accept queue and the kernel's retransmits (1 s, 3 s) land in the latencies,
 * whatever the stack. The same for all, so the comparison is the stacks', not the SYN queue's.
 */
export const BACKLOG = 4096;

export interface Account {
  id: string;
  email: string;
  passwordHash: string;
}

/** The SEEDS_USERS accounts, all with the SEEDS_HASH password hash, ids as latchkey makes them. */
export function accounts(): Account[] {
  const hash = process.env.SEEDS_HASH;
  const n = Number(process.env.SEEDS_USERS);
  if (!hash || !Number.isInteger(n) || n < 1) throw new Error('SEEDS_HASH and SEEDS_USERS must be set (bench/seeds.ts starts the stacks)');
  return Array.from({ length: n }, (_, i) => ({ id: `u_${randomBytes(16).toString('base64url')}`, email: emailOf(i), passwordHash: hash }));
}

/** Tell the runner (over IPC) that the server listens on `port`. */
export function ready(port: number): void {
  if (!process.send) throw new Error('start this server from bench/seeds.ts (it needs the IPC channel)');
  process.send({ port });
}
