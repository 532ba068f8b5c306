// Several latchkey nodes on one PostgreSQL and one Redis, behind a round-robin balancer: what
// start.mjs runs for people, and what bench/cluster.ts measures. Everything is private and
// throwaway: PostgreSQL and Redis on free loopback ports with their data under `dir`, each node a
// `latchkey serve` child process with a data dir of its own, HAProxy (Debian's) or, when it is not
// installed, balancer.mjs in front.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startPostgres } from '../../scripts/pg-server.mjs';
import { startRedis } from '../../scripts/redis-server.mjs';

const ROOT = new URL('../../', import.meta.url).pathname;
/** The CLI every node runs (`latchkey serve`). */
export const LATCHKEY_BIN = join(ROOT, 'packages', 'latchkey', 'bin', 'latchkey.js');
const NODE_BALANCER = new URL('./balancer.mjs', import.meta.url).pathname;


/** HAProxy's binary when Debian's package is installed (it lives in /usr/sbin, not always on PATH). */
export function haproxyBin() {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(join(dir, 'haproxy'))) return join(dir, 'haproxy');
  }
  return undefined;
}

/**
 * Start PostgreSQL, Redis, `latchkey migrate`, the nodes and the balancer. Resolves once every
 * node answers /healthz and the balancer forwards; rejects (having stopped what it started) when
 * any of them fails to start. Options: see cluster.d.mts.
 */
export async function startCluster(options) {
  const o = {
    nodes: 3,
    port: 0,
    balancer: 'auto',
    store: 'postgres',
    redis: true,
    logLevel: 'warn',
    nodeCommand: [LATCHKEY_BIN, 'serve'],
    nodeExecArgv: [],
    env: {},
    config: undefined,
    ipc: false,
    output: (name, line) => process.stderr.write(`[${name}] ${line}\n`),
    onExit: undefined,
    signal: undefined,
    ...options,
  };
  const step = () => o.signal?.throwIfAborted();
  if (o.store === 'sqlite' && o.nodes !== 1) throw new Error('the SQLite store is one node: use store: "postgres" for several');
  if (o.store === 'sqlite') o.redis = false;
  const balancerKind = o.balancer === 'auto' ? (o.nodes > 1 || o.port ? (haproxyBin() ? 'haproxy' : 'node') : 'none') : o.balancer;
  if (balancerKind === 'haproxy' && !haproxyBin()) throw new Error("HAProxy is not installed (apt-get install -y haproxy), or use the Node balancer (--balancer node)");

  const dir = o.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // stopped in reverse: the balancer first, then the nodes, then Redis and PostgreSQL they use
  const stops = [];
  const cluster = {
    dir,
    url: '',
    issuer: '',
    adminKey: randomBytes(32).toString('base64url'),
    nodes: [],
    postgres: undefined,
    redis: undefined,
    balancer: undefined,
    stop: () => stopAll(stops),
  };
  try {
    const balancerPort = balancerKind === 'none' ? undefined : o.port || (await freePort());
    const nodePorts = [];
    for (let i = 0; i < o.nodes; i++) nodePorts.push(await freePort());
    cluster.issuer = `http://localhost:${balancerPort ?? nodePorts[0]}`;
    cluster.url = balancerPort ? `http://127.0.0.1:${balancerPort}` : `http://127.0.0.1:${nodePorts[0]}`;

    const env = { ...withoutLatchkeyEnv(process.env), ...o.env };
    env.LATCHKEY_ISSUER = cluster.issuer;
    env.LATCHKEY_ADMIN_KEY = cluster.adminKey;
    // one key-encryption key for every node: what a node seals, another can open
    env.LATCHKEY_KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64');
    env.LATCHKEY_LOG_LEVEL = o.logLevel;
    // behind the balancer the TCP peer is the balancer: believe the one X-Forwarded-For entry it adds
    if (balancerKind !== 'none') env.LATCHKEY_TRUST_PROXY = '1';
    if (o.config) {
      const file = join(dir, 'latchkey.json');
      writeFileSync(file, JSON.stringify(o.config, null, 2) + '\n', { mode: 0o600 });
      env.LATCHKEY_CONFIG = file;
    }

    if (o.store === 'postgres') {
      cluster.postgres = await startPostgres(dir, stops, { detached: true });
      env.LATCHKEY_DATABASE_URL = cluster.postgres.url;
      step();
    }
    if (o.redis) {
      cluster.redis = await startRedis(dir, stops, { detached: true });
      env.LATCHKEY_REDIS_URL = cluster.redis.url;
      step();
    }
    if (o.store === 'postgres') {
      // serve would migrate at start too (under an advisory lock); done once here, as a deployment would
      const m = spawnSync(process.execPath, [LATCHKEY_BIN, 'migrate'], { env, encoding: 'utf8' });
      if (m.status !== 0) throw new Error(`latchkey migrate failed:\n${m.stderr || m.stdout}`);
      o.output('migrate', m.stdout.trim());
    }

    // the nodes stop after the balancer: one entry for all of them, registered before the balancer's
    stops.push(() => Promise.all(cluster.nodes.map((n) => n.stop())));
    for (let i = 0; i < o.nodes; i++) {
      cluster.nodes.push(makeNode(`node${i + 1}`, nodePorts[i], join(dir, `node${i + 1}`), env, o));
    }
    step();
    // every node starts at once on an empty data dir: signing keys and secrets live in the store,
    // sealed with the KEK, and the first node to start creates them (the others read them back)
    await Promise.all(cluster.nodes.map((n) => n.start()));

    step();
    if (balancerKind !== 'none') {
      cluster.balancer = await startBalancer(balancerKind, balancerPort, cluster.nodes, dir, o, stops);
    }
    step();
    return cluster;
  } catch (err) {
    await stopAll(stops);
    throw err;
  }
}

