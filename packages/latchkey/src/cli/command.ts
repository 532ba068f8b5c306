/**
 * What every command shares: its help (usage, options, the environment it reads, exit codes),
 * argument parsing with node:util parseArgs (strict: an unknown flag is a usage error), the
 * config flags, and the exit codes.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import { ENVIRONMENT, type EnvName } from '../environment.js';

/** The exit codes of every command. */
export const EXIT = {
  /** Done; for `inspect`, the token passed every check that was run. */
  ok: 0,
  /** The command ran and the answer is no: not found, refused, a check failed, the store or server failed. */
  failed: 1,
  /** Nothing was done: unknown command or flag, a missing or extra argument, an invalid config. */
  usage: 2,
} as const;

export const EXIT_HELP = `Exit codes:
  0  done (inspect: every check that ran passed)
  1  failed: not found, refused, a check failed, or the store, server or JWKS could not be used
  2  usage: unknown command or flag, missing or extra argument, invalid configuration; nothing was done
`;

/** Variables the CLI reads itself (loadConfig reads the ones in config.ts ENVIRONMENT). */
export const CLI_ENVIRONMENT = {
  LATCHKEY_URL: 'a running server to send users, sessions and audit commands to (as --url), instead of the local store',
} as const;

export type AnyEnvName = EnvName | keyof typeof CLI_ENVIRONMENT;

const describeEnv = (name: AnyEnvName): string =>
  name in ENVIRONMENT ? ENVIRONMENT[name as EnvName] : CLI_ENVIRONMENT[name as keyof typeof CLI_ENVIRONMENT];

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's name in help: `--data-dir DIR`. */
  arg?: string;
  help: string;
  /** The environment variable that sets the same (shown in brackets). */
  env?: AnyEnvName;
}

export interface CommandSpec {
  name: string;
  /** One line for `latchkey --help`. */
  summary: string;
  /** The usage lines, without `Usage:`. */
  usage: string[];
  /** What the command does, a few lines. */
  about?: string;
  options: Record<string, OptionSpec>;
  /** Every environment variable the command reads, options' included. */
  env: readonly AnyEnvName[];
  run(args: string[]): Promise<number>;
}

export const HELP_OPTION: Record<string, OptionSpec> = { help: { type: 'boolean', short: 'h', help: 'this help' } };

/** Where the store is: the flags of every command that opens it (serve adds --port and --host). */
export const STORE_OPTIONS: Record<string, OptionSpec> = {
  'data-dir': { type: 'string', arg: 'DIR', help: 'the data dir (the SQLite store), default ./.latchkey; unused on PostgreSQL', env: 'LATCHKEY_DATA_DIR' },
  config: { type: 'string', arg: 'FILE', help: 'JSON config file', env: 'LATCHKEY_CONFIG' },
};

/** The variables loadConfig reads that matter to a command working on the store. */
export const STORE_ENV: readonly AnyEnvName[] = ['LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL'];

export function helpText(spec: CommandSpec): string {
  const opts = { ...spec.options, ...HELP_OPTION };
  const flags = Object.entries(opts).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    return [left, `${o.help}${o.multiple ? ' (repeatable)' : ''}${o.env ? ` [${o.env}]` : ''}`] as const;
  });
  const width = Math.max(...flags.map(([l]) => l.length)) + 2;
  const envWidth = Math.max(0, ...spec.env.map((e) => e.length)) + 2;
  return (
    `latchkey ${spec.name}: ${spec.summary}\n\nUsage:\n${spec.usage.map((u) => `  ${u}\n`).join('')}` +
    (spec.about ? `\n${spec.about.trimEnd()}\n` : '') +
    `\nOptions:\n${flags.map(([l, r]) => `  ${l.padEnd(width)}${r}\n`).join('')}` +
    (spec.env.length
      ? `\nEnvironment:\n${spec.env.map((e) => `  ${e.padEnd(envWidth)}${describeEnv(e)}\n`).join('')}`
      : '\nEnvironment: none read\n') +
    `\n${EXIT_HELP}`
  );
}

/** Print the command's help on stdout: exit code 0. */
export function showHelp(spec: CommandSpec): number {
  process.stdout.write(helpText(spec));
  return EXIT.ok;
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * Parse `args` against the command's options (and -h/--help). Throws node's ERR_PARSE_ARGS_*
 * on an unknown flag or a missing value: main() answers those with exit code 2.
 */
export function parse(spec: CommandSpec, args: string[]): Parsed & { help: boolean } {
  const options = Object.fromEntries(
    Object.entries({ ...spec.options, ...HELP_OPTION }).map(([name, o]) => [
      name,
      { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) },
    ]),
  );
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  return { values: values as Parsed['values'], positionals, help: values.help === true };
}

/**
 * Take the operand that follows a subcommand literally when it begins with a single '-' and is not
 * one of the command's short flags: kids, session handles and secrets are base64url and may begin
 * with '-', which parseArgs would read as short options. One beginning with '--' is read as a
 * flag (an unknown one is a usage error): such an operand goes after `--`.
 */
export function takeOperand(spec: CommandSpec, rest: string[]): string | undefined {
  const arg = rest[0];
  if (arg === undefined || arg.startsWith('--')) return undefined;
  const opts = { ...spec.options, ...HELP_OPTION };
  const isShortFlag = Object.values(opts).some((o) => o.short !== undefined && arg === `-${o.short}`);
  return isShortFlag ? undefined : rest.shift();
}

/**
 * The config from --config / --data-dir / --port / --host (those given), the environment and the
 * file. config.ts is loaded here, not at start: `--help` and `--version` need none of it.
 */
export async function configFrom(values: Parsed['values']): Promise<Config> {
  const { loadConfig } = await import('../config.js');
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  return loadConfig({ configFile: str('config'), dataDir: str('data-dir'), port: str('port'), host: str('host') });
}

/** A usage error: said on stderr with the command's usage lines, exit code 2. */
export function usageError(spec: CommandSpec, message: string): number {
  process.stderr.write(`latchkey ${spec.name}: ${message}\n\nUsage:\n${spec.usage.map((u) => `  ${u}\n`).join('')}(latchkey ${spec.name} --help for more)\n`);
  return EXIT.usage;
}

/** This package's version, from its package.json (dist/cli and src/cli are both two levels down). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Write JSON for scripts: one document, two-space indented, newline-terminated. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
