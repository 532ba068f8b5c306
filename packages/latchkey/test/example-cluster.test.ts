/**
 * examples/cluster run as its README says: `node examples/cluster/start.mjs`, a child process that
 * starts PostgreSQL, Redis, three `latchkey serve` nodes and a round-robin balancer (HAProxy, and
 * the Node balancer it falls back on), then answers the commands it reads on stdin. Everything is
 * reached through what the script prints, as a person would: the URL, the nodes' addresses, the pids.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createVerifier } from '@latchkey/verify';
import { haproxyBin } from '../../../examples/cluster/cluster.mjs';
import { Client, freePort, json } from './helpers.js';
import { PASSWORD, newEmail, type TokenResponse } from './token-helpers.js';

const START = new URL('../../../examples/cluster/start.mjs', import.meta.url).pathname;
const COOKIE = '__Host-latchkey';
const NODES = ['node1', 'node2', 'node3'];

interface Running {
  child: ChildProcessWithoutNullStreams;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** The balancer, as printed (`open http://localhost:PORT`), reached on 127.0.0.1. */
  url: string;
  nodes: Record<string, string>;
  pids: Record<string, number>;
  files: string;
  exited: Promise<number | null>;
  /** Type a command on its stdin and wait for the line it answers with. */
  command(line: string, answer: RegExp): Promise<void>;
}

async function waitForOutput(r: { output(): string }, re: RegExp, from: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(r.output().slice(from))) {
    assert.ok(Date.now() < deadline, `no ${re} within ${ms} ms:\n${r.output().slice(-3000)}`);
    await sleep(50);
  }
}

