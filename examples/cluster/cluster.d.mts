import type { ChildProcess } from 'node:child_process';
import type { PostgresServer } from '../../scripts/pg-server.mjs';
import type { RedisServer } from '../../scripts/redis-server.mjs';

export const LATCHKEY_BIN: string;
export function haproxyBin(): string | undefined;
export function haproxyConfig(port: number, nodes: { name: string; port: number }[]): string;

export interface ClusterOptions {
  /** Working directory: data dirs, PostgreSQL's and Redis's files, haproxy.cfg. */
  dir: string;
  /** Default 3. */
  nodes?: number;
  /** The balancer's port; 0 (default): a free one. */
  port?: number;
  /** auto (default): HAProxy when installed, else balancer.mjs, none for one node without a port. */
  balancer?: 'auto' | 'haproxy' | 'node' | 'none';
  /** postgres (default) or sqlite (one node, no Redis). */
  store?: 'postgres' | 'sqlite';
  /** Start Redis and give its URL to the nodes (default true on PostgreSQL). */
  redis?: boolean;
  /** LATCHKEY_LOG_LEVEL of the nodes (default warn). */
  logLevel?: string;
  /** What each node runs after `node` (default: latchkey's bin, `serve`); --host, --port, --data-dir are appended. */
  nodeCommand?: string[];
  /** Node options before the command (e.g. --import tsx). */
  nodeExecArgv?: string[];
  /** More environment for the nodes (LATCHKEY_* of this process are never passed on). */
  env?: Record<string, string>;
  /** A latchkey config file for every node (LATCHKEY_CONFIG). */
  config?: Record<string, unknown>;
  /** An IPC channel to each node (child.send / 'message'). */
  ipc?: boolean;
  /** Each line a node, the balancer or migrate prints (default: stderr, prefixed with the name). */
  output?: (name: string, line: string) => void;
  /** A node exited without being stopped. */
  onExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Aborting it during start-up stops what was started and rejects. */
  signal?: AbortSignal;
}

export interface ClusterNode {
  name: string;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  dataDir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly child: ChildProcess;
  /** Start it (again); resolves when it answers /healthz. */
  start(): Promise<void>;
  /** SIGTERM (default): a graceful stop; SIGKILL after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface Cluster {
  dir: string;
  /** Where clients go: the balancer (or the one node): http://127.0.0.1:<port> */
  url: string;
  /** Every node's issuer: http://localhost:<balancer port> */
  issuer: string;
  /** LATCHKEY_ADMIN_KEY of every node. */
  adminKey: string;
  nodes: ClusterNode[];
  postgres: PostgresServer | undefined;
  redis: RedisServer | undefined;
  balancer: { kind: 'haproxy' | 'node'; port: number; url: string; readonly pid: number | undefined; stop(): Promise<void> } | undefined;
  /** The balancer, the nodes, Redis, PostgreSQL, in that order. */
  stop(): Promise<void>;
}

export function startCluster(options: ClusterOptions): Promise<Cluster>;
