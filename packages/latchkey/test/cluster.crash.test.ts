/**
 * A node killed with SIGKILL in the middle of a stream of sign-ups spread over three
 * `latchkey serve` processes on one PostgreSQL database: every sign-up a client saw
 * acknowledged (201) was committed, so the account logs in through the surviving nodes and
 * its session works there; the sign-ups cut off by the kill either exist whole or not at all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Client } from './helpers.js';
import { createDatabase } from './postgres.js';
import { newEmail, PASSWORD } from './token-helpers.js';
import { explained, LEVEL, on, sessionStatus, startCluster, until, type Cluster, type Node } from './cluster/nodes.js';

const WORKERS = 6;
/** Sign-ups node 1 acknowledges before it is killed, and the survivors after. */
const BEFORE_KILL = 15;
const AFTER_KILL = 15;

let cluster: Cluster;

interface Attempt {
  email: string;
  node: Node;
  /** The status answered, or undefined when the request got no answer (the node died under it). */
  status: number | undefined;
  browser: Client;
}

// in a suite: its hooks run before the root's, so the nodes are gone before postgres.ts drops the database
describe('a node killed under a sign-up loop', () => {
  before(async () => {
    cluster = await startCluster({
      databaseUrl: await createDatabase(),
    });
  });
  after(() => cluster?.close());

  it('kill -9 of node 1 mid-stream: every acknowledged sign-up logs in through another node and its session works there; the unanswered ones exist whole or not at all', async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const nodes = cluster.nodes;
      const [n1, n2, n3] = nodes as [Node, Node, Node];
      const attempts: Attempt[] = [];
      let stop = false;
      const acked = (n: Node) => attempts.filter((a) => a.node === n && a.status === 201).length;
      const worker = async (w: number) => {
        for (let k = 0; !stop; k++) {
          const node = nodes[(w + k) % nodes.length]!;
          const a: Attempt = { email: newEmail(`crash${w}`), node, status: undefined, browser: new Client(node.url) };
          attempts.push(a);
          try {
            const res = await a.browser.signup(a.email, PASSWORD);
            await res.arrayBuffer();
            a.status = res.status;
          } catch {
            // no answer: the node died with the request, or was already gone
          }
        }
      };
      const loop = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
      try {
        await until(async () => acked(n1) >= BEFORE_KILL, true, false, 60_000);
        const survivorsBefore = acked(n2) + acked(n3);
        await n1.kill('SIGKILL');
        await until(async () => acked(n2) + acked(n3) >= survivorsBefore + AFTER_KILL, true, false, 60_000);
      } finally {
        stop = true;
        await loop;
      }

      assert.equal(n1.alive, false);
      const answered = attempts.filter((a) => a.status !== undefined);
      assert.deepEqual([...new Set(answered.map((a) => a.status))], [201], 'every answered sign-up succeeded');
      const ok = answered.filter((a) => a.status === 201);
      // each account through a node that did not acknowledge it (never the dead one)
      const elsewhere = (a: Attempt) => (a.node === n2 ? n3 : a.node === n3 ? n2 : attempts.indexOf(a) % 2 ? n2 : n3);
      for (const a of ok) {
        const res = await new Client(elsewhere(a).url).login(a.email, PASSWORD);
        assert.equal(res.status, 200, `${a.email}, acknowledged by node ${a.node.index + 1}, logs in through node ${elsewhere(a).index + 1}`);
        assert.equal(await sessionStatus(on(elsewhere(a), a.browser)), 200, `${a.email}: its sign-up session works through node ${elsewhere(a).index + 1}`);
      }
      const unanswered = attempts.filter((a) => a.status === undefined);
      const outcomes = await Promise.all(unanswered.map(async (a) => (await new Client(n2.url).login(a.email, PASSWORD)).status));
      for (const s of outcomes) assert.ok(s === 200 || s === 401, `an unanswered sign-up: login ${s}`);
      for (const n of [n2, n3]) {
        assert.ok(n.alive);
        assert.deepEqual(
          n.logs().filter((l) => l.level >= LEVEL.error).map((l) => l.msg),
          [],
          `node ${n.index + 1} logged no error`,
        );
      }
      t.diagnostic(
        `${ok.length} sign-ups acknowledged (${acked(n1)} by node 1 before the kill), ${unanswered.length} unanswered, ` +
          `of which ${outcomes.filter((s) => s === 200).length} were committed`,
      );
    });
  });
});
