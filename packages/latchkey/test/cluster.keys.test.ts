/**
 * Scheduled signing-key rotation on three `latchkey serve` processes sharing one PostgreSQL
 * database. Every node re-reads the key schedule each second and rotates when the next key
 * is due; the store's key lock lets one of them add it. The nodes start with an interval far
 * longer than the test; once all three run, the first key's start is moved back in the store
 * (the nodes re-read it within a second) so that the next key is due a few seconds later,
 * as if the key had been signing that long: the due time falls when all three are running,
 * however long they took to start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Client, json } from './helpers.js';
import { createDatabase } from './postgres.js';
import { loginTokens, newEmail, PASSWORD } from './token-helpers.js';
import { admin, explained, LEVEL, startCluster, until, type Cluster, type Node } from './cluster/nodes.js';

const INTERVAL = 3600;
const PRE_PUBLISH = 10;
/** Seconds from moving the schedule to the rotation's due time: every node re-reads it before. */
const DUE_IN = 5;

let cluster: Cluster;
let db: pg.Client;
let email: string;

interface KeyRow {
  kid: string;
  created_at: number;
  activates_at: number;
  deactivates_at: number | null;
}

const keys = async () =>
  (await db.query<KeyRow>('SELECT kid, created_at::int, activates_at::int, deactivates_at::int FROM signing_keys ORDER BY activates_at, kid')).rows;

async function jwksOf(node: Node): Promise<{ body: string; etag: string | null; kids: string[] }> {
  const res = await fetch(`${node.url}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  const body = await res.text();
  return { body, etag: res.headers.get('etag'), kids: (JSON.parse(body) as { keys: { kid: string }[] }).keys.map((k) => k.kid) };
}

/** The kid of an access token minted by `node` now (a token client's login). */
async function signingKid(node: Node): Promise<string> {
  const { access_token } = await loginTokens(node, email);
  return (JSON.parse(Buffer.from(access_token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
}

// in a suite: its hooks run before the root's, so the nodes are gone before postgres.ts drops the database
describe('scheduled key rotation on three nodes', () => {
  before(async () => {
    const databaseUrl = await createDatabase();
    cluster = await startCluster({
      databaseUrl,
      config: { keys: { rotationIntervalSeconds: INTERVAL, prePublishSeconds: PRE_PUBLISH } },
    });
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    email = newEmail('keys');
    assert.equal((await new Client(cluster.nodes[0]!.url).signup(email, PASSWORD)).status, 201);
  });
  after(async () => {
    await db?.end();
    await cluster?.close();
  });

  it('on schedule, exactly one of the three running nodes adds the next key; all three then serve the same JWKS, byte for byte', async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const [first, ...others] = await keys();
      assert.ok(first);
      assert.deepEqual(others, [], 'one key at start');
      const due = Math.floor(Date.now() / 1000) + DUE_IN;
      const activatedAt = due - (INTERVAL - PRE_PUBLISH);
      await db.query('UPDATE signing_keys SET activates_at = $1 WHERE kid = $2', [activatedAt, first.kid]);

      await until(async () => (await keys()).length > 1, true, false, (DUE_IN + 20) * 1000);
      for (const n of cluster.nodes) assert.ok(n.alive, `node ${n.index + 1} was running`);
      // every node has re-read the schedule a few times since: none added another key
      await sleep(3000);
      const after = await keys();
      assert.equal(after.length, 2, 'exactly one new key');
      const next = after[1]!;
      assert.ok(next.created_at >= due, `made when due (${due}), not before (${next.created_at})`);
      assert.ok(next.activates_at >= activatedAt + INTERVAL, 'it signs once the first key\'s interval is over');
      assert.ok(next.activates_at - next.created_at >= PRE_PUBLISH, 'published a full pre-publish period before it signs');
      assert.equal(after[0]!.deactivates_at, next.activates_at, 'the first key hands over to it');
      const rotated = await json<{ events: { detail: { kid: string; why: string } }[] }>(await admin(cluster.nodes[0]!, 'GET', '/v1/admin/audit?type=key_rotated'));
      assert.deepEqual(
        rotated.events.map((e) => [e.detail.kid, e.detail.why]),
        [[next.kid, 'scheduled']],
      );

      const served = await Promise.all(cluster.nodes.map(jwksOf));
      for (const s of served) assert.deepEqual(s.kids.sort(), [first.kid, next.kid].sort());
      assert.equal(new Set(served.map((s) => s.body)).size, 1, 'the same JWKS body on every node');
      assert.equal(new Set(served.map((s) => s.etag)).size, 1, 'and the same ETag');
    });
  });

  it(
    'once the new key is due to sign, every node signs with it, and no node logged an error',
    async (t: TestContext) => {
      await explained(t, cluster, async () => {
        const [, next] = await keys();
        assert.ok(next, 'the rotation of the first test happened');
        const wait = next.activates_at * 1000 - Date.now();
        // a second past it: every node has re-read the schedule since
        if (wait > -1500) await sleep(wait + 1500);
        for (const n of cluster.nodes) assert.equal(await signingKid(n), next.kid, `node ${n.index + 1} signs with the new key`);
        for (const n of cluster.nodes) {
          assert.deepEqual(
            n.logs().filter((l) => l.level >= LEVEL.error).map((l) => l.msg),
            [],
            `node ${n.index + 1} logged no error`,
          );
        }
      });
    },
  );
});