async function start(balancer: 'haproxy' | 'node'): Promise<Running> {
  const port = await freePort();
  const child = spawn(process.execPath, [START, '--port', String(port), '--balancer', balancer], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const r = { output: () => out };
  const deadline = Date.now() + 180_000;
  while (!out.includes('Commands:')) {
    const code = await Promise.race([exited, sleep(100).then(() => 'running' as const)]);
    assert.equal(code, 'running', `start.mjs exited before the cluster was ready:\n${out}`);
    assert.ok(Date.now() < deadline, `the cluster was not ready within 180 s:\n${out}`);
  }
  const open = /^ {2}open +http:\/\/localhost:(\d+)/m.exec(out);
  assert.ok(open, out);
  const pids: Record<string, number> = {};
  const nodes: Record<string, string> = {};
  for (const m of out.matchAll(/^ {2}(node\d|postgres|redis|haproxy|balancer) +(\S+) +pid (\d+)$/gm)) {
    pids[m[1]!] = Number(m[3]);
    if (m[1]!.startsWith('node')) nodes[m[1]!] = m[2]!;
  }
  const files = /^ {2}files +(\S+)/m.exec(out)?.[1];
  assert.ok(files, out);
  return {
    child,
    output: r.output,
    url: `http://127.0.0.1:${open[1]}`,
    nodes,
    pids,
    files,
    exited,
    async command(line, answer) {
      const from = out.length;
      child.stdin.write(line + '\n');
      await waitForOutput(r, answer, from, 60_000);
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** GET /v1/session `n` times through the balancer; status, node and user of each answer. */
async function sessions(c: Client, n: number) {
  const out: { status: number; node: string | null; user?: string }[] = [];
  for (let i = 0; i < n; i++) {
    const res = await c.get('/v1/session');
    const body = res.headers.get('content-type')?.includes('json') ? await json<{ user?: { id: string } }>(res) : (await res.arrayBuffer(), {});
    out.push({ status: res.status, node: res.headers.get('x-served-by'), ...(body.user ? { user: body.user.id } : {}) });
  }
  return out;
}

/** SIGINT, as Ctrl-C at the terminal: exit 0, every process it printed gone, its files removed. */
async function interrupt(r: Running): Promise<void> {
  r.child.kill('SIGINT');
  const code = await Promise.race([r.exited, sleep(60_000).then(() => 'timeout' as const)]);
  assert.equal(code, 0, r.output().slice(-3000));
  assert.match(r.output(), /^stopped$/m);
  for (const [name, pid] of Object.entries(r.pids)) assert.equal(alive(pid), false, `${name} (pid ${pid}) still runs`);
  assert.equal(existsSync(r.files), false, `${r.files} is left behind`);
}

/** Whatever a failed test left running: the script and everything it printed. */
async function cleanUp(r: Running | undefined): Promise<void> {
  if (!r || r.child.exitCode !== null || r.child.signalCode !== null) return;
  r.child.kill('SIGINT');
  const code = await Promise.race([r.exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    r.child.kill('SIGKILL');
    for (const pid of Object.values(r.pids)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

describe('examples/cluster behind HAProxy', { skip: haproxyBin() ? false : 'HAProxy is not installed (apt-get install -y haproxy)' }, () => {
  let r: Running | undefined;
  let browser: Client;
  let userId: string;
  before(async () => {
    r = await start('haproxy');
  });
  after(() => cleanUp(r));

  it('prints the balancer, three nodes, PostgreSQL and Redis with their pids, all running', () => {
    assert.deepEqual(Object.keys(r!.nodes).sort(), NODES);
    for (const name of [...NODES, 'postgres', 'redis', 'haproxy']) assert.ok(alive(r!.pids[name]!), `${name} runs`);
  });

  it('signs in through the balancer; requests with that one cookie are answered by all three nodes', async () => {
    const email = newEmail('cluster');
    assert.equal((await new Client(r!.url).signup(email, PASSWORD)).status, 201);
    browser = new Client(r!.url);
    const login = await browser.login(email, PASSWORD);
    assert.equal(login.status, 200);
    userId = (await json<{ user: { id: string } }>(login)).user.id;
    const answers = await sessions(browser, 9);
    assert.deepEqual(answers.map((a) => a.status), Array(9).fill(200));
    assert.ok(answers.every((a) => a.user === userId), 'every node knows the session');
    assert.deepEqual([...new Set(answers.map((a) => a.node))].sort(), NODES);
  });

  // what the nodes must share beyond the database (the signing keys, csrf.key, refresh.key): a
  // cluster whose nodes each made their own refuses the form (403) and fails the refresh (500)
  it('a form of the account page rendered by one node is accepted by another', async () => {
    const c = new Client(r!.url);
    assert.equal((await c.signup(newEmail('cluster'), PASSWORD)).status, 201);
    const cookie = `${COOKIE}=${c.cookies.get(COOKIE)!}`;
    const page = await fetch(`${r!.nodes.node1}/account`, { headers: { cookie }, redirect: 'manual' });
    assert.equal(page.status, 200);
    const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
    assert.ok(token, 'the page has a form token');
    const issuer = r!.url.replace('127.0.0.1', 'localhost');
    const res = await fetch(`${r!.nodes.node2}/account/sessions/signout-others`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: issuer, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: token }).toString(),
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/account?notice=others');
  });

  it('a refresh token spent on two nodes at once (inside the grace window): both answer 200 with one successor', async () => {
    const email = newEmail('cluster');
    assert.equal((await new Client(r!.url).signup(email, PASSWORD)).status, 201);
    const login = await fetch(`${r!.url}/v1/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    assert.equal(login.status, 200);
    const { refresh_token: refreshToken } = await json<TokenResponse>(login);
    const grant = (node: string) =>
      fetch(`${r!.nodes[node]}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken! }).toString(),
      });
    const [a, b] = await Promise.all([grant('node1'), grant('node2')]);
    assert.deepEqual([a.status, b.status], [200, 200]);
    const [ta, tb] = [await json<TokenResponse>(a), await json<TokenResponse>(b)];
    assert.equal(ta.refresh_token, tb.refresh_token);
  });

  it("an access token from any node verifies against the JWKS the balancer serves (@latchkey/verify)", async () => {
    const email = newEmail('cluster');
    assert.equal((await new Client(r!.url).signup(email, PASSWORD)).status, 201);
    const issuer = r!.url.replace('127.0.0.1', 'localhost');
    const verifier = createVerifier({ issuer, audience: 'latchkey', jwksUri: `${r!.url}/.well-known/jwks.json` });
    // three logins in a row, one per node (round robin), before the verifier's own requests take turns too
    const tokens = new Map<string, string>();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${r!.url}/v1/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: PASSWORD }),
      });
      assert.equal(res.status, 200);
      tokens.set(res.headers.get('x-served-by')!, (await json<TokenResponse>(res)).access_token);
    }
    assert.deepEqual([...tokens.keys()].sort(), NODES);
    for (const token of tokens.values()) assert.equal((await verifier.verify(token)).iss, issuer);
  });

  it('signed out through the balancer: every node refuses the cookie (within 10 s)', async () => {
    const email = newEmail('cluster');
    const c = new Client(r!.url);
    assert.equal((await c.signup(email, PASSWORD)).status, 201);
    const cookie = c.cookies.get(COOKIE)!;
    const direct = Object.values(r!.nodes).map((url) => {
      const d = new Client(url);
      d.cookies.set(COOKIE, cookie);
      return d;
    });
    for (const d of direct) assert.equal((await d.get('/v1/session')).status, 200, 'each node serves it first (and caches it)');
    assert.equal((await c.post('/v1/logout')).status, 204);
    const deadline = Date.now() + 10_000;
    for (const d of direct) {
      for (;;) {
        const res = await d.get('/v1/session');
        await res.arrayBuffer();
        if (res.status === 401) break;
        assert.equal(res.status, 200);
        assert.ok(Date.now() < deadline, `${d.base} still accepts the cookie after 10 s`);
        await sleep(5);
      }
    }
  });

  it('a node killed (SIGKILL): every request is still answered 200 by the other two, and it rejoins after `start`', async () => {
    const from = r!.output().length;
    process.kill(r!.pids.node2!, 'SIGKILL');
    await waitForOutput(r!, /node2 exited \(SIGKILL\)/, from, 10_000);
    // HAProxy sends a request that cannot connect to node2 to another node: none fails, even before its check notices
    const answers = await sessions(browser, 6);
    assert.deepEqual(answers.map((a) => a.status), Array(6).fill(200));
    assert.deepEqual([...new Set(answers.map((a) => a.node))].sort(), ['node1', 'node3']);
    await r!.command('start node2', /node2 started, pid (\d+)/);
    r!.pids.node2 = Number(/node2 started, pid (\d+)/.exec(r!.output().slice(from))![1]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const seen = await sessions(browser, 3);
      assert.ok(seen.every((a) => a.status === 200));
      if (seen.some((a) => a.node === 'node2')) break;
      assert.ok(Date.now() < deadline, 'node2 is not back in the rotation after 20 s');
      await sleep(250);
    }
  });

  it('PostgreSQL stopped: the nodes answer 503 store_unavailable with Retry-After, the JWKS still 200; back to 200 once it is started', async () => {
    await r!.command('stop postgres', /^postgres stopped$/m);
    try {
      // a node trusts its cached session for up to a second after its feed last read the store
      const deadline = Date.now() + 10_000;
      let res: Response;
      for (;;) {
        res = await browser.get('/v1/session');
        if (res.status !== 200 || Date.now() > deadline) break;
        await res.arrayBuffer();
        await sleep(100);
      }
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5');
      assert.ok(NODES.includes(res.headers.get('x-served-by')!), 'answered by a node, not by the balancer');
      assert.equal((await json<{ code: string }>(res)).code, 'store_unavailable');
      const jwks = await fetch(`${r!.url}/.well-known/jwks.json`);
      assert.equal(jwks.status, 200);
      assert.ok((await json<{ keys: unknown[] }>(jwks)).keys.length >= 1);
    } finally {
      await r!.command('start postgres', /postgres started, pid \d+/);
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [a] = await sessions(browser, 1);
      if (a!.status === 200) {
        assert.equal(a!.user, userId);
        break;
      }
      assert.equal(a!.status, 503);
      assert.ok(Date.now() < deadline, 'still 503 20 s after PostgreSQL is back');
      await sleep(250);
    }
  });

  it('Redis stopped: signing in still works (rate limits fall back to PostgreSQL)', async () => {
    const email = newEmail('cluster');
    assert.equal((await new Client(r!.url).signup(email, PASSWORD)).status, 201);
    await r!.command('stop redis', /^redis stopped$/m);
    try {
      for (let i = 0; i < 3; i++) {
        const c = new Client(r!.url);
        assert.equal((await c.login(email, PASSWORD)).status, 200);
        assert.equal((await c.get('/v1/session')).status, 200);
      }
    } finally {
      await r!.command('start redis', /redis started, pid \d+/);
    }
  });

  it('Ctrl-C (SIGINT) stops every process it started, exits 0 and removes its files', async () => {
    // the restarted ones are the ones to look for now
    r!.pids.postgres = Number([...r!.output().matchAll(/postgres started, pid (\d+)/g)].at(-1)![1]);
    r!.pids.redis = Number([...r!.output().matchAll(/redis started, pid (\d+)/g)].at(-1)![1]);
    await interrupt(r!);
  });
});

