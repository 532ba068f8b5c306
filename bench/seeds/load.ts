/**
 * The load bench/seeds.ts puts on each contender: every virtual user's sign-in
 * at once (Node's HTTP client, a connection each), then authenticated requests
 * from wrk (C, one thread, 2,000 connections) cycling through the users'
 * credentials, and the revoke-to-refused probe.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { canPin } from './procs.js';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on `agent`; the body as text. */
export function http(agent: Agent, url: string, opts: { method?: string; headers?: Record<string, string>; json?: unknown } = {}): Promise<Reply> {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  const headers: Record<string, string> = { ...opts.headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? (body === undefined ? 'GET' : 'POST'), headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The Cookie header a browser would send after this response: every cookie it set for Path=/ (name=value pairs). */
export function cookiesFrom(reply: Reply): string {
  return (reply.headers['set-cookie'] ?? [])
    .filter((c) => /;\s*path=\/(;|$)/i.test(c) || !/;\s*path=/i.test(c))
    .map((c) => c.slice(0, c.indexOf(';') < 0 ? c.length : c.indexOf(';')))
    .join('; ');
}

/** What a signed-in virtual user sends with every request, and what names its session for revocation. */
export interface Credential {
  header: 'Cookie' | 'Authorization';
  value: string;
  /** express-session's session id, latchkey's session handle (a token's `sid`); none for the JWT stacks */
  session?: string;
}

export interface Burst {
  /** Sign-in latencies, ms, sorted. */
  latencies: number[];
  /** From the first request sent to the last answer, s. */
  seconds: number;
  failures: number;
  firstFailure?: string;
  credentials: (Credential | undefined)[];
}

/** Start every sign-in at once; each on a connection of its own, closed after it. */
export async function burst(ids: readonly number[], signIn: (agent: Agent, i: number) => Promise<Credential>): Promise<Burst> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  const start = performance.now();
  const credentials = await Promise.all(
    ids.map(async (i) => {
      const t0 = performance.now();
      try {
        const c = await signIn(agent, i);
        latencies.push(performance.now() - t0);
        return c;
      } catch (err) {
        failures++;
        firstFailure ??= (err as Error).message;
        return undefined;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { latencies, seconds, failures, ...(firstFailure === undefined ? {} : { firstFailure }), credentials };
}

/** Sign-ins one after another on an idle server, ms each, sorted. */
export async function oneAtATime(ids: readonly number[], signIn: (agent: Agent, i: number) => Promise<Credential>): Promise<number[]> {
  const agent = new Agent({ keepAlive: false });
  const out: number[] = [];
  for (const i of ids) {
    const t0 = performance.now();
    await signIn(agent, i);
    out.push(performance.now() - t0);
  }
  agent.destroy();
  return out.sort((a, b) => a - b);
}

/** How many of `credentials` the route accepts (200), checked 50 at a time. */
export async function accepted(url: string, credentials: readonly Credential[]): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 50 });
  let ok = 0;
  for (let i = 0; i < credentials.length; i += 50) {
    const rs = await Promise.all(credentials.slice(i, i + 50).map((c) => http(agent, url, { headers: { [c.header]: c.value } })));
    ok += rs.filter((r) => r.status === 200).length;
  }
  agent.destroy();
  return ok;
}

export const PERCENTILES = [1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100];

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** wrk's socket errors, and responses with a status >= 400 */
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  /** [percentile, ms] */
  percentiles: [number, number][];
  p50: number;
  p99: number;
  /** Bytes wrk read (responses), per request. */
  responseBytes: number;
}

/**
 * wrk, one thread, `connections` connections, for `seconds`; request i carries
 * `values[i % values.length]` in `header`. Pinned to CPU 0 when the servers are on CPU 1.
 */
export async function wrk(opts: { url: string; connections: number; seconds: number; header: string; values: readonly string[] }): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-seeds-wrk-'));
  const script = join(dir, 'seeds.lua');
  const ps = PERCENTILES.join(', ');
  writeFileSync(
    script,
    `local hs = {\n${opts.values.map((v) => JSON.stringify(v)).join(',\n')}\n}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", nil, { [${JSON.stringify(opts.header)}] = hs[(i % #hs) + 1] })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('SEEDS {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"percentiles":[',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  for idx, p in ipairs({ ${ps} }) do
    -- wrk answers 0 for the 100th percentile: the maximum is latency.max
    io.write(string.format('%s[%s,%d]', idx > 1 and ',' or '', p, p == 100 and latency.max or latency:percentile(p)))
  end
  io.write(']}\\n')
end
`,
  );
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', '-s', script, opts.url];
  const [cmd, argv] = canPin() ? ['taskset', ['-c', '0', 'wrk', ...args]] : ['wrk', args];
  try {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(cmd, argv, { maxBuffer: 1 << 22 }, (err, stdout, stderr) => (err ? reject(new Error(`wrk: ${err.message} ${stderr}`)) : resolve(stdout))),
    );
    const line = out.split('\n').find((l) => l.startsWith('SEEDS '));
    if (!line) throw new Error(`wrk printed no result:\n${out}`);
    const r = JSON.parse(line.slice(6)) as {
      requests: number;
      duration_us: number;
      bytes: number;
      connect: number;
      read: number;
      write: number;
      status: number;
      timeout: number;
      percentiles: [number, number][];
    };
    const percentiles = r.percentiles.map(([p, us]) => [p, us / 1000] as [number, number]);
    const at = (p: number) => percentiles.find(([q]) => q === p)![1];
    const seconds = r.duration_us / 1e6;
    return {
      requests: r.requests,
      seconds,
      rps: r.requests / seconds,
      errors: { connect: r.connect, read: r.read, write: r.write, timeout: r.timeout, status: r.status },
      percentiles,
      p50: at(50),
      p99: at(99),
      responseBytes: r.requests ? r.bytes / r.requests : 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same run with autocannon, in this process, when wrk is not installed: one
 * JavaScript thread generating the load, usually slower than the servers it
 * measures on a small machine (the report says which generator ran).
 */
export async function autocannonRun(opts: { url: string; connections: number; seconds: number; header: string; values: readonly string[] }): Promise<WrkResult> {
  let i = 0;
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.seconds,
    timeout: 10,
    requests: [
      {
        setupRequest: (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, [opts.header]: opts.values[i++ % opts.values.length]! } }),
      },
    ],
  });
  const l = r.latency;
  const percentiles: [number, number][] = [
    [1, l.p1],
    [10, l.p10],
    [25, l.p25],
    [50, l.p50],
    [75, l.p75],
    [90, l.p90],
    [97.5, l.p97_5],
    [99, l.p99],
    [99.9, l.p99_9],
    [99.99, l.p99_99],
    [100, l.max],
  ];
  const requests = r.requests.total;
  return {
    requests,
    seconds: r.duration,
    rps: requests / r.duration,
    errors: { connect: r.errors - r.timeouts, read: 0, write: 0, timeout: r.timeouts, status: r['4xx'] + r['5xx'] },
    percentiles,
    p50: l.p50,
    p99: l.p99,
    responseBytes: requests ? r.throughput.total / requests : 0,
  };
}

