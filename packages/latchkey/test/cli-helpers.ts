/** Running the built CLI (bin/latchkey.js) as a user would: a child process, its exit code and output. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;

export interface CliOptions {
  env?: Record<string, string>;
  stdin?: string;
  cwd?: string;
}

export interface CliResult {
  code: number | null;
  /** The signal that ended it, if one did (then `code` is null). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment a CLI child gets: this process's, without any LATCHKEY_ variable (so the
 * caller states every one the command sees), plus `env`.
 */
export function cliEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LATCHKEY_')));
  return { ...clean, ...env };
}

/** Start `latchkey <args>`; `output()` is what it wrote so far. */
export function startCli(args: string[], opts: CliOptions = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(opts.env), cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
  else child.stdin.end();
  // 'close', not 'exit': by then stdout and stderr have been read to their end
  const exited = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** Run `latchkey <args>` to its end. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return startCli(args, opts).exited;
}

/** Run it and parse its stdout as one JSON document (failing with its output when it is not). */
export async function cliJson<T = Record<string, unknown>>(args: string[], opts: CliOptions = {}): Promise<T> {
  const r = await runCli(args, opts);
  if (r.code !== 0) throw new Error(`latchkey ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`latchkey ${args.join(' ')} printed no JSON: ${r.stdout}`);
  }
}

/** No string anywhere in `value` is itself a JSON object or array (--json must not nest JSON in strings). */
export function assertNoJsonInStrings(value: unknown, path = '$'): void {
  if (typeof value === 'string') {
    const t = value.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      let parsed = false;
      try {
        JSON.parse(t);
        parsed = true;
      } catch {
        // not JSON: fine
      }
      assert.equal(parsed, false, `${path} holds JSON text`);
    }
  } else if (Array.isArray(value)) value.forEach((v, i) => assertNoJsonInStrings(v, `${path}[${i}]`));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) assertNoJsonInStrings(v, `${path}.${k}`);
}

