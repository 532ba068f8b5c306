import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ENVIRONMENT } from '../src/environment.js';
import { runCli, type CliResult } from './cli-helpers.js';
import { freePort } from './helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

async function waitHealthy(url: string, ms = 30000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url + '/healthz')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server did not become healthy');
}

describe('latchkey serve', () => {
  it('starts on the embedded default, creates the data dir, answers /healthz, stops on SIGTERM', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'data');
    const port = await freePort();
    const p = start(['serve', '--port', String(port), '--data-dir', dir], { LATCHKEY_LOG_LEVEL: 'warn' });
    await waitHealthy(`http://127.0.0.1:${port}`);
    assert.ok(existsSync(join(dir, 'latchkey.sqlite')));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'latchkey.sqlite')).mode & 0o777, 0o600);
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0, p.output());
  });

  it('warns once at start that secrets are unencrypted without LATCHKEY_KEY_ENCRYPTION_KEY, and not with it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-cli-'));
    for (const kek of ['', randomBytes(32).toString('base64')]) {
      const port = await freePort();
      const p = start(['serve', '--port', String(port), '--data-dir', join(root, kek ? 'sealed' : 'plain')], {
        LATCHKEY_LOG_LEVEL: 'warn',
        LATCHKEY_KEY_ENCRYPTION_KEY: kek,
      });
      await waitHealthy(`http://127.0.0.1:${port}`);
      await fetch(`http://127.0.0.1:${port}/healthz`);
      p.child.kill('SIGTERM');
      assert.equal(await p.exited, 0, p.output());
      const warnings = p.output().match(/unencrypted: for production set LATCHKEY_KEY_ENCRYPTION_KEY/g) ?? [];
      assert.equal(warnings.length, kek ? 0 : 1, p.output());
      if (!kek) assert.match(p.output(), /openssl rand -base64 32/);
    }
  });

  it('refuses to start on an empty secret file, exit 1, naming the file; the file is left as it was', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'data');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'csrf.key'), '', { mode: 0o600 });
    const p = start(['serve', '--port', String(await freePort()), '--data-dir', dir]);
    assert.equal(await p.exited, 1, p.output());
    assert.ok(p.output().includes(`${join(dir, 'csrf.key')} is empty`), p.output());
    assert.equal(readFileSync(join(dir, 'csrf.key'), 'utf8'), '');
    assert.equal(existsSync(join(dir, 'latchkey.sqlite')), false, 'nothing else written');
  });

  it('reads env and a config file', async () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-cli-'));
    const port = await freePort();
    const file = join(root, 'latchkey.json');
    writeFileSync(file, JSON.stringify({ port, logLevel: 'warn' }));
    const p = start(['serve', '--config', file], { LATCHKEY_DATA_DIR: join(root, 'd') });
    await waitHealthy(`http://127.0.0.1:${port}`);
    assert.ok(existsSync(join(root, 'd', 'latchkey.sqlite')));
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });

  it('refuses a bad config naming the key, with exit code 2', async () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-cli-'));
    const file = join(root, 'bad.json');
    writeFileSync(file, JSON.stringify({ sessions: { sameSite: 'none' } }));
    const p = start(['serve', '--config', file, '--data-dir', join(root, 'd')]);
    assert.equal(await p.exited, 2);
    assert.match(p.output(), /sessions\.sameSite/);
    const q = start(['serve', '--port', 'x']);
    assert.equal(await q.exited, 2);
    assert.match(q.output(), /port/);
    const r = start(['serve', '--bogus']);
    assert.equal(await r.exited, 2);
    assert.match(r.output(), /bogus/);
  });

  it('prints help and refuses unknown commands', async () => {
    const h = start(['help']);
    assert.equal(await h.exited, 0);
    for (const name of ['serve', 'migrate', 'keys', 'users', 'sessions', 'audit', 'inspect']) assert.match(h.output(), new RegExp(`^  ${name} `, 'm'));
    const u = start(['frobnicate']);
    assert.equal(await u.exited, 2);
  });
});

