/**
 * The store contract: every adapter runs this suite against a real server (a SQLite file, a
 * PostgreSQL database), concurrent callers included. The token half is store.tokens.contract.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, beforeEach, afterEach } from 'node:test';
import { handleOf } from '../src/sessions/ids.js';
import type { Session, Store } from '../src/store/store.js';

let n = 0;
const uid = () => `u_test${++n}_${randomBytes(4).toString('hex')}`;
const email = () => `user${++n}.${randomBytes(3).toString('hex')}@example.com`;

function session(userId: string, over: Partial<Session> = {}): Session {
  return {
    idHash: randomBytes(32),
    userId,
    createdAt: 1000,
    lastSeenAt: 1000,
    expiresAt: 100000,
    device: 'Firefox on Linux',
    ip: '192.0.2.1',
    ...over,
  };
}

export function storeContract(name: string, make: () => Promise<Store>) {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await make();
      await store.migrate();
    });
    afterEach(async () => store.close());

    it('migrate is idempotent', async () => {
      await store.migrate();
      await store.migrate();
    });

    it('creates a user and finds it by email and id', async () => {
      const id = uid();
      const e = email();
      const u = await store.createUser({ id, email: e, passwordHash: 'h1', createdAt: 5 });
      assert.deepEqual(u, { id, email: e, roles: [], disabled: false, createdAt: 5 });
      assert.equal((await store.getUserByEmail(e))?.passwordHash, 'h1');
      assert.equal((await store.getUserById(id))?.email, e);
      assert.equal(await store.getUserByEmail('missing@example.com'), undefined);
      assert.equal(await store.getUserById('u_missing'), undefined);
    });

    it('refuses a second user with the same email, changing nothing', async () => {
      const e = email();
      await store.createUser({ id: uid(), email: e, passwordHash: 'h1', createdAt: 5 });
      await assert.rejects(store.createUser({ id: uid(), email: e, passwordHash: 'h2', createdAt: 6 }), { code: 'email_taken' });
      assert.equal((await store.getUserByEmail(e))?.passwordHash, 'h1');
    });

    it('stores a session and returns it with its user', async () => {
      const id = uid();
      await store.createUser({ id, email: email(), passwordHash: 'h', roles: ['admin'], createdAt: 1 });
      const s = session(id);
      await store.createSession(s);
      const got = await store.getSession(s.idHash);
      assert.ok(got);
      assert.deepEqual(got.session, s);
      assert.equal(got.user.id, id);
      assert.deepEqual(got.user.roles, ['admin']);
      assert.equal(await store.getSession(randomBytes(32)), undefined);
    });

    it('refuses a session for a user that does not exist', async () => {
      await assert.rejects(store.createSession(session('u_nobody')), { code: 'user_not_found' });
    });

    it('touch updates last-seen and ip only', async () => {
      const id = uid();
      await store.createUser({ id, email: email(), passwordHash: 'h', createdAt: 1 });
      const s = session(id);
      await store.createSession(s);
      await store.touchSession(s.idHash, 2000, '198.51.100.7');
      const got = (await store.getSession(s.idHash))!.session;
      assert.equal(got.lastSeenAt, 2000);
      assert.equal(got.ip, '198.51.100.7');
      assert.equal(got.expiresAt, s.expiresAt);
      assert.equal(got.createdAt, s.createdAt);
    });

    it('lists a user’s sessions newest first, and only theirs', async () => {
      const a = uid();
      const b = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      await store.createUser({ id: b, email: email(), passwordHash: 'h', createdAt: 1 });
      const s1 = session(a, { createdAt: 10 });
      const s2 = session(a, { createdAt: 20, device: 'Safari on iPhone' });
      await store.createSession(s1);
      await store.createSession(s2);
      await store.createSession(session(b));
      const list = await store.listSessions(a);
      assert.deepEqual(
        list.map((s) => s.idHash.toString('hex')),
        [s2.idHash, s1.idHash].map((h) => h.toString('hex')),
      );
      assert.equal(list[0]!.device, 'Safari on iPhone');
    });

    it('createSession with maxPerUser ends the user’s least recently used sessions in the same call, each with a revocation event', async () => {
      const a = uid();
      const b = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      await store.createUser({ id: b, email: email(), passwordHash: 'h', createdAt: 1 });
      // created in one order, used in another: eviction follows use (lastSeenAt), not age
      const used = [session(a, { createdAt: 10, lastSeenAt: 50 }), session(a, { createdAt: 20, lastSeenAt: 30 }), session(a, { createdAt: 30, lastSeenAt: 40 })];
      for (const s of used) assert.deepEqual(await store.createSession(s, { maxPerUser: 3 }), []);
      const other = session(b, { lastSeenAt: 1 });
      await store.createSession(other, { maxPerUser: 3 });
      const seqBefore = await store.lastRevocationSeq();
      const fourth = session(a, { createdAt: 60, lastSeenAt: 60 });
      const ended = await store.createSession(fourth, { maxPerUser: 3 });
      assert.deepEqual(ended.map((s) => s.idHash.toString('hex')), [used[1]!.idHash.toString('hex')]);
      const hex = (list: Session[]) => list.map((s) => s.idHash.toString('hex')).sort();
      assert.deepEqual(hex(await store.listSessions(a)), hex([used[0]!, used[2]!, fourth]));
      assert.equal(await store.getSession(used[1]!.idHash), undefined);
      assert.ok(await store.getSession(other.idHash), 'another user’s sessions are not touched');
      const events = await store.listRevocations(seqBefore, 100, 0);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.kind, 'session');
      assert.equal(events[0]!.sid, handleOf(used[1]!.idHash));
      assert.deepEqual(events[0]!.detail, { initiator: 'policy', reason: 'session_limit' });
      // a lower limit (the operator lowered it) ends as many as it takes, least recently used first
      const fifth = session(a, { createdAt: 70, lastSeenAt: 70 });
      const more = await store.createSession(fifth, { maxPerUser: 2 });
      assert.deepEqual(hex(more), hex([used[0]!, used[2]!]));
      assert.deepEqual(hex(await store.listSessions(a)), hex([fourth, fifth]));
    });

    it('a createSession that fails ends no session and writes no revocation event', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s1 = session(a, { lastSeenAt: 1000 });
      const s2 = session(a, { lastSeenAt: 2000 });
      await store.createSession(s1, { maxPerUser: 2 });
      await store.createSession(s2, { maxPerUser: 2 });
      const seqBefore = await store.lastRevocationSeq();
      // the same id as s2 again: the insert fails after s1's eviction was decided
      await assert.rejects(store.createSession({ ...s2, createdAt: 99, lastSeenAt: 99 }, { maxPerUser: 2 }));
      assert.equal((await store.listSessions(a)).length, 2);
      assert.equal(await store.lastRevocationSeq(), seqBefore);
    });

    it('without maxPerUser, createSession ends nothing', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      for (let i = 0; i < 60; i++) assert.deepEqual(await store.createSession(session(a)), []);
      assert.equal((await store.listSessions(a)).length, 60);
    });

    it('a device label is shown again after the sweep removed every session that had it', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const label = `Label ${randomBytes(4).toString('hex')}`;
      const first = session(a, { device: label, expiresAt: 1500 });
      await store.createSession(first);
      assert.equal(await store.deleteExpiredSessions(2000, 86400), 1);
      const again = session(a, { device: label, lastSeenAt: 1900, expiresAt: 100000 });
      await store.createSession(again);
      assert.equal((await store.getSession(again.idHash))?.session.device, label);
    });

    it('finds a session by handle prefix, honouring the owner', async () => {
      const a = uid();
      const b = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      await store.createUser({ id: b, email: email(), passwordHash: 'h', createdAt: 1 });
      const s = session(a);
      await store.createSession(s);
      const prefix = s.idHash.subarray(0, 12);
      assert.deepEqual((await store.findSessionByHandle(prefix))?.idHash, s.idHash);
      assert.deepEqual((await store.findSessionByHandle(prefix, a))?.idHash, s.idHash);
      assert.equal(await store.findSessionByHandle(prefix, b), undefined);
      assert.equal(await store.findSessionByHandle(randomBytes(12)), undefined);
    });

    it('finds handles at the edges of the key space', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const high = session(a, { idHash: Buffer.concat([Buffer.alloc(12, 0xff), randomBytes(20)]) });
      const low = session(a, { idHash: Buffer.concat([Buffer.alloc(12, 0x00), randomBytes(20)]) });
      await store.createSession(high);
      await store.createSession(low);
      assert.deepEqual((await store.findSessionByHandle(Buffer.alloc(12, 0xff)))?.idHash, high.idHash);
      assert.deepEqual((await store.findSessionByHandle(Buffer.alloc(12, 0x00)))?.idHash, low.idHash);
    });

    it('deletes one session and reports it', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s = session(a);
      await store.createSession(s);
      assert.deepEqual((await store.deleteSession(s.idHash))?.idHash, s.idHash);
      assert.equal(await store.getSession(s.idHash), undefined);
      assert.equal(await store.deleteSession(s.idHash), undefined);
    });

    it('deletes all of a user’s sessions but one', async () => {
      const a = uid();
      const b = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      await store.createUser({ id: b, email: email(), passwordHash: 'h', createdAt: 1 });
      const keep = session(a);
      const other = session(a);
      const foreign = session(b);
      for (const s of [keep, other, foreign]) await store.createSession(s);
      const ended = await store.deleteUserSessions(a, keep.idHash);
      assert.deepEqual(ended.map((s) => s.idHash), [other.idHash]);
      assert.ok(await store.getSession(keep.idHash));
      assert.ok(await store.getSession(foreign.idHash));
      assert.equal((await store.deleteUserSessions(a)).length, 1);
      assert.equal((await store.listSessions(a)).length, 0);
    });

    it('a user-wide end names every session it ended in its event (detail.sids), 200 a row, one cutoff', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const keep = session(a);
      await store.createSession(keep);
      const others = Array.from({ length: 201 }, () => session(a));
      for (const s of others) await store.createSession(s);
      const before = await store.lastRevocationSeq();
      await store.deleteUserSessions(a, keep.idHash, 'user');
      const events = await store.listRevocations(before, 100, 0);
      // past 200 sessions (sessions.maxPerUser above the default 50) a second row, same cutoff
      assert.deepEqual(events.map((e) => e.kind), ['user', 'user']);
      assert.equal(events[0]!.tokensIssuedBefore, events[1]!.tokensIssuedBefore);
      const sids = events.flatMap((e) => e.detail.sids as string[]);
      assert.equal((events[0]!.detail.sids as string[]).length, 200);
      assert.deepEqual([...sids].sort(), others.map((s) => handleOf(s.idHash)).sort());
      // disabling names the rest (the kept one) and a password change likewise
      const b = uid();
      await store.createUser({ id: b, email: email(), passwordHash: 'h', createdAt: 1 });
      const bKeep = session(b);
      const bOther = session(b);
      await store.createSession(bKeep);
      await store.createSession(bOther);
      const beforePw = await store.lastRevocationSeq();
      await store.changePassword(b, 'new', bKeep.idHash);
      const pw = (await store.listRevocations(beforePw, 100, 0)).filter((e) => e.kind === 'user');
      assert.deepEqual(pw.map((e) => e.detail.sids), [[handleOf(bOther.idHash)]]);
      const beforeDisable = await store.lastRevocationSeq();
      await store.setUserDisabled(b, true);
      const dis = await store.listRevocations(beforeDisable, 100, 0);
      assert.deepEqual(dis.map((e) => [e.kind, e.detail.sids]), [['user', [handleOf(bKeep.idHash)]]]);
    });

    it('changes the password and ends other sessions in one step', async () => {
      const a = uid();
      const e = email();
      await store.createUser({ id: a, email: e, passwordHash: 'old', createdAt: 1 });
      const keep = session(a);
      const other = session(a);
      await store.createSession(keep);
      await store.createSession(other);
      const ended = await store.changePassword(a, 'new', keep.idHash);
      assert.equal(ended.length, 1);
      assert.equal((await store.getUserByEmail(e))?.passwordHash, 'new');
      assert.ok(await store.getSession(keep.idHash));
      assert.equal(await store.getSession(other.idHash), undefined);
      await assert.rejects(store.changePassword('u_nobody', 'x'), { code: 'user_not_found' });
    });

    it('disabling a user ends every session; enabling does not revive them', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s = session(a);
      await store.createSession(s);
      assert.equal((await store.setUserDisabled(a, true)).length, 1);
      assert.equal((await store.getUserById(a))?.disabled, true);
      assert.equal(await store.getSession(s.idHash), undefined);
      assert.deepEqual(await store.setUserDisabled(a, false), []);
      assert.equal((await store.getUserById(a))?.disabled, false);
      await assert.rejects(store.setUserDisabled('u_nobody', true), { code: 'user_not_found' });
    });

    it('replaces roles', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      assert.equal(await store.setUserRoles(a, ['ops', 'billing']), true);
      assert.deepEqual((await store.getUserById(a))?.roles, ['ops', 'billing']);
      assert.equal(await store.setUserRoles('u_nobody', ['x']), false);
    });

    it('many concurrent logins of one user under maxPerUser: the cap holds, and every evicted session has its event', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const seqBefore = await store.lastRevocationSeq();
      const all = Array.from({ length: 12 }, (_, i) => session(a, { createdAt: 100 + i, lastSeenAt: 100 + i }));
      const ended = (await Promise.all(all.map((s) => store.createSession(s, { maxPerUser: 3 })))).flat();
      const left = await store.listSessions(a);
      assert.equal(left.length, 3);
      assert.equal(ended.length, 9, 'each login beyond the cap ended exactly one session');
      const hex = (b: Buffer) => b.toString('hex');
      assert.equal(new Set(ended.map((s) => hex(s.idHash))).size, 9, 'no session was ended twice');
      const events = await store.listRevocations(seqBefore, 100, 0);
      assert.deepEqual(events.map((e) => e.sid).sort(), ended.map((s) => handleOf(s.idHash)).sort());
    });

    it('concurrent deletes of one session: one caller gets it, one revocation event', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s = session(a);
      await store.createSession(s);
      const seqBefore = await store.lastRevocationSeq();
      const results = await Promise.all(Array.from({ length: 8 }, () => store.deleteSession(s.idHash)));
      assert.equal(results.filter((r) => r !== undefined).length, 1);
      const events = await store.listRevocations(seqBefore, 100, 0);
      assert.deepEqual(events.map((e) => [e.kind, e.sid, e.userId]), [['session', handleOf(s.idHash), a]]);
    });

    it('revocation events: each change writes its events with it; a refused change writes none', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s1 = session(a);
      const s2 = session(a);
      const s3 = session(a);
      for (const s of [s1, s2, s3]) await store.createSession(s);
      const since = async (seq: number) => (await store.listRevocations(seq, 100, 0)).map((e) => e.kind);
      let seq = await store.lastRevocationSeq();
      await store.deleteSession(s1.idHash);
      assert.deepEqual(await since(seq), ['session']);
      seq = await store.lastRevocationSeq();
      assert.equal((await store.deleteUserSessions(a, s3.idHash)).length, 1);
      // one user-wide event however many sessions ended, naming them
      assert.deepEqual(await since(seq), ['user']);
      assert.deepEqual((await store.listRevocations(seq, 100, 0))[0]!.detail.sids, [handleOf(s2.idHash)]);
      seq = await store.lastRevocationSeq();
      assert.deepEqual(await store.deleteUserSessions(a, s3.idHash), []);
      assert.deepEqual(await since(seq), [], 'nothing ended, nothing published');
      await store.setUserRoles(a, ['ops']);
      const claims = (await store.listRevocations(seq, 100, 0))[0]!;
      assert.equal(claims.kind, 'claims');
      assert.equal(claims.tokensIssuedBefore, (await store.getUserById(a))?.tokensNotBefore, 'the event carries the cutoff the user row got');
      seq = await store.lastRevocationSeq();
      const s4 = session(a);
      await store.createSession(s4);
      await store.changePassword(a, 'h2', s3.idHash);
      assert.deepEqual(await since(seq), ['credential', 'user']);
      assert.deepEqual((await store.listRevocations(seq, 100, 0))[1]!.detail.sids, [handleOf(s4.idHash)], 'the kept session is not named');
      seq = await store.lastRevocationSeq();
      await store.setUserDisabled(a, true);
      const disabled = await store.listRevocations(seq, 100, 0);
      assert.deepEqual(disabled.map((e) => [e.kind, e.detail.sids]), [['user', [handleOf(s3.idHash)]]]);
      await store.setUserDisabled(a, false);
      seq = await store.lastRevocationSeq();
      await assert.rejects(store.changePassword('u_nobody', 'x'), { code: 'user_not_found' });
      await assert.rejects(store.setUserDisabled('u_nobody', true), { code: 'user_not_found' });
      assert.equal(await store.setUserRoles('u_nobody', ['x']), false);
      assert.equal(await store.lastRevocationSeq(), seq, 'refused changes write no event');
    });

    it('the user token cutoff moves strictly forward with every change, even within one second', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const cutoffs: number[] = [];
      for (const roles of [['a'], ['b'], ['c']]) {
        await store.setUserRoles(a, roles);
        cutoffs.push((await store.getUserById(a))!.tokensNotBefore!);
      }
      assert.ok(cutoffs[0]! < cutoffs[1]! && cutoffs[1]! < cutoffs[2]!, String(cutoffs));
    });

    it('revocation positions: strictly increasing by one, paged by afterSeq and limit, never reused after pruning', async () => {
      let clock = 1_000_000;
      store.setRevocationPolicy({ retainSeconds: 60, now: () => clock });
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const start = await store.lastRevocationSeq();
      const sessions = Array.from({ length: 5 }, () => session(a));
      for (const s of sessions) await store.createSession(s);
      for (const s of sessions.slice(0, 3)) await store.deleteSession(s.idHash);
      const now = clock / 1000;
      const first = await store.listRevocations(start, 100, now);
      assert.deepEqual(first.map((e) => e.seq), [start + 1, start + 2, start + 3]);
      assert.deepEqual(first.map((e) => e.sid), sessions.slice(0, 3).map((s) => handleOf(s.idHash)), 'in commit order');
      assert.ok(first.every((e) => e.at === clock && e.until === now + 60));
      // pages
      assert.deepEqual((await store.listRevocations(start, 2, now)).map((e) => e.seq), [start + 1, start + 2]);
      assert.deepEqual((await store.listRevocations(start + 2, 2, now)).map((e) => e.seq), [start + 3]);
      // past their retention they are hidden at once, pruned later; positions stay taken
      assert.deepEqual(await store.listRevocations(start, 100, now + 60), []);
      assert.equal(await store.pruneRevocations(now + 59), 0);
      assert.equal(await store.pruneRevocations(now + 60), 3);
      assert.equal(await store.lastRevocationSeq(), start + 3);
      clock += 120_000;
      await store.deleteSession(sessions[3]!.idHash);
      const after = await store.listRevocations(start, 100, clock / 1000);
      assert.deepEqual(after.map((e) => e.seq), [start + 4], 'the next event continues after the pruned ones');
    });

    it('a handle two sessions share (a collision) finds neither', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const prefix = randomBytes(12);
      const one = session(a, { idHash: Buffer.concat([prefix, randomBytes(20)]) });
      const two = session(a, { idHash: Buffer.concat([prefix, randomBytes(20)]) });
      await store.createSession(one);
      assert.deepEqual((await store.findSessionByHandle(prefix))?.idHash, one.idHash);
      await store.createSession(two);
      assert.equal(await store.findSessionByHandle(prefix), undefined, 'refused rather than guessed');
    });

    it('a change’s events keep their order: evictions least recently used first, credential before user', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const used = [40, 10, 30, 20].map((t) => session(a, { createdAt: 1, lastSeenAt: t }));
      for (const s of used) await store.createSession(s);
      const seq = await store.lastRevocationSeq();
      const ended = await store.createSession(session(a, { lastSeenAt: 50 }), { maxPerUser: 2 });
      const lru = [used[1]!, used[3]!, used[2]!];
      assert.deepEqual(ended.map((s) => handleOf(s.idHash)), lru.map((s) => handleOf(s.idHash)));
      const events = await store.listRevocations(seq, 100, 0);
      assert.deepEqual(events.map((e) => e.sid), lru.map((s) => handleOf(s.idHash)));
      assert.deepEqual(events.map((e) => e.seq), [seq + 1, seq + 2, seq + 3]);
      const before = await store.lastRevocationSeq();
      await store.changePassword(a, 'h2');
      assert.deepEqual((await store.listRevocations(before, 100, 0)).map((e) => e.kind), ['credential', 'user']);
    });

    it('onWrite is told after each change that wrote events has committed (a read then sees them), never for one that wrote none or failed', async () => {
      const a = uid();
      const reads: Promise<number>[] = [];
      store.setRevocationPolicy({ retainSeconds: 3600, now: Date.now, onWrite: () => reads.push(store.lastRevocationSeq()) });
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const s1 = session(a);
      const s2 = session(a, { lastSeenAt: 900 });
      const s3 = session(a);
      for (const s of [s1, s2, s3]) await store.createSession(s);
      await store.touchSession(s1.idHash, 1500, '192.0.2.9');
      assert.equal(reads.length, 0, 'no event, no call');
      await store.deleteSession(s1.idHash);
      assert.equal(reads.length, 1);
      assert.deepEqual(await store.deleteUserSessions('u_nobody'), []);
      await assert.rejects(store.changePassword('u_nobody', 'x'), { code: 'user_not_found' });
      // ends s2 to make room, then fails on s3's id: rolled back, s2's event with it
      await assert.rejects(store.createSession({ ...s3, lastSeenAt: 99 }, { maxPerUser: 2 }));
      assert.equal((await store.listSessions(a)).length, 2);
      assert.equal(reads.length, 1, 'a change that wrote nothing, or was rolled back, is not announced');
      await store.setUserRoles(a, ['ops']);
      await store.deleteUserSessions(a);
      assert.equal(reads.length, 3);
      const last = await store.lastRevocationSeq();
      const seen = await Promise.all(reads);
      // each read began after its change had committed: it sees that change's last event
      const events = await store.listRevocations(0, 100, 0);
      const deleteSeq = events.find((e) => e.kind === 'session')!.seq;
      const claimsSeq = events.find((e) => e.kind === 'claims')!.seq;
      assert.ok(seen[0]! >= deleteSeq && seen[1]! >= claimsSeq && seen[2] === last, `${seen} ${deleteSeq} ${claimsSeq} ${last}`);
    });

    it('many concurrent sign-outs everywhere of one user: each session ends once and is named by one event; every cutoff is its own', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const all = Array.from({ length: 10 }, () => session(a));
      for (const s of all) await store.createSession(s);
      const seq = await store.lastRevocationSeq();
      const ended = (await Promise.all(Array.from({ length: 6 }, () => store.deleteUserSessions(a, undefined, 'user')))).flat();
      const hex = (list: Session[]) => list.map((s) => s.idHash.toString('hex')).sort();
      assert.deepEqual(hex(ended), hex(all), 'every session ended by exactly one caller');
      const events = await store.listRevocations(seq, 100, 0);
      assert.ok(events.every((e) => e.kind === 'user' && e.userId === a));
      const sids = events.flatMap((e) => e.detail.sids as string[]);
      assert.deepEqual([...sids].sort(), all.map((s) => handleOf(s.idHash)).sort(), 'each session named once');
      const cutoffs = events.map((e) => e.tokensIssuedBefore!);
      assert.ok(cutoffs.every((c, i) => i === 0 || c > cutoffs[i - 1]!), `cutoffs rise with the positions: ${cutoffs}`);
      assert.equal((await store.getUserById(a))!.tokensNotBefore, cutoffs.at(-1));
    });

    it('many concurrent role changes of one user: each moves the cutoff past the last, in the order of their events, and the user keeps the last', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      assert.equal((await store.getUserById(a))!.tokensNotBefore, 0, 'no cutoff before the first change');
      const seq = await store.lastRevocationSeq();
      const roles = Array.from({ length: 10 }, (_, i) => [`r${i}`]);
      assert.ok((await Promise.all(roles.map((r) => store.setUserRoles(a, r)))).every(Boolean));
      const events = await store.listRevocations(seq, 100, 0);
      assert.equal(events.length, 10);
      const cutoffs = events.map((e) => e.tokensIssuedBefore!);
      assert.ok(cutoffs.every((c, i) => i === 0 || c > cutoffs[i - 1]!), `strictly rising: ${cutoffs}`);
      const user = (await store.getUserById(a))!;
      assert.equal(user.tokensNotBefore, cutoffs.at(-1));
      assert.deepEqual(user.roles, events.at(-1)!.detail.roles, 'the roles of the last event are the user’s');
    });

    it('sweeps sessions past their absolute or idle end, and only those', async () => {
      const a = uid();
      await store.createUser({ id: a, email: email(), passwordHash: 'h', createdAt: 1 });
      const live = session(a, { lastSeenAt: 950, expiresAt: 2000 });
      const absolute = session(a, { lastSeenAt: 990, expiresAt: 1000 });
      const idle = session(a, { lastSeenAt: 800, expiresAt: 2000 });
      for (const s of [live, absolute, idle]) await store.createSession(s);
      assert.equal(await store.deleteExpiredSessions(1000, 100), 2);
      assert.deepEqual((await store.listSessions(a)).map((s) => s.idHash), [live.idHash]);
    });
  });
}
