/**
 * `latchkey keys` makes the checks `latchkey serve` makes (keys/secrets.ts prepareDataDir,
 * keys/at-rest.ts openAtRest): permissions, damaged secret files and stored secrets, sealing with
 * the key-encryption key; and never creates a SQLite data dir. Apart from cli.test.ts because each case spawns the CLI a few times, and a test file must end
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
import { Database } from '../src/store/sqlite/driver.js';
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
  /** What is at rest: the store's secrets and private keys, and the files of the data dir other than the databases. */
  const snapshot = (dir: string) => {
    const db = new Database(join(dir, 'latchkey.sqlite'), { readonly: true });
    try {
      return {
        secrets: db.prepare('SELECT name, value FROM secrets ORDER BY name').all(),
        keys: db.prepare('SELECT kid, private_key FROM signing_keys ORDER BY kid').all(),
        files: Object.fromEntries(
          readdirSync(dir)
            .filter((f) => !/\.sqlite(-wal|-shm|-journal)?$/.test(f))
            .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
        ),
      };
    } finally {
      db.close();
    }
  };

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
    chmodSync(join(dir, 'ratelimits.sqlite'), 0o644);
    chmodSync(join(dir, 'latchkey.sqlite'), 0o644);
    const r = await keys(['list', '--data-dir', dir]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /was open to other users \(mode 0755\): now 0700/);
    assert.match(r.out, /ratelimits\.sqlite was open to other users \(mode 0644\): now 0600/);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'ratelimits.sqlite')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'latchkey.sqlite')).mode & 0o777, 0o600);
  });

  it('refuses a damaged secret file of an earlier latchkey (exit 1, naming it) and changes nothing: no key rotated', async () => {
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

  it('refuses a damaged secret in the store (exit 1, naming it) and changes nothing: no key rotated', async () => {
    const dir = await dataDir();
    const db = new Database(join(dir, 'latchkey.sqlite'));
    db.prepare("UPDATE secrets SET value = 'short' WHERE name = 'device.key'").run();
    db.close();
    const before = snapshot(dir);
    const r = await keys(['rotate', '--now', '--data-dir', dir]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /the secret device\.key in the store is malformed/);
    assert.deepEqual(snapshot(dir), before);
  });

  it('with LATCHKEY_KEY_ENCRYPTION_KEY, seals plaintext secrets and keys as serve does; with another key, refuses and changes nothing', async () => {
    const dir = await dataDir();
    const kek = randomBytes(32).toString('base64');
    const plain = snapshot(dir);
    const wrong = await dataDir(randomBytes(32).toString('base64'));
    const wrongBefore = snapshot(wrong);
    const refused = await keys(['list', '--data-dir', wrong], { LATCHKEY_KEY_ENCRYPTION_KEY: kek });
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.out, /does not decrypt/);
    assert.deepEqual(snapshot(wrong), wrongBefore);
    const r = await keys(['list', '--data-dir', dir], { LATCHKEY_KEY_ENCRYPTION_KEY: kek });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /encrypted with LATCHKEY_KEY_ENCRYPTION_KEY in the store: /);
    const sealed = snapshot(dir);
    const values = [...sealed.secrets, ...sealed.keys].map((row) => Object.values(row as Record<string, string>).at(-1)!);
    assert.equal(values.length, 4);
    for (const v of values) {
      assert.ok(![...plain.secrets, ...plain.keys].some((row) => Object.values(row as Record<string, string>).includes(v)), 'rewritten');
      assert.equal((JSON.parse(v) as { enc?: string }).enc, 'A256GCM');
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
