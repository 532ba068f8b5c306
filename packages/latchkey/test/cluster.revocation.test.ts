/**
 * Revocation across three `latchkey serve` processes on one PostgreSQL database (and one
 * Redis), behind one issuer URL: a session revoked through one node is refused by another; a
 * form one node rendered is accepted by another; and a revocation feed subscriber moved from
 * one node to another mid-stream, with its Last-Event-ID, misses none of the events the three
 * nodes write meanwhile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRevocationFeed, type RevocationFeed } from '@latchkey/verify';
import pg from 'pg';
import { Client, json } from './helpers.js';
import { FEED_CLIENT, FEED_CLIENTS } from './feed-helpers.js';
import { createDatabase } from './postgres.js';
import { newEmail, PASSWORD } from './token-helpers.js';
import { admin, explained, on, sessionStatus, startCluster, until, type Cluster, type Node } from './cluster/nodes.js';

/** Generous, for a loaded two-core machine: the delay is measured and reported (t.diagnostic), not asserted below this. */
const DEADLINE_MS = 10_000;
const LAPTOP = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';

let cluster: Cluster;
let databaseUrl: string;
let db: pg.Client;

// in a suite: its hooks run before the root's, so the nodes are gone before postgres.ts drops the database
describe('three nodes on one database behind one issuer URL', () => {
  before(async () => {
    databaseUrl = await createDatabase();
    cluster = await startCluster({
      databaseUrl,
      config: { clients: FEED_CLIENTS, revocation: { heartbeatSeconds: 1 } },
    });
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await cluster?.close();
  });

  /** A user signed up through `node`: that browser, and the email. */
  async function user(node: Node, tag: string): Promise<{ browser: Client; email: string; id: string }> {
    const email = newEmail(tag);
    const browser = new Client(node.url);
    const res = await browser.signup(email, PASSWORD);
    assert.equal(res.status, 201);
    return { browser, email, id: (await json<{ user: { id: string } }>(res)).user.id };
  }

  async function handleOfOther(browser: Client): Promise<string> {
    const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await browser.get('/v1/sessions'));
    return list.sessions.find((s) => !s.current)!.handle;
  }

  describe('a session revoked through one node', () => {
    it('signed in through node 1, revoked through node 2: refused by node 3 within 10 s, by node 2 at once (5 rounds; delays reported)', async (t: TestContext) => {
      await explained(t, cluster, async () => {
        const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
        const delays: number[] = [];
        for (let round = 0; round < 5; round++) {
          const u = await user(n1, 'rev');
          const laptop = new Client(n1.url, LAPTOP);
          assert.equal((await laptop.login(u.email, PASSWORD)).status, 200);
          // node 3 has served (and cached) the laptop's session before the revocation
          const laptopOn3 = on(n3, laptop);
          assert.equal(await sessionStatus(laptopOn3), 200);
          assert.equal(await sessionStatus(laptopOn3), 200);

          const phoneOn2 = on(n2, u.browser);
          assert.equal((await phoneOn2.delete(`/v1/sessions/${await handleOfOther(phoneOn2)}`)).status, 204);
          delays.push(await until(() => sessionStatus(laptopOn3), 401, 200, DEADLINE_MS));
          assert.equal(await sessionStatus(on(n2, laptop)), 401, 'node 2 refuses what it revoked at once');
          await until(() => sessionStatus(laptop), 401, 200, DEADLINE_MS);
          for (const n of [n1, n2, n3]) assert.equal(await sessionStatus(on(n, u.browser)), 200, `node ${n.index + 1} keeps the session that revoked it`);
        }
        t.diagnostic(`revoked through node 2, refused by node 3 after ${delays.map((d) => d.toFixed(1)).join(', ')} ms`);
      });
    });
  });

  describe('one issuer URL in front of every node', () => {
    it('the sign-out form of the account page node 1 rendered is accepted by node 2 (Origin: the issuer), and the session then ends on every node', async (t: TestContext) => {
      await explained(t, cluster, async () => {
        const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
        const u = await user(n1, 'form');
        const page = await u.browser.get('/account');
        assert.equal(page.status, 200);
        const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
        assert.ok(token);
        // a browser behind the balancer sends the issuer's origin, whichever node answers
        const res = await on(n2, u.browser).post('/signout', new URLSearchParams({ _csrf: token }).toString(), {
          'content-type': 'application/x-www-form-urlencoded',
          origin: cluster.issuer,
          'sec-fetch-site': 'same-origin',
        });
        assert.equal(res.status, 303);
        assert.equal(res.headers.get('location'), '/signin?signedout=1');
        for (const n of [n1, n2, n3]) await until(() => sessionStatus(on(n, u.browser)), 401, 200, DEADLINE_MS);
      });
    });
  });

  interface Row {
    seq: number;
    kind: string;
    sid: string | null;
    user_id: string | null;
  }

  describe('a revocation feed subscriber moved to another node mid-stream', () => {
    let feed: RevocationFeed | undefined;
    after(() => feed?.close());

    it('reconnects to node 2 with its Last-Event-ID and applies every event the three nodes wrote, once each, in order, none missing', async (t: TestContext) => {
      await explained(t, cluster, async () => {
        const nodes = cluster.nodes;
        const b = cluster.balancer;
        b.target = 0;
        const applied: { seq: number; revocations: readonly { kind: string; sid?: string; sub?: string }[] }[] = [];
        feed = createRevocationFeed({
          issuer: cluster.issuer,
          clientId: FEED_CLIENT.id,
          clientSecret: FEED_CLIENT.secret,
          maxLifetimeSeconds: 900,
          onEvent: (e) => applied.push(e),
        });
        await feed.ready();
        const users = await Promise.all(nodes.map((n) => user(n, `feed${n.index}`)));

        // each node ends sessions (logout) and changes roles (admin), all three at once
        const ROUNDS = 12;
        let writing = true;
        const writer = async (n: Node, u: { email: string; id: string }) => {
          for (let i = 0; i < ROUNDS; i++) {
            const laptop = new Client(n.url, LAPTOP);
            assert.equal((await laptop.login(u.email, PASSWORD)).status, 200);
            assert.equal((await laptop.post('/v1/logout', undefined, { 'content-type': 'application/json' })).status, 204);
            if (i % 3 === 0) assert.equal((await admin(n, 'PUT', `/v1/admin/users/${u.id}/roles`, { roles: [`r${i}`] })).status, 200);
          }
        };
        const writers = Promise.all(nodes.map((n, i) => writer(n, users[i]!))).finally(() => {
          writing = false;
        });

        // mid-stream: once some live events have arrived, the balancer drains node 1 and sends new connections to node 2
        const liveFrom = applied.length;
        while (applied.length < liveFrom + 10 && writing) await sleep(5);
        assert.ok(writing, 'the writers were still running when the subscriber was moved');
        const atCut = feed.position;
        const connectionsBefore = b.connections.length;
        b.target = 1;
        b.cut(0);
        await writers;

        const rows = (await db.query<Row>('SELECT seq::int, kind, sid, user_id FROM revocations ORDER BY seq')).rows;
        const last = rows.at(-1)!.seq;
        await until(async () => feed!.position >= last, true, false, DEADLINE_MS);

        // it reconnected through the balancer to node 2, resuming after the last event it had applied
        const feedRequest = (sent: string) => {
          const at = sent.indexOf('GET /v1/revocations/events');
          return at < 0 ? undefined : sent.slice(at, sent.indexOf('\r\n\r\n', at));
        };
        const resumed = b.connections.slice(connectionsBefore).filter((c) => feedRequest(c.sent) !== undefined);
        assert.ok(resumed.length >= 1, 'a new feed connection');
        assert.ok(resumed.every((c) => c.node === 1), 'to node 2');
        const lastEventId = Number(/\r\nlast-event-id: (\d+)(\r\n|$)/i.exec(feedRequest(resumed[0]!.sent)!)?.[1]);
        assert.ok(lastEventId >= atCut, `Last-Event-ID ${lastEventId} resumes at or after the position at the cut (${atCut})`);

        // every event in the database, applied once each, in order: nothing lost in the move
        assert.deepEqual(
          applied.map((e) => e.seq),
          rows.map((r) => r.seq),
        );
        assert.ok(rows.some((r) => r.seq > lastEventId), 'events were written after the move');
        for (const [i, row] of rows.entries()) {
          const got = applied[i]!.revocations;
          if (row.kind === 'session') assert.ok(got.some((r) => r.kind === 'session' && r.sid === row.sid), `seq ${row.seq}: session ${row.sid}`);
          else if (row.kind === 'claims' || row.kind === 'user') assert.ok(got.some((r) => r.kind === 'subject' && r.sub === row.user_id), `seq ${row.seq}: user ${row.user_id}`);
        }
        const kinds = new Set(rows.map((r) => r.kind));
        assert.ok(kinds.has('session') && kinds.has('claims'));
        assert.equal(feed.rejected, 0);
        assert.equal(feed.healthy, true);
        t.diagnostic(`${rows.length} events; moved at position ${atCut}, resumed from Last-Event-ID ${lastEventId}`);
      });
    });
  });
});
