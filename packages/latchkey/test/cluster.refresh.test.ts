/**
 * Refresh-token rotation across three `latchkey serve` processes on one PostgreSQL database:
 * concurrent refreshes of one token spread over the nodes share one successor and raise no
 * reuse alarm, and a replay of a rotated token after the grace window ends the family
 * whichever node it reaches. Requests are made by oauth4webapi (the RFC 6749 refresh grant)
 * against each node's token endpoint, found from the metadata the shared issuer URL serves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import pg from 'pg';
import { Client, json } from './helpers.js';
import { createDatabase } from './postgres.js';
import { insecure, loginTokens, newEmail, PASSWORD, type TokenResponse } from './token-helpers.js';
import { admin, explained, startCluster, type Cluster, type Node } from './cluster/nodes.js';

/** Wide, so that none of the concurrent refreshes arrives past it on a loaded machine. */
const GRACE = 10;
const CONCURRENT = 30;
const client: oauth.Client = { client_id: 'latchkey' };

let cluster: Cluster;
let databaseUrl: string;
let db: pg.Client;
/** The metadata, as any client finds it at the issuer (the balancer). */
let metadata: oauth.AuthorizationServer;

// in a suite: its hooks run before the root's, so the nodes are gone before postgres.ts drops the database
describe('refresh tokens on three nodes', () => {
  before(async () => {
    databaseUrl = await createDatabase();
    cluster = await startCluster({
      databaseUrl,
      config: { refresh: { graceSeconds: GRACE } },
    });
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const issuer = new URL(cluster.issuer);
    metadata = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oauth2' }));
  });
  after(async () => {
    await db?.end();
    await cluster?.close();
  });

  /** The issuer's metadata with the token endpoint of `node` (as if the balancer had picked it). */
  const at = (node: Node): oauth.AuthorizationServer => ({
    ...metadata,
    token_endpoint: metadata.token_endpoint!.replace(cluster.issuer, node.url),
  });

  async function refresh(node: Node, refreshToken: string): Promise<oauth.TokenEndpointResponse> {
    const as = at(node);
    const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, insecure);
    return oauth.processRefreshTokenResponse(as, client, res);
  }

  async function refusedAt(node: Node, refreshToken: string): Promise<void> {
    await assert.rejects(refresh(node, refreshToken), (err: unknown) => {
      assert.ok(err instanceof oauth.ResponseBodyError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.error, 'invalid_grant');
      return true;
    });
  }

  /** A user signed up through `node`, and a token client's login (POST /v1/tokens) through it. */
  async function loggedIn(node: Node): Promise<{ userId: string; tokens: TokenResponse; sid: string }> {
    const email = newEmail('refresh');
    const res = await new Client(node.url).signup(email, PASSWORD);
    assert.equal(res.status, 201);
    const userId = (await json<{ user: { id: string } }>(res)).user.id;
    const tokens = await loginTokens(node, email);
    const sid = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()).sid as string;
    return { userId, tokens, sid };
  }

  async function reuseAlarms(userId: string): Promise<number> {
    const res = await admin(cluster.nodes[0]!, 'GET', `/v1/admin/audit?userId=${userId}&type=refresh_reuse_detected`);
    assert.equal(res.status, 200);
    return (await json<{ events: unknown[] }>(res)).events.length;
  }

  /** Revocation events the store holds for session `sid`. */
  async function revocationsOf(sid: string): Promise<{ kind: string; detail: { reason?: string } }[]> {
    return (await db.query('SELECT kind, detail FROM revocations WHERE sid = $1', [sid])).rows;
  }

  async function sessionHandles(userId: string): Promise<string[]> {
    const res = await admin(cluster.nodes[1]!, 'GET', `/v1/admin/users/${userId}/sessions`);
    assert.equal(res.status, 200);
    return (await json<{ sessions: { handle: string }[] }>(res)).sessions.map((s) => s.handle);
  }

  it(`${CONCURRENT} concurrent refreshes of one token spread over the three nodes: all succeed with one successor, no reuse alarm, no revocation; the family lives on`, async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const nodes = cluster.nodes;
      const { userId, tokens, sid } = await loggedIn(nodes[0]!);
      const results = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => refresh(nodes[i % nodes.length]!, tokens.refresh_token!)));
      const successors = new Set(results.map((r) => r.refresh_token));
      assert.equal(successors.size, 1, 'one successor');
      const [successor] = successors;
      assert.ok(successor && successor !== tokens.refresh_token);
      assert.equal(new Set(results.map((r) => r.access_token)).size, CONCURRENT, 'each caller gets its own access token');

      assert.equal(await reuseAlarms(userId), 0);
      assert.deepEqual(await revocationsOf(sid), []);
      assert.ok((await sessionHandles(userId)).includes(sid), 'the family\'s session lives');
      // the one successor carries on, on every node in turn
      let rt = successor;
      for (const n of nodes) rt = (await refresh(n, rt)).refresh_token!;
      assert.equal(await reuseAlarms(userId), 0);
      for (const n of nodes) assert.equal(n.logs().filter((l) => l.level >= 50).length, 0, `node ${n.index + 1} logged no error`);
    });
  });

  it('a replay of the old token after the grace window kills the family, whichever node sees it (one family replayed at each)', async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const nodes = cluster.nodes;
      const n = nodes.length;
      // family k: logged in through node k, refreshed through node k+1, its first token replayed at node k+2
      const families = await Promise.all(
        nodes.map(async (node, k) => {
          const f = await loggedIn(node);
          const next = await refresh(nodes[(k + 1) % n]!, f.tokens.refresh_token!);
          return { ...f, next: next.refresh_token!, replayAt: nodes[(k + 2) % n]! };
        }),
      );
      // rotation times are whole seconds: past the window once GRACE + 1 seconds have gone by
      await sleep((GRACE + 1) * 1000 + 100);
      await Promise.all(families.map((f) => refusedAt(f.replayAt, f.tokens.refresh_token!)));

      for (const f of families) {
        // the newest token dies with its family, on every node
        for (const node of nodes) await refusedAt(node, f.next);
        assert.equal(await reuseAlarms(f.userId), 1, `family replayed at node ${f.replayAt.index + 1}: one reuse alarm`);
        const events = await revocationsOf(f.sid);
        assert.equal(events.length, 1, 'one revocation event');
        assert.equal(events[0]!.kind, 'session');
        assert.equal(events[0]!.detail.reason, 'refresh_token_reuse');
        assert.ok(!(await sessionHandles(f.userId)).includes(f.sid), 'the family\'s session is gone');
      }
    });
  });
});
