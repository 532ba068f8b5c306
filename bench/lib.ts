/**
 * Shared benchmark helpers: machine description, medians, load runs (wrk or autocannon), the server
 * side's CPU time over IPC, a report writer.
 */
import type { ChildProcess } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import autocannon from 'autocannon';

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `node ${process.version}, ${cpus().length} x ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
}

/** The 1-minute load average, to say how busy the machine was (other work skews every figure but CPU time). */
export const load1 = (): string => loadavg()[0]!.toFixed(1);

/** Median of the ratios of paired samples (a[i] / b[i]): steadier than a ratio of medians when the machine drifts. */
export const pairedRatio = (a: number[], b: number[]): number => median(a.map((x, i) => x / b[i]!));

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface LoadResult {
  rps: number;
  /** Requests completed in the run. */
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** One bounded autocannon run against loopback. */
export async function load(opts: {
  url: string;
  connections: number;
  seconds: number;
  headers?: Record<string, string>;
  /** per-connection headers: called once per connection */
  perConnection?: (i: number) => Record<string, string>;
  /** per-request headers: called for each request, in order (as wrkLoad spreads `headers`) */
  perRequest?: (i: number) => Record<string, string>;
}): Promise<LoadResult> {
  let conn = 0;
  let sent = 0;
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.seconds,
    headers: opts.headers,
    ...(opts.perConnection || opts.perRequest
      ? {
          requests: [
            {
              setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
                if (opts.perRequest) return { ...req, headers: { ...(req.headers as object), ...opts.perRequest(sent++) } };
                if (context.h === undefined) context.h = opts.perConnection!(conn++);
                return { ...req, headers: { ...(req.headers as object), ...(context.h as object) } };
              },
            },
          ],
        }
      : {}),
  } as autocannon.Options);
  return {
    rps: r.requests.average,
    requests: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

export function report(file: string, lines: string[]): void {
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

/**
 * The same run with wrk (Debian package `wrk`), a C load generator: on a
 * 2-core machine autocannon itself saturates a core before the server does,
 * which hides server-side differences. `cookies` are spread over requests.
 */
export async function wrkLoad(opts: {
  url: string;
  connections: number;
  seconds: number;
  /** values of `header` spread over the requests (default header: Cookie) */
  headers?: string[];
  header?: string;
  prefix?: string;
}): Promise<LoadResult> {
  const { execFile } = await import('node:child_process');
  const { mkdtempSync, rmSync, writeFileSync: write } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-wrk-'));
  const script = join(dir, 'req.lua');
  const list = (opts.headers ?? ['']).map((h) => JSON.stringify(h ? (opts.prefix ?? '') + h : '')).join(',\n');
  const name = opts.header ?? 'Cookie';
  write(
    script,
    `local hs = {\n${list}\n}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  local h = hs[(i % #hs) + 1]\n  if h == "" then return wrk.format("GET") end\n  return wrk.format("GET", nil, { ["${name}"] = h })\nend\n`,
  );
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'wrk',
      ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', '--timeout', '10s', '-s', script, opts.url],
      { maxBuffer: 1 << 20 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  ).finally(() => rmSync(dir, { recursive: true, force: true }));
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in /),
    p50: ms(/\s50%\s+([\d.]+)(us|ms|s)/),
    p99: ms(/\s99%\s+([\d.]+)(us|ms|s)/),
    errors: num(/Socket errors:.*?timeout (\d+)/) || 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

/** wrk when installed (more faithful on a small machine), else autocannon. */
export async function hasWrk(): Promise<boolean> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => execFile('wrk', ['--version'], (err) => resolve(!err || (err as { code?: number }).code === 1)));
}

/**
 * In a benchmark's server process: answer `probe` messages over IPC with the process's CPU time
 * (user + system, µs) and whatever `counters` returns, so the runner can report server CPU per
 * request, which neither the load generator nor other work on the machine can hide.
 */
export function answerProbes(counters: () => Record<string, unknown> = () => ({})): void {
  process.on('message', (m: unknown) => {
    const id = (m as { probe?: number } | null)?.probe;
    if (id === undefined) return;
    const u = process.cpuUsage();
    process.send?.({ probe: id, cpuUs: u.user + u.system, ...counters() });
  });
}

let probes = 0;

/** Ask a server started with `answerProbes` for its CPU time and counters. */
export function probe<T extends Record<string, unknown> = Record<string, never>>(child: ChildProcess): Promise<{ cpuUs: number } & T> {
  const id = ++probes;
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if ((m as { probe?: number } | null)?.probe !== id) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as { cpuUs: number } & T);
    };
    const onExit = (code: number | null) => reject(new Error(`server exited ${code} before answering a probe`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ probe: id });
  });
}