async function stopAll(stops) {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
}

/** The environment without any LATCHKEY_* of the caller's: the nodes get exactly the cluster's. */
function withoutLatchkeyEnv(env) {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('LATCHKEY_')));
}

/** A node: `latchkey serve` (or o.nodeCommand) on 127.0.0.1:port, started and stopped on demand. */
function makeNode(name, port, dataDir, env, o) {
  let child;
  let exited = true;
  let stopping = false;
  const node = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    get pid() { return exited ? undefined : child.pid; },
    get running() { return !exited; },
    get child() { return child; },
    async start() {
      if (!exited) return;
      stopping = false;
      child = spawn(process.execPath, [...o.nodeExecArgv, ...o.nodeCommand, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
        env,
        // a process group of its own: Ctrl-C reaches the script, which stops the nodes in order
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', ...(o.ipc ? ['ipc'] : [])],
      });
      exited = false;
      const lines = [];
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          lines.push(line);
          if (lines.length > 50) lines.shift();
          o.output(name, line);
        });
      }
      const exit = new Promise((resolve) => child.once('exit', (code, signal) => {
        exited = true;
        if (!stopping) o.onExit?.(name, code, signal);
        resolve();
      }));
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (exited) throw new Error(`${name} exited at start:\n${lines.join('\n')}`);
        if (await healthy(node.url)) return;
        if (Date.now() > deadline || o.signal?.aborted) {
          child.kill('SIGKILL');
          await exit;
          o.signal?.throwIfAborted();
          throw new Error(`${name} did not answer /healthz within 60 s`);
        }
        await sleep(100);
      }
    },
    /** SIGTERM: latchkey finishes in-flight requests and closes its store; SIGKILL after 10 s. */
    stop(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (exited) return resolve();
        stopping = signal === 'SIGTERM';
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => { clearTimeout(t); resolve(); });
        child.kill(signal);
      });
    },
  };
  return node;
}

async function healthy(url) {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** HAProxy's configuration for the nodes: round robin, health checks on /healthz, X-Served-By. */
export function haproxyConfig(port, nodes) {
  return `# written by examples/cluster/cluster.mjs for this run
global
  maxconn 4096

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  # a request that could not connect to a node is sent to another one; only those, so a POST
  # (a login, a refresh grant) is never sent twice
  retries 2
  option redispatch
  retry-on conn-failure

frontend latchkey
  bind 127.0.0.1:${port}
  # the client's address for latchkey's per-IP limits and audit log (nodes run with LATCHKEY_TRUST_PROXY=1)
  option forwardfor
  default_backend nodes

backend nodes
  balance roundrobin
  # /healthz answers 200 while the process runs, database or not: a PostgreSQL outage is the
  # nodes' to answer (503 store_unavailable), not a reason to take them all out
  option httpchk GET /healthz
  http-check expect status 200
  default-server check inter 1s fall 2 rise 2
  http-response set-header X-Served-By %[srv_name]
${nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port}`).join('\n')}
`;
}

async function startBalancer(kind, port, nodes, dir, o, stops) {
  let command;
  let args;
  if (kind === 'haproxy') {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig(port, nodes));
    command = haproxyBin();
    const check = spawnSync(command, ['-c', '-q', '-f', file], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy refused ${file}:\n${check.stderr || check.stdout}`);
    // -db: foreground, no daemon; this script owns it
    args = ['-db', '-f', file];
  } else {
    command = process.execPath;
    args = [NODE_BALANCER, String(port), ...nodes.map((n) => `${n.name}=${n.url}`)];
  }
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      o.output(kind === 'haproxy' ? 'haproxy' : 'balancer', line);
    });
  }
  const exit = new Promise((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const stop = async () => {
    if (exited) return;
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    // HAProxy: SIGTERM is its immediate stop; the Node balancer closes its server
    child.kill('SIGTERM');
    await exit;
    clearTimeout(t);
  };
  stops.push(stop);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`the ${kind} balancer exited at start:\n${lines.join('\n')}`);
    if (await healthy(url)) break;
    if (Date.now() > deadline) throw new Error(`the ${kind} balancer did not forward /healthz within 30 s`);
    await sleep(100);
  }
  return {
    kind,
    port,
    url,
    get pid() { return exited ? undefined : child.pid; },
    stop,
  };
}
