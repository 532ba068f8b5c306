/**
 * The at-rest half of the store contract: the node-wide secrets and the signing keys' private
 * halves (keys/at-rest.ts seals them; the store keeps the text as given). Every adapter runs it,
 * with `peer()` opening another connection to the same store, as another node would: on
 * PostgreSQL each peer is a pool of its own, so "at once" is concurrent transactions.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { NewSigningKey, Store } from '../src/store/store.js';

const NODES = 8;

export function atRestStoreContract(name: string, make: () => Promise<{ store: Store; peer: () => Store }>) {
  describe(`store contract (at rest): ${name}`, () => {
    let store: Store;
    let open: () => Store;
    const peers: Store[] = [];
    beforeEach(async () => {
      ({ store, peer: open } = await make());
      await store.migrate();
    });
    afterEach(async () => {
      await Promise.all(peers.splice(0).map((p) => p.close()));
      await store.close();
    });

    /** `n` other nodes on the same store, migrated (a no-op by now). */
    async function nodes(n: number): Promise<Store[]> {
      const made = Array.from({ length: n }, () => open());
      peers.push(...made);
      for (const p of made) await p.migrate();
      return made;
    }

    const key = (kid: string, activatesAt: number, privateKey = `{"v":1,"kid":"${kid}","d":"${randomBytes(8).toString('hex')}"}`): NewSigningKey => ({
      kid,
      alg: 'EdDSA',
      publicJwk: `{"kid":"${kid}"}`,
      createdAt: activatesAt - 10,
      activatesAt,
      deactivatesAt: null,
      retiredAt: null,
      privateKey,
    });
    const candidate = () => randomBytes(32).toString('base64url');

    it('secrets: none in a new store; addAtRest stores them and returns what is stored', async () => {
      assert.deepEqual(await store.readAtRest(), { secrets: {}, privateKeys: {} });
      const secrets = { 'csrf.key': candidate(), 'refresh.key': candidate(), 'device.key': candidate() };
      const stored = await store.addAtRest({ secrets, privateKeys: {} });
      assert.deepEqual(stored, { secrets, privateKeys: {}, unknownKids: [] });
      assert.deepEqual(await store.readAtRest(), { secrets, privateKeys: {} });
    });

    it('secrets: addAtRest never replaces a stored secret: the stored one is returned, others are added', async () => {
      const first = candidate();
      await store.addAtRest({ secrets: { 'csrf.key': first }, privateKeys: {} });
      const refresh = candidate();
      const stored = await store.addAtRest({ secrets: { 'csrf.key': candidate(), 'refresh.key': refresh }, privateKeys: {} });
      assert.deepEqual(stored.secrets, { 'csrf.key': first, 'refresh.key': refresh });
    });

    it(`secrets: ${NODES} nodes adding at once on an empty store all get the same values, one caller's each`, async () => {
      const others = await nodes(NODES);
      const offers = others.map(() => ({ 'csrf.key': candidate(), 'refresh.key': candidate(), 'device.key': candidate() }));
      const results = await Promise.all(others.map((p, i) => p.addAtRest({ secrets: offers[i]!, privateKeys: {} })));
      for (const r of results) assert.deepEqual(r.secrets, results[0]!.secrets);
      for (const name of ['csrf.key', 'refresh.key', 'device.key'] as const) {
        assert.ok(offers.some((o) => o[name] === results[0]!.secrets[name]), `${name} is one of the offered values`);
      }
      assert.deepEqual((await store.readAtRest()).secrets, results[0]!.secrets);
    });

    it('private keys: addSigningKey stores the private half as given; getPrivateKey and readAtRest return it, listSigningKeys never does', async () => {
      const k = key('k1', 100);
      assert.equal(await store.addSigningKey(k), true);
      assert.equal(await store.getPrivateKey('k1'), k.privateKey);
      assert.deepEqual((await store.readAtRest()).privateKeys, { k1: k.privateKey });
      const [record] = await store.listSigningKeys();
      assert.deepEqual(record, {
        kid: 'k1',
        alg: 'EdDSA',
        publicJwk: k.publicJwk,
        createdAt: 90,
        activatesAt: 100,
        deactivatesAt: null,
        retiredAt: null,
      });
      assert.ok(!JSON.stringify(await store.listSigningKeys()).includes(k.privateKey));
      assert.equal(await store.getPrivateKey('nope'), undefined);
      // another node reads the same private half
      const [other] = await nodes(1);
      assert.equal(await other!.getPrivateKey('k1'), k.privateKey);
    });

    it('private keys: retiring deletes the private half in the same call; forgetPrivateKeys deletes others, once', async () => {
      await store.addSigningKey(key('k1', 100));
      await store.addSigningKey(key('k2', 200));
      await store.addSigningKey(key('k3', 300));
      await store.retireSigningKey('k1', 150);
      assert.equal(await store.getPrivateKey('k1'), undefined);
      assert.equal(await store.forgetPrivateKeys(['k2', 'k1', 'nope']), 1);
      assert.equal(await store.forgetPrivateKeys(['k2']), 0);
      assert.equal(await store.forgetPrivateKeys([]), 0);
      assert.equal(await store.getPrivateKey('k2'), undefined);
      assert.deepEqual(Object.keys((await store.readAtRest()).privateKeys), ['k3']);
      assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid), ['k1', 'k2', 'k3'], 'the records stay');
    });

    it('addAtRest: sets a key row’s missing private half, keeps one it has, skips a retired key, reports kids with no row', async () => {
      const k1 = key('k1', 100);
      await store.addSigningKey(k1);
      await store.addSigningKey(key('k2', 200));
      await store.forgetPrivateKeys(['k2']);
      await store.addSigningKey(key('k3', 300));
      await store.retireSigningKey('k3', 250);
      const stored = await store.addAtRest({ secrets: {}, privateKeys: { k1: 'x1', k2: 'x2', k3: 'x3', nokey: 'x4' } });
      assert.deepEqual(stored.privateKeys, { k1: k1.privateKey, k2: 'x2' });
      assert.deepEqual(stored.unknownKids, ['nokey']);
      assert.equal(await store.getPrivateKey('k3'), undefined);
    });

    it(`replaceAtRest replaces only a value still as read: of ${NODES} nodes replacing at once, one does`, async () => {
      const from = candidate();
      await store.addAtRest({ secrets: { 'csrf.key': from }, privateKeys: {} });
      await store.addSigningKey(key('k1', 100, 'plain-k1'));
      assert.equal(await store.replaceAtRest([{ secret: 'csrf.key', from: 'not what is stored', to: candidate() }]), 0);
      assert.equal(await store.replaceAtRest([]), 0);
      const others = await nodes(NODES);
      const tos = others.map(() => candidate());
      const counts = await Promise.all(
        others.map((p, i) =>
          p.replaceAtRest([
            { secret: 'csrf.key', from, to: tos[i]! },
            { kid: 'k1', from: 'plain-k1', to: `sealed-k1-${i}` },
          ]),
        ),
      );
      assert.deepEqual(counts.filter((c) => c > 0), [2], 'one node replaced both, the others none');
      const winner = counts.findIndex((c) => c === 2);
      const now = await store.readAtRest();
      assert.equal(now.secrets['csrf.key'], tos[winner]);
      assert.equal(now.privateKeys.k1, `sealed-k1-${winner}`);
    });

    it(`signing keys: ${NODES} nodes scheduling one rotation at once add exactly one key, with its private half`, async () => {
      await store.addSigningKey(key('k0', 100));
      const others = await nodes(NODES);
      const offered = others.map((_, i) => key(`next${i}`, 500));
      const added = await Promise.all(others.map((p, i) => p.addSigningKey(offered[i]!, { unlessScheduledAfter: 100 })));
      assert.equal(added.filter(Boolean).length, 1);
      const winner = added.indexOf(true);
      assert.deepEqual((await store.listSigningKeys()).map((k) => k.kid), ['k0', `next${winner}`]);
      assert.deepEqual(await store.readAtRest().then((r) => r.privateKeys), {
        k0: (await store.getPrivateKey('k0'))!,
        [`next${winner}`]: offered[winner]!.privateKey,
      });
    });

    it(`signing keys: ${NODES} nodes starting at once on a store with no key add exactly one first key`, async () => {
      const others = await nodes(NODES);
      // their clocks a second apart, as nodes' may be
      const added = await Promise.all(others.map((p, i) => p.addSigningKey(key(`first${i}`, 100 + (i % 2)), { unlessSigningFrom: 100 + (i % 2) })));
      assert.equal(added.filter(Boolean).length, 1);
      assert.equal((await store.listSigningKeys()).length, 1);
    });

    it('signing keys: unlessSigningFrom counts a key of the same algorithm signing then or later, not one that stopped or another algorithm', async () => {
      await store.addSigningKey(key('old', 100));
      await store.addSigningKey(key('cur', 200));
      assert.equal(await store.addSigningKey({ ...key('rsa', 300), alg: 'RS256' }, { unlessSigningFrom: 150 }), true, 'another algorithm');
      assert.equal(await store.addSigningKey(key('x1', 400), { unlessSigningFrom: 150 }), false, 'cur signs at 150 and later');
      await store.retireSigningKey('cur', 210);
      await store.retireSigningKey('rsa', 210);
      // old stopped at 200 (cur's start): nothing of EdDSA signs at 250 or later
      assert.equal(await store.addSigningKey(key('x2', 250), { unlessSigningFrom: 250 }), true);
    });
  });
}
