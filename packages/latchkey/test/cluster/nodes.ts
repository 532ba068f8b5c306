/**
 * Several latchkey nodes as real processes: `bin/latchkey.js serve` children, each on its own
 * port and data dir, all on one PostgreSQL database (and Redis when given), behind one issuer
 * URL served by a TCP balancer (balancer.ts), as a deployment behind a load balancer would be.
 * Each node's output (pino's JSON lines and anything on stderr) is kept for assertions and
 * for the diagnostics of a failing test. Every child is killed on close(), when starting the
 * cluster fails half-way, and (SIGKILL) when the test process exits without closing it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { ADMIN_KEY, Client, FAST_ARGON2, freePort } from '../helpers.js';
import { startBalancer, type Balancer } from './balancer.js';


const BIN = new URL('../../bin/latchkey.js', import.meta.url).pathname;

export interface ClusterOptions {
  /** postgres:// URL of the database the nodes share. */
  databaseUrl: string;
  /** redis:// URL the nodes share; by default the runner's (LATCHKEY_TEST_REDIS_URL) if it gives one; null: none. */
  redisUrl?: string | null;
  /** Nodes to start (default 3). */
  nodes?: number;
  /** Merged (one level deep) over the harness's config file: fast argon2, no sign-up limit. */
  config?: Record<string, unknown>;
  /** Default warn: outages, recoveries and errors, not every request. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

/** One pino line of a node's output. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export const LEVEL = { warn: 40, error: 50, fatal: 60 } as const;

export interface Node {
  /** 0 for the first node: tests and messages call it node 1. */
  readonly index: number;
  /** http://127.0.0.1:<port>: this node, bypassing the balancer. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The pid of the process started for this node (it is never restarted behind a test's back). */
  readonly pid: number;
  /** False once the process has exited, for whatever reason. */
  readonly alive: boolean;
  /** Everything the process wrote to stdout and stderr. */
  output(): string;
  /** Its JSON log lines. */
  logs(): LogLine[];
  /** Send `signal` (default SIGTERM); resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Cluster {
  /** The one issuer URL every node is configured with: the balancer's address. */
  readonly issuer: string;
  readonly nodes: readonly Node[];
  readonly balancer: Balancer;
  /** The key-encryption key every node was given. */
  readonly kek: string;
  /** The config file the nodes read. */
  readonly config: Record<string, unknown>;
  /** The last lines of every node's output: what a failing test should show. */
  diagnostics(lines?: number): string;
  /** Kill every node (SIGTERM, then SIGKILL), stop the balancer, delete the data dirs. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
// the test runner may end this process (a timeout, --test-force-exit) before close() runs:
// never leave a node behind holding a port and database connections
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Start `nodes` latchkey processes on one database behind one issuer URL. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const count = opts.nodes ?? 3;
  // as deployed: PostgreSQL and Redis
  const redisUrl = opts.redisUrl === undefined ? process.env.LATCHKEY_TEST_REDIS_URL : (opts.redisUrl ?? undefined);
  const root = mkdtempSync(join(tmpdir(), 'latchkey-cluster-'));
  const kek = randomBytes(32).toString('base64');
  const config = mergeConfig(
    {
      passwords: { argon2: FAST_ARGON2 },
      // every test user signs up from 127.0.0.1: sign-up limits are tested where they are set low
      rateLimit: { signupPerIp: 100_000 },
      // a Redis of its own in effect: clusters of test files running at once share the runner's Redis;
      // and on a loaded machine a command must not time out (and fall back, logging an outage) while it is up
      ...(redisUrl ? { redis: { keyPrefix: `c${randomBytes(4).toString('hex')}:`, commandTimeoutMs: 10_000 } } : {}),
    },
    opts.config ?? {},
  );
  const configFile = join(root, 'config.json');
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });

  const nodes: ProcessNode[] = [];
  let balancer: Balancer | undefined;
  const stopAll = async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM', 5000)));
    await balancer?.close();
    rmSync(root, { recursive: true, force: true });
  };
  try {
    // the issuer names the balancer's port, so it is chosen first
    for (let attempt = 1; !balancer; attempt++) {
      try {
        balancer = await startBalancer(await freePort(), () => nodes.map((n) => n.port));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 5) throw err;
      }
    }
    const issuer = `http://127.0.0.1:${balancer.port}`;
    const env = (dataDir: string): Record<string, string> => ({
      LATCHKEY_HOST: '127.0.0.1',
      LATCHKEY_DATA_DIR: dataDir,
      LATCHKEY_DATABASE_URL: opts.databaseUrl,
      ...(redisUrl ? { LATCHKEY_REDIS_URL: redisUrl } : {}),
      LATCHKEY_KEY_ENCRYPTION_KEY: kek,
      LATCHKEY_ADMIN_KEY: ADMIN_KEY,
      LATCHKEY_ISSUER: issuer,
      LATCHKEY_LOG_LEVEL: opts.logLevel ?? 'warn',
      LATCHKEY_CONFIG: configFile,
    });
    const dirs = Array.from({ length: count }, (_, i) => {
      const dir = join(root, `node-${i}`);
      mkdirSync(dir, { mode: 0o700 });
      return dir;
    });
    // started together, and waited for together: one that fails must not leave the others
    // starting unseen by the clean-up
    const launch = async (indexes: number[]) => {
      const started = await Promise.allSettled(indexes.map((i) => spawnNode(i, env(dirs[i]!))));
      for (const [k, r] of started.entries()) if (r.status === 'fulfilled') nodes[indexes[k]!] = r.value;
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    };
    // every node at once on an empty data dir of its own: the signing keys and the secrets are
    // in the store, and the first node to start creates them (the others read them back)
    await launch(dirs.map((_, i) => i));
    const b = balancer;
    return {
      issuer,
      nodes,
      balancer: b,
      kek,
      config,
      diagnostics: (lines = 20) =>
        nodes.map((n) => `--- node ${n.index + 1} (pid ${n.pid}${n.alive ? '' : ', exited'}) ---\n${tail(n.output(), lines)}`).join('\n'),
      close: stopAll,
    };
  } catch (err) {
    const why = nodes.map((n) => `--- node ${n.index + 1} ---\n${tail(n.output(), 20)}`).join('\n');
    await stopAll();
    if (err instanceof Error && why) err.message += `\n${why}`;
    throw err;
  }
}

class ProcessNode implements Node {
  private out = '';
  private readonly exited: Promise<void>;

  constructor(
    readonly index: number,
    readonly dataDir: string,
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    live.add(child);
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        resolve();
      }),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid(): number {
    return this.child.pid!;
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  output(): string {
    return this.out;
  }
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.out.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line cut off by a kill
      }
    }
    return lines;
  }

  /** `signal`, then SIGKILL if it has not exited after `graceMs`. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `latchkey serve` on a free port, once /healthz answers. A port taken in between: another one. */
