/**
 * Redis for tests: the runner's (LATCHKEY_TEST_REDIS_URL) when it gives one,
 * else a private redis-server child on a free port with no persistence. Tests
 * that stop Redis always start their own. Never the machine's Redis on 6379.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './helpers.js';

export interface TestRedis {
  url: string;
  port: number;
  /** Kill the server (SIGKILL: an outage, not a shutdown); resolves once it has exited. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that holds its connections but answers nothing, then resumes. */
  pause(): void;
  resume(): void;
  /** Start it again on the same port (empty: it keeps nothing). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server child of this process, ready to accept connections. */
export async function startPrivateRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve();
      };
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      c.once('error', (err) => reject(new Error(`cannot start redis-server (apt-get install redis-server): ${err.message}`)));
      c.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  const signal = (sig: NodeJS.Signals) => {
    if (child) child.kill(sig);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    // a stopped server ignores SIGKILL's delivery until continued: continue it first
    stop: async () => {
      signal('SIGCONT');
      await kill();
    },
  };
}

/** The runner's Redis, or a private one (stop() then ends it). */
export async function testRedis(): Promise<Pick<TestRedis, 'url' | 'stop'>> {
  const given = process.env.LATCHKEY_TEST_REDIS_URL;
  if (given) return { url: given, stop: async () => undefined };
  return startPrivateRedis();
}