/** wrk's version line, or undefined when it is not installed. */
export function wrkVersion(): Promise<string | undefined> {
  return new Promise((resolve) =>
    execFile('wrk', ['--version'], (err, stdout) => {
      // wrk --version prints its banner and exits 1
      const text = String(stdout).trim().split('\n')[0];
      resolve(text && (!err || (err as { code?: number }).code === 1) ? text : undefined);
    }),
  );
}

/**
 * Revoke, then ask the route with the revoked credential, one request after
 * another, until it refuses (401/403). Milliseconds from the revoke call's start
 * to the refusal's arrival, and from the call's return (0 when the first request
 * after it was refused); undefined if still accepted after `timeoutMs`.
 */
export async function revokeToRefused(
  url: string,
  c: Credential,
  revoke: () => Promise<void>,
  timeoutMs = 10_000,
): Promise<{ fromStart: number; afterReturn: number } | undefined> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const before = await http(agent, url, { headers: { [c.header]: c.value } });
    if (before.status !== 200) throw new Error(`the credential is refused (${before.status}) before the revocation`);
    const t0 = performance.now();
    await revoke();
    const t1 = performance.now();
    let first = true;
    for (;;) {
      const sent = performance.now();
      const r = await http(agent, url, { headers: { [c.header]: c.value } });
      const t = performance.now();
      if (r.status === 401 || r.status === 403) return { fromStart: t - t0, afterReturn: first ? 0 : sent - t1 };
      if (r.status !== 200) throw new Error(`unexpected ${r.status} while waiting for the refusal`);
      if (t - t0 > timeoutMs) return undefined;
      first = false;
    }
  } finally {
    agent.destroy();
  }
}
