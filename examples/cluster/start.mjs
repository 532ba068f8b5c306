#!/usr/bin/env node
// One command for a latchkey cluster on this machine: a private PostgreSQL and Redis, three
// `latchkey serve` nodes on them, a round-robin balancer in front (see README.md). Ctrl-C stops
// everything, in order, and removes every file it made.
//
//   node examples/cluster/start.mjs [--port 8080] [--nodes 3] [--balancer auto|haproxy|node] [--log-level warn]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.mjs';

const USAGE = 'usage: node examples/cluster/start.mjs [--port 8080] [--nodes 3] [--balancer auto|haproxy|node] [--log-level warn]';
let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      nodes: { type: 'string', default: '3' },
      balancer: { type: 'string', default: 'auto' },
      'log-level': { type: 'string', default: 'warn' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const port = Number(args.port);
const nodes = Number(args.nodes);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !Number.isInteger(nodes) || nodes < 1 || nodes > 9 || !['auto', 'haproxy', 'node'].includes(args.balancer)) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

const root = new URL('../../', import.meta.url).pathname;
// the nodes run packages/latchkey's build: bring it up to date (nothing to do when it is)
const build = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(root, 'packages', 'verify'), join(root, 'packages', 'latchkey')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);

const dir = mkdtempSync(join(tmpdir(), 'latchkey-cluster-'));
const aborting = new AbortController();
let cluster;
let stopping;

function stop(why) {
  stopping ??= (async () => {
    process.stdout.write(`\n${why}: stopping the balancer, the nodes, Redis and PostgreSQL\n`);
    aborting.abort();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write('stopped\n');
  })();
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => stop(signal).then(() => process.exit(0)));

try {
  cluster = await startCluster({
    dir,
    nodes,
    port,
    balancer: args.balancer,
    logLevel: args['log-level'],
    signal: aborting.signal,
    onExit: (name, code, signal) => process.stdout.write(`${name} exited (${signal ?? `code ${code}`}); \`start ${name}\` starts it again\n`),
  });
} catch (err) {
  if (!aborting.signal.aborted) {
    process.stderr.write(`could not start the cluster: ${err.message}\n`);
    if (err.code === 'EADDRINUSE' || /EADDRINUSE|Address already in use|cannot bind/i.test(err.message)) process.stderr.write(`is port ${port} taken? try --port\n`);
    await stop('start-up failed');
    process.exit(1);
  }
  // interrupted while starting: stop() is under way and exits
  await new Promise(() => undefined);
}

const pad = (s, n) => String(s).padEnd(n);
const b = cluster.balancer;
const lines = [
  '',
  `latchkey cluster: ${cluster.nodes.length} node${cluster.nodes.length === 1 ? '' : 's'} behind ${b.kind === 'haproxy' ? 'HAProxy' : 'the Node balancer (balancer.mjs)'}, round robin`,
  '',
  `  open       ${cluster.issuer}   (every response names its node in X-Served-By)`,
  ...cluster.nodes.map((n) => `  ${pad(n.name, 10)} ${pad(n.url, 24)} pid ${n.pid}`),
  `  ${pad('postgres', 10)} ${pad(`127.0.0.1:${cluster.postgres.port}`, 24)} pid ${cluster.postgres.pid}`,
  `  ${pad('redis', 10)} ${pad(`127.0.0.1:${cluster.redis.port}`, 24)} pid ${cluster.redis.pid}`,
  `  ${pad(b.kind === 'haproxy' ? 'haproxy' : 'balancer', 10)} ${pad(b.url, 24)} pid ${b.pid}`,
  `  admin key  ${cluster.adminKey}   (Authorization: Bearer ..., /v1/admin/*)`,
  `  files      ${dir}   (removed when it stops)`,
  '',
  'Commands: stop|start node1..node' + cluster.nodes.length + '|postgres|redis, status. Ctrl-C stops everything.',
  '',
];
process.stdout.write(lines.join('\n'));

const services = Object.fromEntries([
  ...cluster.nodes.map((n) => [n.name, n]),
  ['postgres', cluster.postgres],
  ['redis', cluster.redis],
]);
// commands on stdin; when stdin is closed or not a terminal with input, the cluster just runs
createInterface({ input: process.stdin }).on('line', async (line) => {
  const [verb, name] = line.trim().split(/\s+/);
  if (!verb) return;
  if (verb === 'status') {
    for (const [n, s] of Object.entries(services)) process.stdout.write(`  ${pad(n, 10)} ${s.pid ? `up, pid ${s.pid}` : 'down'}\n`);
    return;
  }
  const s = services[name];
  if ((verb !== 'stop' && verb !== 'start') || !s) {
    process.stdout.write(`commands: stop <name>, start <name>, status (names: ${Object.keys(services).join(', ')})\n`);
    return;
  }
  try {
    await s[verb]();
    process.stdout.write(`${name} ${verb === 'stop' ? 'stopped' : `started, pid ${s.pid}`}\n`);
  } catch (err) {
    process.stdout.write(`${verb} ${name} failed: ${err.message}\n`);
  }
});