async function spawnNode(index: number, env: Record<string, string>): Promise<ProcessNode> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: { ...inheritedEnv(), ...env, LATCHKEY_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node = new ProcessNode(index, env.LATCHKEY_DATA_DIR!, child, port);
    if (await healthy(node)) return node;
    await node.kill('SIGKILL');
    if (!node.output().includes('EADDRINUSE') || attempt === 5) {
      throw new Error(`node ${index + 1} did not become healthy:\n${tail(node.output(), 20)}`);
    }
  }
}

async function healthy(node: ProcessNode): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    // bin/latchkey.js's report of a failed start: today a start that fails after the store was
    // opened leaves its connections open and the process running, so do not wait for the exit
    if (!node.alive || /^latchkey: /m.test(node.output())) return false;
    try {
      const res = await fetch(`${node.url}/healthz`);
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return false;
}

/** This process's environment without any LATCHKEY_ setting: a node reads only what the harness gives it. */
function inheritedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('LATCHKEY_')) out[k] = v;
  return out;
}

function mergeConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = base[k];
    const plain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = plain(b) && plain(v) ? { ...b, ...v } : v;
  }
  return out;
}

/** The last `lines` lines of `text`, each cut at 300 characters (a logged error carries its stack). */
function tail(text: string, lines: number): string {
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l))
    .join('\n');
}

/** The same browser (its cookies and User-Agent) talking to `node`. */
export function on(node: Node, browser: Client): Client {
  const c = new Client(node.url, browser.userAgent);
  for (const [k, v] of browser.cookies) c.cookies.set(k, v);
  return c;
}

/** The admin API of `node`. */
export function admin(node: Node, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${node.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** The status of GET /v1/session for `c` (body drained). */
export async function sessionStatus(c: Client): Promise<number> {
  const res = await c.get('/v1/session');
  await res.arrayBuffer();
  return res.status;
}

/**
 * Milliseconds until `probe` first returns `want`, polled as fast as it answers. Any other
 * value than `meanwhile` fails at once; so does still waiting after `deadlineMs`.
 */
export async function until<T>(probe: () => Promise<T>, want: T, meanwhile: T, deadlineMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const got = await probe();
    if (got === want) return performance.now() - start;
    if (got !== meanwhile) throw new Error(`expected ${String(want)} (or ${String(meanwhile)} meanwhile), got ${String(got)}`);
    if (performance.now() - start > deadlineMs) throw new Error(`still ${String(got)} after ${deadlineMs} ms`);
    await sleep(2);
  }
}

/**
 * Run `fn`; if it throws, report the last lines of every node's output with the failure
 * (t.diagnostic), where a cross-process failure's cause usually is.
 */
export async function explained(t: TestContext, cluster: Cluster | undefined, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (cluster) for (const line of cluster.diagnostics().split('\n')) t.diagnostic(line);
    throw err;
  }
}