/** What each command's help must list: the environment variables it reads. */
const COMMAND_ENV: Record<string, readonly string[]> = {
  serve: Object.keys(ENVIRONMENT),
  migrate: ['LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL'],
  keys: ['LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL', 'LATCHKEY_KEY_ENCRYPTION_KEY'],
  users: ['LATCHKEY_URL', 'LATCHKEY_ADMIN_KEY', 'LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL'],
  sessions: ['LATCHKEY_URL', 'LATCHKEY_ADMIN_KEY', 'LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL'],
  audit: ['LATCHKEY_URL', 'LATCHKEY_ADMIN_KEY', 'LATCHKEY_CONFIG', 'LATCHKEY_DATA_DIR', 'LATCHKEY_DATABASE_URL'],
  inspect: [],
};

describe('latchkey --help, --version, exit codes', () => {
  it('every command and subcommand answers --help with exit 0: usage, options, the environment it reads, exit codes', async () => {
    const asks = [
      ...Object.keys(COMMAND_ENV).flatMap((name) => [[name, '--help'], [name, '-h'], ['help', name]]),
      ['keys', 'rotate', '--help'],
      ['keys', 'retire', '--help'],
      ['users', 'roles', '--help'],
      ['sessions', 'revoke', '--help'],
      ['audit', '--follow', '--help'],
    ];
    // a few at a time: dozens of Node processes at once on a loaded 2-core machine prove nothing more
    const results: (readonly [string[], CliResult])[] = [];
    for (let i = 0; i < asks.length; i += 4) {
      results.push(...(await Promise.all(asks.slice(i, i + 4).map(async (args) => [args, await runCli(args)] as const))));
    }
    for (const [args, r] of results) {
      const name = args[0] === 'help' ? args[1]! : args[0]!;
      assert.equal(r.code, 0, `${args.join(' ')}: exit ${r.code}, signal ${r.signal}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`latchkey ${name}: `), `${args.join(' ')}: ${r.stdout}`);
      for (const part of ['Usage:', 'Options:', '--help', 'Exit codes:', '  2  usage']) assert.ok(r.stdout.includes(part), `${args.join(' ')} lacks ${part}`);
      const env = r.stdout.slice(r.stdout.indexOf('\nEnvironment'));
      const listed = env.match(/^ {2}LATCHKEY_[A-Z_]+/gm)?.map((l) => l.trim()) ?? [];
      assert.deepEqual(listed.sort(), [...COMMAND_ENV[name]!].sort(), `${args.join(' ')} environment`);
      if (listed.length === 0) assert.match(env, /Environment: none read/);
    }
  });

  it('latchkey --help lists every variable the config reads and every command; --version prints the package version', async () => {
    const [help, version, short, none, unknownTopic] = await Promise.all([
      runCli(['--help']),
      runCli(['--version']),
      runCli(['-v']),
      runCli([]),
      runCli(['help', 'frobnicate']),
    ]);
    assert.equal(help.code, 0);
    for (const name of [...Object.keys(ENVIRONMENT), 'LATCHKEY_URL']) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'), name);
    assert.match(help.stdout, /^Exit codes:$/m);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(version.code, 0);
    assert.equal(version.stdout, `latchkey ${pkg.version}\n`);
    assert.equal(short.stdout, version.stdout);
    // no command: the help, on stderr, and the usage exit code
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^Commands:$/m);
    assert.equal(unknownTopic.code, 2);
  });

  it('config.ts reads no LATCHKEY_ variable that the help does not list', () => {
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const read = new Set(source.match(/LATCHKEY_[A-Z_]+/g));
    assert.ok(read.size >= 10, 'found the variables');
    for (const name of read) assert.ok(Object.hasOwn(ENVIRONMENT, name), `${name} is read but not in ENVIRONMENT`);
  });

  it('an unknown flag is a usage error (exit 2) naming it, for every command', async () => {
    const results = await Promise.all(Object.keys(COMMAND_ENV).map(async (name) => [name, await runCli([name, ...(name === 'keys' ? ['list'] : name === 'users' ? ['show', 'u_x'] : name === 'sessions' ? ['list', 'u_x'] : []), '--bogus'])] as const));
    for (const [name, r] of results) {
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /bogus/, name);
    }
  });
});