describe('examples/cluster behind the Node balancer (balancer.mjs)', () => {
  let r: Running | undefined;
  let browser: Client;
  before(async () => {
    r = await start('node');
  });
  after(() => cleanUp(r));

  it('signs in through the balancer; requests with that one cookie are answered by all three nodes', async () => {
    assert.ok(alive(r!.pids.balancer!));
    browser = new Client(r!.url);
    assert.equal((await browser.signup(newEmail('cluster'), PASSWORD)).status, 201);
    const answers = await sessions(browser, 9);
    assert.deepEqual(answers.map((a) => a.status), Array(9).fill(200));
    assert.deepEqual([...new Set(answers.map((a) => a.node))].sort(), NODES);
  });

  it('a node killed (SIGKILL): at most the one request that finds it gone fails (502), the other two answer the rest', async () => {
    const from = r!.output().length;
    process.kill(r!.pids.node3!, 'SIGKILL');
    await waitForOutput(r!, /node3 exited \(SIGKILL\)/, from, 10_000);
    const answers = await sessions(browser, 9);
    const failed = answers.filter((a) => a.status !== 200);
    assert.ok(failed.length <= 1, JSON.stringify(answers));
    for (const f of failed) assert.deepEqual(f, { status: 502, node: 'node3' });
    assert.deepEqual([...new Set(answers.filter((a) => a.status === 200).map((a) => a.node))].sort(), ['node1', 'node2']);
  });

  it('Ctrl-C (SIGINT) stops every process it started, exits 0 and removes its files', async () => {
    delete r!.pids.node3; // killed above; its pid may be reused by now
    await interrupt(r!);
  });
});
