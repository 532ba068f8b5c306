/**
 * `latchkey <command>`: serve, and operator commands. Each command is a CommandSpec (cli/command.ts):
 * its help, its options, and a function of its arguments returning an exit code.
 */
import { ENVIRONMENT, type EnvName } from '../environment.js';
import { auditCommand, sessionsCommand, usersCommand } from './admin.js';
import { CLI_ENVIRONMENT, EXIT, EXIT_HELP, helpText, version, type CommandSpec } from './command.js';
import { inspectCommand } from './inspect.js';
import { keysCommand } from './keys.js';
import { migrateCommand, serveCommand } from './serve.js';

export const commands: readonly CommandSpec[] = [
  serveCommand,
  migrateCommand,
  keysCommand,
  usersCommand,
  sessionsCommand,
  auditCommand,
  inspectCommand,
];

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  const env = { ...ENVIRONMENT, ...CLI_ENVIRONMENT } as Record<EnvName | keyof typeof CLI_ENVIRONMENT, string>;
  const envWidth = Math.max(...Object.keys(env).map((e) => e.length)) + 2;
  return `latchkey ${version()}: sessions for browsers, short-lived JWTs for services

Usage:
  latchkey <command> [options]
  latchkey <command> --help         the command's options, environment and exit codes
  latchkey --version

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}\n`).join('')}  ${'help'.padEnd(width)}this help, or a command's: latchkey help <command>

Environment (each command's help lists those it reads; flags win over them, they win over the config file):
${Object.entries(env)
  .map(([name, text]) => `  ${name.padEnd(envWidth)}${text}\n`)
  .join('')}
${EXIT_HELP}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`latchkey ${version()}\n`);
    return EXIT.ok;
  }
  if (name === undefined) {
    process.stderr.write(mainHelp());
    return EXIT.usage;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    const topic = rest[0] === undefined ? undefined : commands.find((c) => c.name === rest[0]);
    if (rest[0] !== undefined && !topic) {
      process.stderr.write(`latchkey: no command "${rest[0]}"\n\n${mainHelp()}`);
      return EXIT.usage;
    }
    process.stdout.write(topic ? helpText(topic) : mainHelp());
    return EXIT.ok;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`latchkey: unknown command "${name}"\n\n${mainHelp()}`);
    return EXIT.usage;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // ConfigError's code (config.ts is not loaded for --help); parseArgs' codes for unknown flags
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && (code === 'ERR_CONFIG' || code.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`latchkey ${command.name}: ${(err as Error).message}\n(latchkey ${command.name} --help for its options)\n`);
      return EXIT.usage;
    }
    throw err;
  }
}
