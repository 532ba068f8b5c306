/**
 * `latchkey keys` makes the data-dir checks `latchkey serve` makes (keys/secrets.ts prepareDataDir):
 * permissions, damaged secret files, sealing with the key-encryption key; and never creates a data
 * dir. Apart from cli.test.ts because each case spawns the CLI a few times, and a test file must end
 * within the suite's per-file timeout on a loaded machine.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLatchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { assertNoJsonInStrings, cliJson } from './cli-helpers.js';
import { FAST_ARGON2 } from './helpers.js';

const BIN = new URL('../bin/latchkey.js', import.meta.url).pathname;

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

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
        // the secret files and keys; not the databases (the store's, the rate limits')
        .filter((f) => f !== 'keys' && !/\.sqlite(-wal|-shm|-journal)?$/.test(f))
        .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
    );

  it('a data dir that does not exist is an error (exit 1, naming it), never created, for every subcommand', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'missing');
    for (const args of [['list', '--json'], ['rotate', '--now'], ['retire', 'somekid']]) {
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
      const r = await keys(['rotate', '--now', '--data-dir', dir]);
      assert.equal(r.code, 1, r.out);
      assert.ok(r.out.includes(join(dir, 'refresh.key')), r.out);
      assert.deepEqual(snapshot(dir), before);
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

  it('keys list --json: each key’s public JWK is an object, no JSON text inside a string', async () => {
    const dir = await dataDir();
    const list = await cliJson<{ kid: string; state: string; publicJwk: { kid?: string; kty?: string } }[]>(['keys', 'list', '--json', '--data-dir', dir]);
    assert.equal(list.length, 1);
    assert.equal(list[0]!.state, 'active');
    assert.equal(typeof list[0]!.publicJwk, 'object');
    assert.equal(list[0]!.publicJwk.kid, list[0]!.kid);
    assertNoJsonInStrings(list);
  });
});
