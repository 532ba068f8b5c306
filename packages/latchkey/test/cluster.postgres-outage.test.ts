/**
 * PostgreSQL stopped and started again under three running `latchkey serve` processes. The
 * database is on a private PostgreSQL server of this file's own (scripts/pg-server.mjs),
 * never the suite's shared one, which other files use meanwhile. While it is down every node
 * answers what needs the store with 503 and Retry-After, never a 500, and keeps serving what
 * needs none; once it is back every node serves the same sessions and tokens again, and
 * revocations reach every node again, with no node restarted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPostgres, type PostgresServer } from '../../../scripts/pg-server.mjs';
import { Client, json } from './helpers.js';
import { createDatabaseOn } from './postgres.js';
import { form, loginTokens, newEmail, PASSWORD, type TokenResponse } from './token-helpers.js';
import { explained, LEVEL, on, sessionStatus, startCluster, until, type Cluster, type Node } from './cluster/nodes.js';

const DEADLINE_MS = 10_000;
const UNAVAILABLE = 'postgres unavailable: requests that need the store answer 503 until it is back';
const RECOVERED = 'postgres recovered';
const LISTEN_LOST = "revocation feed: listening for other nodes' events failed; polling every 250 ms until it reconnects";

const dir = mkdtempSync(join(tmpdir(), 'latchkey-cluster-pg-'));
let server: PostgresServer;
let cluster: Cluster;

const refreshAt = (node: Node, rt: string) => form(node, '/oauth/token', { grant_type: 'refresh_token', refresh_token: rt, client_id: 'latchkey' });

/**
 * The first answer that is not 200: a node trusts its session cache for up to a second
 * after its revocation feed last read everything, so a cached session may still be answered
 * from memory just after the database went away.
 */
async function onceNot200(request: () => Promise<Response>): Promise<Response> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const res = await request();
    if (res.status !== 200 || Date.now() > deadline) return res;
    await res.arrayBuffer();
    await sleep(100);
  }
}

async function assertUnavailable(res: Response, what: string): Promise<void> {
  assert.equal(res.status, 503, what);
  assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8', what);
  assert.equal(Number(res.headers.get('retry-after')), 5, what);
  assert.equal((await json(res)).code, 'store_unavailable', what);
}

const logged = (n: Node, msg: string) => n.logs().filter((l) => l.msg === msg);

// in a suite: the nodes are gone before the server they use is stopped
describe('PostgreSQL stopped and started again under three nodes', () => {
  before(async () => {
    server = await startPostgres(dir);
    cluster = await startCluster({
      databaseUrl: await createDatabaseOn(server.url),
    });
  });
  after(async () => {
    await cluster?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every node: 503 problem+json with Retry-After while it is down (temporarily_unavailable under /oauth), no 500; each node logs the outage once and its end once; after, the same session and token work on every node, revocations reach every node, no node restarted', async (t: TestContext) => {
    await explained(t, cluster, async () => {
      const nodes = cluster.nodes;
      const pids = nodes.map((n) => n.pid);
      const email = newEmail('pg');
      const browser = new Client(nodes[0]!.url);
      assert.equal((await browser.signup(email, PASSWORD)).status, 201);
      const laptop = new Client(nodes[0]!.url, 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36');
      assert.equal((await laptop.login(email, PASSWORD)).status, 200);
      let rt = (await loginTokens(nodes[1]!, email)).refresh_token!;
      // every node has served (and cached) both browser sessions
      for (const n of nodes) for (const b of [browser, laptop]) assert.equal(await sessionStatus(on(n, b)), 200);

      await server.stop();
      for (const n of nodes) {
        const what = `node ${n.index + 1}`;
        await assertUnavailable(await onceNot200(() => on(n, browser).get('/v1/session')), `${what}: GET /v1/session`);
        await assertUnavailable(await on(n, browser).get('/v1/sessions'), `${what}: GET /v1/sessions`);
        const other = new Client(n.url);
        await assertUnavailable(await other.login(email, PASSWORD), `${what}: login`);
        assert.equal(other.cookies.size, 0, `${what}: no cookie`);
        const grant = await refreshAt(n, rt);
        assert.equal(grant.status, 503, `${what}: refresh grant`);
        assert.equal(Number(grant.headers.get('retry-after')), 5);
        assert.equal((await json(grant)).error, 'temporarily_unavailable');
        // what needs no store: health, and the keys (tokens issued before stay verifiable)
        assert.equal((await fetch(`${n.url}/healthz`)).status, 200, `${what}: /healthz`);
        const jwks = await fetch(`${n.url}/.well-known/jwks.json`);
        assert.equal(jwks.status, 200);
        assert.ok((await json<{ keys: unknown[] }>(jwks)).keys.length >= 1);
        assert.equal(logged(n, UNAVAILABLE).length, 1, `${what}: the outage logged once`);
        assert.equal(logged(n, UNAVAILABLE)[0]!.level, LEVEL.error);
      }

      await server.start();
      for (const n of nodes) {
        const what = `node ${n.index + 1}`;
        // the first request after the restart may still meet a connection the server closed: 503, never 500
        await until(() => sessionStatus(on(n, browser)), 200, 503, DEADLINE_MS);
        assert.equal(await sessionStatus(on(n, laptop)), 200, `${what}: the other session`);
        assert.equal((await new Client(n.url).login(email, PASSWORD)).status, 200, `${what}: login`);
        const again = await refreshAt(n, rt);
        assert.equal(again.status, 200, `${what}: refresh grant`);
        rt = (await json<TokenResponse>(again)).refresh_token!;
        await until(async () => logged(n, RECOVERED).length, 1, 0, DEADLINE_MS);
      }

      // the LISTEN connections were lost with the server: revocations still reach every node
      const list = await json<{ sessions: { handle: string; current: boolean }[] }>(await on(nodes[1]!, laptop).get('/v1/sessions'));
      const laptopHandle = list.sessions.find((s) => s.current)!.handle;
      assert.equal((await on(nodes[1]!, browser).delete(`/v1/sessions/${laptopHandle}`)).status, 204);
      for (const n of nodes) await until(() => sessionStatus(on(n, laptop)), 401, 200, DEADLINE_MS);

      assert.deepEqual(
        nodes.map((n) => n.pid),
        pids,
      );
      for (const n of nodes) {
        assert.ok(n.alive, `node ${n.index + 1} is running`);
        // the outage, and the LISTEN connection lost with it, once each (not once per reconnect attempt); no 500
        const errors = n.logs().filter((l) => l.level >= LEVEL.error).map((l) => l.msg);
        assert.deepEqual(errors.sort(), [UNAVAILABLE, LISTEN_LOST].sort(), `node ${n.index + 1}: errors logged`);
        assert.equal(logged(n, RECOVERED).length, 1);
        assert.ok(!n.output().includes(new URL(server.url).password), 'no database password in the logs');
      }
    });
  });
});
