/**
 * The refresh grant's compare-and-swap (Store.rotateRefreshToken) and the token lookup
 * (findRefreshToken), written once for every adapter: which token rotates, when a successor
 * is shared inside the grace window, when a replay ends the family. Each is a generator that
 * yields the reads and writes it needs (RefreshIo) and is given their results, so SQLite runs
 * it synchronously inside one transaction (runSync) and PostgreSQL awaits each step inside
 * its own (runAsync). Adapters only read and write rows.
 */
import type { RefreshRotation, RefreshTokenInfo, RotationOutcome } from './store.js';
import { familyInfo, familyLive, joinedUser, toSession, type FamilyRow, type TokenRow } from './rows.js';

/** A token's row joined with its family (and the family's session and user). */
export type TokenFamilyRow = TokenRow & FamilyRow;

/** What the rules read, inside the caller's transaction. */
export interface RefreshReads {
  /** The token and its family, or undefined. */
  token(hash: Buffer): TokenFamilyRow | undefined;
  /** A family by its key's hash, or undefined. */
  family(keyHash: Buffer): FamilyRow | undefined;
  /** A token alone (a link of the successor chain), or undefined. */
  link(hash: Buffer): TokenRow | undefined;
}

/** What the rotation reads and writes, inside the caller's transaction. */
export interface RefreshIo extends RefreshReads {
  /**
   * Mark `row`'s token rotated to the successor, insert the successor, record the session's
   * activity, forget the family's tokens rotated before the grace window. Throws if the token
   * was rotated meanwhile (the caller's transaction must rule that out).
   */
  rotate(row: TokenFamilyRow, r: RefreshRotation): void;
  /** Delete the family's session (and so the family) and write its revocation event. */
  endFamily(family: FamilyRow): void;
}

type Step = { [K in keyof RefreshIo]: { op: K; args: Parameters<RefreshIo[K]> } }[keyof RefreshIo];
type Rule<T> = Generator<Step, T, unknown>;
/** `I` with each answer a promise (network stores). */
export type Async<I> = { [K in keyof I]: I[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : never };

function* ask<K extends keyof RefreshIo>(op: K, ...args: Parameters<RefreshIo[K]>): Generator<Step, ReturnType<RefreshIo[K]>, unknown> {
  return (yield { op, args } as Step) as ReturnType<RefreshIo[K]>;
}

/** How many successors a shared answer follows: a client rotating faster than that is not waited for. */
const CHAIN_LIMIT = 16;

function* rotation(r: RefreshRotation): Rule<RotationOutcome> {
  const row = yield* ask('token', r.tokenHash);
  if (!row || !row.key_hash.equals(r.familyKeyHash)) {
    // an old token whose row was pruned still names its family by its key
    const family = yield* ask('family', r.familyKeyHash);
    if (!family || (r.clientId !== undefined && family.client_id !== r.clientId)) return { outcome: 'unknown' };
    return yield* reused(family);
  }
  if (r.clientId !== undefined && row.client_id !== r.clientId) return { outcome: 'unknown' };
  if (row.rotated_at === null) {
    if (!familyLive(row, r.now)) return { outcome: 'expired' };
    yield* ask('rotate', row, r);
    const session = { ...toSession(row), lastSeenAt: r.now, ip: r.ip };
    return { outcome: 'rotated', session, user: joinedUser(row), clientId: row.client_id };
  }
  if (r.now - row.rotated_at < r.graceSeconds) {
    // a fast client may have rotated the successor too: hand out the newest one
    let link: TokenRow = row;
    for (let i = 0; i < CHAIN_LIMIT && link.successor_hash; i++) {
      const next = yield* ask('link', link.successor_hash);
      if (!next || next.rotated_at === null) break;
      link = next;
    }
    if (!familyLive(row, r.now)) return { outcome: 'expired' };
    if (link.successor_sealed) {
      return {
        outcome: 'shared',
        session: toSession(row),
        user: joinedUser(row),
        clientId: row.client_id,
        successorSealed: link.successor_sealed,
        sealedBy: link.hash,
      };
    }
  }
  return yield* reused(row);
}

/** Reuse detected: the session goes, and with it the family and every token of it. */
function* reused(family: FamilyRow): Rule<RotationOutcome> {
  yield* ask('endFamily', family);
  return { outcome: 'reused', session: toSession(family), clientId: family.client_id };
}

function* lookup(tokenHash: Buffer, familyKeyHash: Buffer): Rule<RefreshTokenInfo | undefined> {
  const row = yield* ask('token', tokenHash);
  if (row && row.key_hash.equals(familyKeyHash)) {
    return { ...familyInfo(row), current: row.rotated_at === null, issuedAt: row.token_created_at };
  }
  // a token whose row is gone (rotated and pruned) still names its family by its key
  const family = yield* ask('family', familyKeyHash);
  return family && { ...familyInfo(family), current: false, issuedAt: undefined };
}

/** Do `s` with `io` (a rule only asks for what its io has: lookups only read). */
const call = (io: object, s: Step): unknown => (io as Record<string, (...args: unknown[]) => unknown>)[s.op]!(...s.args);

function drive<T>(rule: Rule<T>, io: RefreshReads): T {
  for (let step = rule.next(); ; ) {
    if (step.done) return step.value;
    step = rule.next(call(io, step.value));
  }
}

async function driveAsync<T>(rule: Rule<T>, io: Async<RefreshReads>): Promise<T> {
  for (let step = rule.next(); ; ) {
    if (step.done) return step.value;
    step = rule.next(await call(io, step.value));
  }
}

/** The refresh grant against a synchronous store (call it inside one transaction). */
export const rotateSync = (r: RefreshRotation, io: RefreshIo): RotationOutcome => drive(rotation(r), io);
/** The refresh grant against a network store (call it inside one transaction). */
export const rotateAsync = (r: RefreshRotation, io: Async<RefreshIo>): Promise<RotationOutcome> => driveAsync(rotation(r), io);
/** findRefreshToken's answer from a synchronous store. */
export const lookupSync = (tokenHash: Buffer, familyKeyHash: Buffer, io: RefreshReads): RefreshTokenInfo | undefined =>
  drive(lookup(tokenHash, familyKeyHash), io);
/** findRefreshToken's answer from a network store. */
export const lookupAsync = (tokenHash: Buffer, familyKeyHash: Buffer, io: Async<RefreshReads>): Promise<RefreshTokenInfo | undefined> =>
  driveAsync(lookup(tokenHash, familyKeyHash), io);
