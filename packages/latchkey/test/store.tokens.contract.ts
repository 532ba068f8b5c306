/**
 * The token half of the store contract (refresh families, signing keys, audit
 * events): every adapter runs it, like store.contract.ts, concurrent callers included.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { handleOf } from '../src/sessions/ids.js';
import type { NewSigningKey, RefreshRotation, Session, Store } from '../src/store/store.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest();
let n = 0;

export function tokenStoreContract(name: string, make: () => Promise<Store>) {
  describe(`store contract (tokens): ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await make();
      await store.migrate();
    });
    afterEach(async () => store.close());

    async function family(over: Partial<Session> = {}, clientId = 'latchkey') {
      const userId = `u_tok${++n}_${randomBytes(4).toString('hex')}`;
      await store.createUser({ id: userId, email: `${userId}@example.com`, passwordHash: 'h', createdAt: 1 });
      const session = {
        idHash: randomBytes(32),
        userId,
        createdAt: 1000,
        lastSeenAt: 1000,
        expiresAt: 10_000,
        device: 'Safari on iPhone',
        ip: '192.0.2.1',
        idleTimeoutSeconds: 500,
        ...over,
      };
      const key = randomBytes(16);
      const token = randomBytes(32);
      await store.createRefreshFamily({ session, keyHash: sha(key), clientId, tokenHash: sha(token) });
      return { userId, session, keyHash: sha(key), tokenHash: sha(token) };
    }

    const rotation = (f: { keyHash: Buffer }, tokenHash: Buffer, over: Partial<RefreshRotation> = {}): RefreshRotation & { successorHash: Buffer } => ({
      tokenHash,
      familyKeyHash: f.keyHash,
      successorHash: randomBytes(32),
      successorSealed: randomBytes(76),
      clientId: 'latchkey',
      now: 1100,
      graceSeconds: 5,
      ip: '198.51.100.9',
      ...over,
    });

    it('a family creates its session, with the family’s idle timeout, in the user’s list', async () => {
      const f = await family();
      const [s] = await store.listSessions(f.userId);
      assert.deepEqual(s, f.session);
    });

    it('rotates the current token once: compare-and-swap, then shares the successor inside the grace window', async () => {
      const f = await family();
      const r1 = rotation(f, f.tokenHash);
      const first = await store.rotateRefreshToken(r1);
      assert.equal(first.outcome, 'rotated');
      assert.equal(first.outcome === 'rotated' && first.session.lastSeenAt, 1100);
      const second = await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1104 }));
      assert.equal(second.outcome, 'shared');
      if (second.outcome === 'shared') {
        assert.deepEqual(second.successorSealed, r1.successorSealed);
        assert.deepEqual(second.sealedBy, f.tokenHash);
      }
      // the successor is current now
      assert.equal((await store.findRefreshToken(r1.successorHash, f.keyHash))?.current, true);
      assert.equal((await store.findRefreshToken(f.tokenHash, f.keyHash))?.current, false);
    });

    it('a replay after the grace window deletes the session and the family in the same step', async () => {
      const f = await family();
      const r1 = rotation(f, f.tokenHash);
      await store.rotateRefreshToken(r1);
      const replay = await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1105 }));
      assert.equal(replay.outcome, 'reused');
      assert.equal(await store.getSession(f.session.idHash), undefined);
      assert.equal(await store.findRefreshToken(r1.successorHash, f.keyHash), undefined);
      assert.equal((await store.rotateRefreshToken(rotation(f, r1.successorHash, { now: 1106 }))).outcome, 'unknown');
    });

    it('a token whose row was pruned is still recognised by its family key as reuse', async () => {
      const f = await family();
      await store.rotateRefreshToken(rotation(f, f.tokenHash));
      assert.equal(await store.pruneRefreshTokens(1101), 1);
      assert.equal((await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1102 }))).outcome, 'reused');
    });

    it('another client’s family is unknown to it, and untouched', async () => {
      const f = await family();
      assert.equal((await store.rotateRefreshToken(rotation(f, f.tokenHash, { clientId: 'other' }))).outcome, 'unknown');
      assert.equal((await store.findRefreshToken(f.tokenHash, f.keyHash))?.current, true);
      assert.equal(await store.revokeRefreshFamily({ familyKeyHash: f.keyHash }, 'other'), undefined);
    });

    it('refuses to rotate past the idle or absolute end (expired, not reuse)', async () => {
      const idle = await family();
      assert.equal((await store.rotateRefreshToken(rotation(idle, idle.tokenHash, { now: 1500 }))).outcome, 'expired');
      assert.ok(await store.getSession(idle.session.idHash));
      const absolute = await family({ expiresAt: 1050 });
      assert.equal((await store.rotateRefreshToken(rotation(absolute, absolute.tokenHash, { now: 1060 }))).outcome, 'expired');
    });

    it('ending the session by any path deletes the family', async () => {
      const a = await family();
      await store.deleteSession(a.session.idHash);
      assert.equal(await store.findRefreshToken(a.tokenHash, a.keyHash), undefined);
      const b = await family();
      await store.setUserDisabled(b.userId, true);
      assert.equal(await store.findRefreshToken(b.tokenHash, b.keyHash), undefined);
      const c = await family();
      await store.changePassword(c.userId, 'new');
      assert.equal((await store.rotateRefreshToken(rotation(c, c.tokenHash))).outcome, 'unknown');
    });

    it('revokes a family by key or by session, returning the ended session', async () => {
      const a = await family();
      assert.deepEqual((await store.revokeRefreshFamily({ familyKeyHash: a.keyHash }, 'latchkey'))?.idHash, a.session.idHash);
      assert.equal(await store.getSession(a.session.idHash), undefined);
      const b = await family();
      assert.deepEqual((await store.revokeRefreshFamily({ sessionHash: b.session.idHash }, 'latchkey'))?.idHash, b.session.idHash);
      assert.equal(await store.revokeRefreshFamily({ sessionHash: b.session.idHash }, 'latchkey'), undefined);
    });

    it('a session without a family is not revoked as one', async () => {
      const userId = `u_plain${++n}`;
      await store.createUser({ id: userId, email: `${userId}@example.com`, passwordHash: 'h', createdAt: 1 });
      const s = { idHash: randomBytes(32), userId, createdAt: 1, lastSeenAt: 1, expiresAt: 9999, device: 'x', ip: '192.0.2.1' };
      await store.createSession(s);
      assert.equal(await store.revokeRefreshFamily({ sessionHash: s.idHash }, 'latchkey'), undefined);
      assert.ok(await store.getSession(s.idHash));
    });

    it('the session sweep honours a session’s own idle timeout', async () => {
      const f = await family({ lastSeenAt: 1000, idleTimeoutSeconds: 500 });
      // the browser idle timeout (100) has passed, the family's (500) has not
      await store.deleteExpiredSessions(1200, 100);
      assert.ok(await store.getSession(f.session.idHash));
      await store.deleteExpiredSessions(1500, 100);
      assert.equal(await store.getSession(f.session.idHash), undefined);
    });

    const key = (kid: string, activatesAt: number): NewSigningKey => ({
      kid,
      alg: 'EdDSA',
      publicJwk: `{"kid":"${kid}"}`,
      createdAt: activatesAt - 10,
      activatesAt,
      deactivatesAt: null,
      retiredAt: null,
      privateKey: `{"v":1,"kid":"${kid}","private":true}`,
    });

    it('signing keys: a new key ends the previous one’s signing period at its start', async () => {
      assert.equal(await store.addSigningKey(key('k1', 100)), true);
      assert.equal(await store.addSigningKey(key('k2', 200)), true);
      const [k1, k2] = await store.listSigningKeys();
      assert.equal(k1!.deactivatesAt, 200);
      assert.equal(k2!.deactivatesAt, null);
    });

    it('signing keys: unlessScheduledAfter adds nothing when a later key is scheduled', async () => {
      await store.addSigningKey(key('k1', 100));
      await store.addSigningKey(key('k2', 300));
      assert.equal(await store.addSigningKey(key('k3', 400), { unlessScheduledAfter: 150 }), false);
      assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid), ['k1', 'k2']);
    });

    it('signing keys: promote brings a pending key forward; retire marks one retired', async () => {
      await store.addSigningKey(key('k1', 100));
      await store.addSigningKey(key('k2', 300));
      assert.equal(await store.promoteSigningKey('k2', 150), true);
      const [k1, k2] = await store.listSigningKeys();
      assert.equal(k1!.deactivatesAt, 150);
      assert.equal(k2!.activatesAt, 150);
      assert.equal((await store.retireSigningKey('k1', 160))?.retiredAt, null, 'returns the record as it was');
      assert.equal((await store.listSigningKeys())[0]!.retiredAt, 160);
      assert.equal(await store.retireSigningKey('nope', 160), undefined);
      assert.equal(await store.promoteSigningKey('k1', 170), false, 'a retired key cannot be promoted');
    });

    it('createRefreshFamily with maxPerUser ends the user’s least recently used session in the same call', async () => {
      const f = await family({ lastSeenAt: 1000 });
      const browser = { ...f.session, idHash: randomBytes(32), lastSeenAt: 1200, idleTimeoutSeconds: undefined };
      delete browser.idleTimeoutSeconds;
      await store.createSession(browser);
      const seqBefore = await store.lastRevocationSeq();
      const second = { ...f.session, idHash: randomBytes(32), createdAt: 1300, lastSeenAt: 1300 };
      const ended = await store.createRefreshFamily(
        { session: second, keyHash: sha(randomBytes(16)), clientId: 'latchkey', tokenHash: sha(randomBytes(32)) },
        { maxPerUser: 2 },
      );
      assert.deepEqual(ended.map((s) => s.idHash.toString('hex')), [f.session.idHash.toString('hex')]);
      // the evicted session's family went with it: its token is unknown
      assert.equal(await store.findRefreshToken(f.tokenHash, f.keyHash), undefined);
      assert.equal((await store.listSessions(f.userId)).length, 2);
      const events = await store.listRevocations(seqBefore, 10, 0);
      assert.deepEqual(events.map((e) => [e.kind, e.detail]), [['session', { initiator: 'policy', reason: 'session_limit' }]]);
    });

    it('a rotation records activity on the session in the store: last seen and ip', async () => {
      const f = await family();
      await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1150, ip: '203.0.113.5' }));
      const got = (await store.getSession(f.session.idHash))!.session;
      assert.equal(got.lastSeenAt, 1150);
      assert.equal(got.ip, '203.0.113.5');
    });

    it('inside the grace window a replay gets the newest successor when the client has rotated again (the chain is followed)', async () => {
      const f = await family();
      const r1 = rotation(f, f.tokenHash, { now: 1100 });
      assert.equal((await store.rotateRefreshToken(r1)).outcome, 'rotated');
      const r2 = rotation(f, r1.successorHash, { now: 1101 });
      assert.equal((await store.rotateRefreshToken(r2)).outcome, 'rotated');
      const replay = await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1102 }));
      assert.equal(replay.outcome, 'shared');
      assert.deepEqual(replay.outcome === 'shared' && replay.successorSealed, r2.successorSealed);
      assert.deepEqual(replay.outcome === 'shared' && replay.sealedBy, r1.successorHash);
    });

    it('a replay inside the grace window of a family past its end is expired, not shared, and ends nothing', async () => {
      const f = await family({ expiresAt: 1103 });
      await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1100 }));
      const seq = await store.lastRevocationSeq();
      assert.equal((await store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1104 }))).outcome, 'expired');
      assert.ok(await store.getSession(f.session.idHash));
      assert.equal(await store.lastRevocationSeq(), seq);
    });

    it('without a client id, a family of any client rotates', async () => {
      const f = await family({}, 'mobile-app');
      const r = await store.rotateRefreshToken(rotation(f, f.tokenHash, { clientId: undefined }));
      assert.equal(r.outcome, 'rotated');
      assert.equal(r.outcome === 'rotated' && r.clientId, 'mobile-app');
    });

    it('findRefreshToken reports the family: session, user, client, when the family and the token were made', async () => {
      const f = await family({ createdAt: 1000 }, 'mobile-app');
      await store.setUserRoles(f.userId, ['ops']);
      const first = (await store.findRefreshToken(f.tokenHash, f.keyHash))!;
      assert.deepEqual(first.session, f.session);
      assert.deepEqual([first.user.id, first.user.email, first.user.roles, first.user.disabled], [f.userId, `${f.userId}@example.com`, ['ops'], false]);
      assert.deepEqual([first.clientId, first.familyCreatedAt, first.current, first.issuedAt], ['mobile-app', 1000, true, 1000]);
      const r = rotation(f, f.tokenHash, { clientId: 'mobile-app', now: 1200 });
      await store.rotateRefreshToken(r);
      const next = (await store.findRefreshToken(r.successorHash, f.keyHash))!;
      assert.deepEqual([next.current, next.issuedAt, next.familyCreatedAt], [true, 1200, 1000]);
      // a token of the family whose row is gone: still the family, not current, no issue time
      await store.pruneRefreshTokens(1201);
      const old = (await store.findRefreshToken(f.tokenHash, f.keyHash))!;
      assert.deepEqual([old.current, old.issuedAt, old.clientId], [false, undefined, 'mobile-app']);
      assert.equal(await store.findRefreshToken(randomBytes(32), sha(randomBytes(16))), undefined);
    });

    it('pruneRefreshTokens forgets tokens rotated before the cutoff, and only those: never a current one', async () => {
      const f = await family();
      const r1 = rotation(f, f.tokenHash, { now: 1100 });
      await store.rotateRefreshToken(r1);
      const r2 = rotation(f, r1.successorHash, { now: 1200, graceSeconds: 500 });
      await store.rotateRefreshToken(r2);
      assert.equal(await store.pruneRefreshTokens(1100), 0);
      assert.equal(await store.pruneRefreshTokens(1101), 1);
      assert.equal(await store.pruneRefreshTokens(5000), 1);
      assert.equal((await store.findRefreshToken(r2.successorHash, f.keyHash))?.current, true);
      assert.equal((await store.rotateRefreshToken(rotation(f, r2.successorHash, { now: 1300 }))).outcome, 'rotated');
    });

    it('revoking a family writes one session event naming it, by the user', async () => {
      const f = await family();
      const seq = await store.lastRevocationSeq();
      await store.revokeRefreshFamily({ familyKeyHash: f.keyHash }, 'latchkey');
      const events = await store.listRevocations(seq, 10, 0);
      assert.deepEqual(
        events.map((e) => [e.kind, e.userId, e.sid, e.detail]),
        [['session', f.userId, handleOf(f.session.idHash), { initiator: 'user', reason: 'refresh_token_revoked' }]],
      );
    });

    it('a createRefreshFamily that fails (its key hash in use) ends no session and writes no event', async () => {
      const f = await family({ lastSeenAt: 900 });
      await store.createSession({ ...f.session, idHash: randomBytes(32), lastSeenAt: 1000 });
      const taken = await family();
      const seq = await store.lastRevocationSeq();
      const second = { ...f.session, idHash: randomBytes(32), lastSeenAt: 1100 };
      // the cap ends f's session first, then the family insert fails on another family's key hash
      const clash = { session: second, keyHash: taken.keyHash, clientId: 'latchkey', tokenHash: sha(randomBytes(32)) };
      await assert.rejects(store.createRefreshFamily(clash, { maxPerUser: 2 }));
      assert.equal((await store.listSessions(f.userId)).length, 2);
      assert.ok(await store.getSession(f.session.idHash));
      assert.equal(await store.getSession(second.idHash), undefined);
      assert.equal(await store.lastRevocationSeq(), seq);
    });

    it('many concurrent logins of one user, browsers and token clients mixed, under maxPerUser: the cap holds, every ended session has its event', async () => {
      const f = await family({ lastSeenAt: 1 });
      const seq = await store.lastRevocationSeq();
      const logins = Array.from({ length: 12 }, (_, i) => {
        const s = { ...f.session, idHash: randomBytes(32), createdAt: 100 + i, lastSeenAt: 100 + i };
        if (i % 2) return store.createSession({ ...s, idleTimeoutSeconds: undefined }, { maxPerUser: 4 });
        return store.createRefreshFamily({ session: s, keyHash: sha(randomBytes(16)), clientId: 'latchkey', tokenHash: sha(randomBytes(32)) }, { maxPerUser: 4 });
      });
      const ended = (await Promise.all(logins)).flat();
      assert.equal((await store.listSessions(f.userId)).length, 4);
      assert.equal(ended.length, 13 - 4, 'each login beyond the cap ended one session');
      assert.equal(new Set(ended.map((s) => s.idHash.toString('hex'))).size, ended.length, 'none twice');
      const events = await store.listRevocations(seq, 100, 0);
      assert.deepEqual(events.map((e) => e.sid).sort(), ended.map((s) => handleOf(s.idHash)).sort());
    });

    it('concurrent rotations and revocations of one family: the session ends once, by the revocation, with one event; no reuse alarm', async () => {
      const f = await family();
      const seq = await store.lastRevocationSeq();
      const calls = [
        ...Array.from({ length: 4 }, () => store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1101 }))),
        ...Array.from({ length: 3 }, () => store.revokeRefreshFamily({ familyKeyHash: f.keyHash }, 'latchkey')),
      ];
      const results = await Promise.all(calls);
      const rotations = results.slice(0, 4) as Awaited<ReturnType<Store['rotateRefreshToken']>>[];
      assert.ok(rotations.every((o) => ['rotated', 'shared', 'unknown'].includes(o.outcome)), rotations.map((o) => o.outcome).join(','));
      assert.ok(rotations.filter((o) => o.outcome === 'rotated').length <= 1);
      assert.equal(results.slice(4).filter(Boolean).length, 1, 'one revocation got the session');
      assert.equal(await store.getSession(f.session.idHash), undefined);
      const events = await store.listRevocations(seq, 10, 0);
      assert.deepEqual(events.map((e) => e.detail.reason), ['refresh_token_revoked']);
    });

    it('many concurrent rotations of one token: exactly one rotates, the others share its successor, no reuse', async () => {
      const f = await family();
      const seqBefore = await store.lastRevocationSeq();
      const attempts = Array.from({ length: 10 }, () => rotation(f, f.tokenHash, { now: 1101 }));
      const outcomes = await Promise.all(attempts.map((r) => store.rotateRefreshToken(r)));
      const winners = outcomes.flatMap((o, i) => (o.outcome === 'rotated' ? [attempts[i]!] : []));
      assert.equal(winners.length, 1, outcomes.map((o) => o.outcome).join(','));
      const winner = winners[0]!;
      for (const o of outcomes) {
        if (o.outcome === 'rotated') continue;
        assert.equal(o.outcome, 'shared');
        assert.deepEqual(o.outcome === 'shared' && o.successorSealed, winner.successorSealed);
      }
      assert.ok(await store.getSession(f.session.idHash), 'the session lives');
      assert.equal((await store.findRefreshToken(winner.successorHash, f.keyHash))?.current, true);
      assert.equal(await store.lastRevocationSeq(), seqBefore, 'no revocation');
    });

    it('many concurrent replays after the grace window: the family ends once, with one revocation event', async () => {
      const f = await family();
      const r1 = rotation(f, f.tokenHash);
      await store.rotateRefreshToken(r1);
      const seqBefore = await store.lastRevocationSeq();
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => store.rotateRefreshToken(rotation(f, f.tokenHash, { now: 1200 }))));
      assert.ok(outcomes.some((o) => o.outcome === 'reused'));
      assert.ok(outcomes.every((o) => o.outcome === 'reused' || o.outcome === 'unknown'), outcomes.map((o) => o.outcome).join(','));
      assert.equal(await store.getSession(f.session.idHash), undefined);
      assert.equal(await store.findRefreshToken(r1.successorHash, f.keyHash), undefined);
      const events = await store.listRevocations(seqBefore, 10, 0);
      assert.deepEqual(events.map((e) => [e.kind, e.detail]), [['session', { initiator: 'policy', reason: 'refresh_token_reuse' }]]);
    });

    it('concurrent revocations of one family: one caller gets the session, one event', async () => {
      const f = await family();
      const seqBefore = await store.lastRevocationSeq();
      const results = await Promise.all(Array.from({ length: 6 }, () => store.revokeRefreshFamily({ familyKeyHash: f.keyHash }, 'latchkey')));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await store.listRevocations(seqBefore, 10, 0)).length, 1);
    });

    it('signing keys: concurrent schedulers of one rotation add one key', async () => {
      await store.addSigningKey(key('k0', 100));
      const added = await Promise.all(
        Array.from({ length: 6 }, (_, i) => store.addSigningKey(key(`next${i}`, 500), { unlessScheduledAfter: 100 })),
      );
      assert.equal(added.filter(Boolean).length, 1);
      assert.equal((await store.listSigningKeys()).length, 2);
    });

    it('signing keys: retiring writes one key event, once', async () => {
      await store.addSigningKey(key('k1', 100));
      const seqBefore = await store.lastRevocationSeq();
      await Promise.all([store.retireSigningKey('k1', 150), store.retireSigningKey('k1', 151)]);
      const events = await store.listRevocations(seqBefore, 10, 0);
      assert.deepEqual(events.map((e) => [e.kind, e.kid]), [['key', 'k1']]);
      assert.ok([150, 151].includes((await store.listSigningKeys())[0]!.retiredAt!), 'retired by whichever came first');
    });

    it('audit events: pruneAuditEvents forgets those older than the cutoff, and only those', async () => {
      for (const at of [100, 199, 200, 300]) await store.appendAuditEvent({ at, type: 'a', userId: null, session: null, ip: null, detail: {} });
      assert.equal(await store.pruneAuditEvents(200), 2);
      assert.deepEqual((await store.listAuditEvents({ limit: 10 })).map((e) => e.at), [300, 200]);
      assert.equal(await store.pruneAuditEvents(200), 0);
    });

    it('audit events: appended and listed newest first, filtered by user and type', async () => {
      await store.appendAuditEvent({ at: 1, type: 'a', userId: 'u1', session: 'h1', ip: '192.0.2.1', detail: { x: 1 } });
      await store.appendAuditEvent({ at: 2, type: 'b', userId: 'u1', session: null, ip: null, detail: {} });
      await store.appendAuditEvent({ at: 3, type: 'a', userId: 'u2', session: null, ip: null, detail: {} });
      assert.deepEqual((await store.listAuditEvents({ limit: 10 })).map((e) => e.at), [3, 2, 1]);
      const mine = await store.listAuditEvents({ userId: 'u1', type: 'a', limit: 10 });
      assert.equal(mine.length, 1);
      assert.deepEqual(mine[0]!.detail, { x: 1 });
      assert.equal(mine[0]!.session, 'h1');
      // pages: `before` an id gives the older events only
      const all = await store.listAuditEvents({ limit: 10 });
      assert.deepEqual((await store.listAuditEvents({ before: all[0]!.id, limit: 1 })).map((e) => e.at), [2]);
      assert.deepEqual((await store.listAuditEvents({ before: all[1]!.id, limit: 10 })).map((e) => e.at), [1]);
      assert.deepEqual(await store.listAuditEvents({ before: all[2]!.id, limit: 10 }), []);
    });
  });
}
