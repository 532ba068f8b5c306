/**
 * The processes of a contender: starting a stack's server as a child, the CPU
 * time of a set of processes from /proc (so Redis and PostgreSQL are counted
 * the same way as the Node servers, with no code in them), and pinning them to
 * a core with taskset.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** A running server: its process and the port it told us. */
export interface Server {
  child: ChildProcess;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Start `bench/seeds/stacks/<file>` under tsx with `env`; resolves once it listens. */
export function startServer(file: string, env: Record<string, string>): Promise<Server> {
  const path = new URL(`./stacks/${file}`, import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', path], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let exited = child.exitCode !== null;
  child.once('exit', () => (exited = true));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited) return resolve();
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, pid: child.pid!, port: m.port, stop }));
    child.once('exit', (code, signal) => reject(new Error(`${file} exited (${code ?? signal}) before it listened`)));
  });
}

/** utime + stime of a process and all its threads, in seconds; 0 once it has gone. */
function cpuOf(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // the command name (field 2) may hold spaces: count fields from the ")" that ends it
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND;
}

/** CPU seconds used so far by each of `pids`. */
export function cpuSeconds(pids: readonly number[]): Map<number, number> {
  return new Map(pids.map((p) => [p, cpuOf(p)]));
}

/**
 * CPU seconds used between two readings: a process in both counts its difference, one that
 * started in between all of its time, one gone by the second reading nothing after the first.
 */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, t] of after) s += Math.max(0, t - (before.get(pid) ?? 0));
  return s;
}

/** `pid` and every process below it (PostgreSQL's backends under its postmaster). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)!).push(Number(name));
    } catch {
      // gone while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

let taskset: boolean | undefined;
/** Whether processes can be pinned: taskset installed and at least two cores. */
export function canPin(): boolean {
  if (taskset === undefined) {
    try {
      execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
      taskset = cpus().length >= 2;
    } catch {
      taskset = false;
    }
  }
  return taskset;
}

/** Move every thread of `pids` to `cpuList` ("1", "0-1"); a no-op without taskset. */
export function pin(pids: readonly number[], cpuList: string): void {
  if (!canPin()) return;
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
    } catch {
      // a process that ended meanwhile
    }
  }
}

/** All cores, as taskset writes them. */
export const allCpus = (): string => `0-${cpus().length - 1}`;
