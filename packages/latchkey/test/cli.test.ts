import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLatchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { FAST_ARGON2, freePort } from './helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

async function waitHealthy(url: string, ms = 10000): Promise<void> {
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
    assert.equal(statSync(join(dir, 'csrf.key')).mode & 0o777, 0o600);
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
    assert.match(h.output(), /latchkey serve/);
    const u = start(['frobnicate']);
    assert.equal(await u.exited, 2);
  });
});

describe('latchkey keys: the data-dir checks serve makes', () => {
  /** A data dir as `serve` leaves it (created in-process: faster than a server). */
  async function dataDir(kek?: string): Promise<string> {
    const dir = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'data');
    const config = parseConfig({ dataDir: dir, logLevel: 'silent', passwords: { argon2: FAST_ARGON2 }, keys: kek ? { encryptionKey: kek } : {} });
    const lk = await createLatchkey(config, { logger: false });
    await lk.close();
    return dir;
  }
  const keys = async (args: string[], env: Record<string, string> = {}) => {
    const p = start(['keys', ...args], { LATCHKEY_KEY_ENCRYPTION_KEY: '', ...env });
    return { code: await p.exited, out: p.output() };
  };
  const snapshot = (dir: string) =>
    Object.fromEntries(
      [...readdirSync(dir), ...readdirSync(join(dir, 'keys')).map((f) => `keys/${f}`)]
        .filter((f) => f !== 'keys' && !f.startsWith('latchkey.sqlite'))
        .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
    );

  it('a data dir that does not exist is an error (exit 1, naming it), never created, for every subcommand', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'missing');
    for (const args of [['list'], ['list', '--json'], ['rotate'], ['rotate', '--now'], ['retire', 'somekid']]) {
      const r = await keys([...args, '--data-dir', missing]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}`);
      assert.ok(r.out.includes(`${missing} does not exist`), r.out);
      assert.equal(existsSync(missing), false, `${args.join(' ')} created it`);
    }
  });

  it('tightens permissions as serve does, and says so', async () => {
    const dir = await dataDir();
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'csrf.key'), 0o644);
    chmodSync(join(dir, 'latchkey.sqlite'), 0o644);
    const r = await keys(['list', '--data-dir', dir]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /was open to other users \(mode 0755\): now 0700/);
    assert.match(r.out, /csrf\.key was open to other users \(mode 0644\): now 0600/);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'csrf.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'latchkey.sqlite')).mode & 0o777, 0o600);
  });

  it('refuses a damaged secret file (exit 1, naming it) and changes nothing: no key rotated', async () => {
    const dir = await dataDir();
    for (const damage of ['', 'short', '{"enc":"A256GCM"']) {
      writeFileSync(join(dir, 'refresh.key'), damage);
      const before = snapshot(dir);
      for (const args of [['list'], ['rotate', '--now']]) {
        const r = await keys([...args, '--data-dir', dir]);
        assert.equal(r.code, 1, r.out);
        assert.ok(r.out.includes(join(dir, 'refresh.key')), r.out);
        assert.deepEqual(snapshot(dir), before);
      }
    }
  });

  it('with LATCHKEY_KEY_ENCRYPTION_KEY, seals plaintext secrets and keys as serve does; with another key, refuses and changes nothing', async () => {
    const dir = await dataDir();
    const kek = randomBytes(32).toString('base64');
    const plain = snapshot(dir);
    const wrong = await dataDir(randomBytes(32).toString('base64'));
    const wrongBefore = snapshot(wrong);
    const refused = await keys(['list', '--data-dir', wrong], { LATCHKEY_KEY_ENCRYPTION_KEY: kek });
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.out, /cannot decrypt/);
    assert.deepEqual(snapshot(wrong), wrongBefore);
    const r = await keys(['list', '--data-dir', dir], { LATCHKEY_KEY_ENCRYPTION_KEY: kek });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /encrypted with LATCHKEY_KEY_ENCRYPTION_KEY: /);
    for (const [name, text] of Object.entries(snapshot(dir))) {
      assert.notEqual(text, plain[name], `${name} sealed`);
      assert.equal((JSON.parse(text) as { enc?: string }).enc, 'A256GCM', name);
    }
    // and the server opens it with that key
    const config = parseConfig({ dataDir: dir, logLevel: 'silent', passwords: { argon2: FAST_ARGON2 }, keys: { encryptionKey: kek } });
    const lk = await createLatchkey(config, { logger: false });
    await lk.close();
  });
});
