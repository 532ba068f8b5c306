/**
 * Secrets at rest (issue 12, item 13): with a key-encryption key every secret file
 * of the data dir is sealed, plaintext ones are sealed when the key is turned on,
 * a wrong key or a damaged file stops start-up with nothing rewritten, and the
 * data dir's permissions are enforced on every start.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLatchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { readSecret, SECRET_FILES } from '../src/keys/secrets.js';
import { FAST_ARGON2 } from './helpers.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const freshDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-rest-'));
  dirs.push(d);
  return d;
};
const config = (dataDir: string, encryptionKey?: string) =>
  parseConfig({ dataDir, logLevel: 'silent', passwords: { argon2: FAST_ARGON2 }, keys: encryptionKey ? { encryptionKey } : {} });
const newKek = () => randomBytes(32).toString('base64');
const kekBytes = (kek: string) => Buffer.from(kek, 'base64');

async function startOnce(dataDir: string, kek?: string) {
  const lk = await createLatchkey(config(dataDir, kek), { logger: false });
  const kid = lk.context.keys.signer().kid;
  const notices = lk.notices;
  await lk.close();
  return { kid, notices };
}

/** Every file of the data dir and keys/ with its bytes. */
function snapshot(dataDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of SECRET_FILES) if (existsSync(join(dataDir, f))) out[f] = readFileSync(join(dataDir, f), 'utf8');
  if (existsSync(join(dataDir, 'keys'))) {
    for (const f of readdirSync(join(dataDir, 'keys'))) out[`keys/${f}`] = readFileSync(join(dataDir, 'keys', f), 'utf8');
  }
  return out;
}

const PLAIN_SECRET = /^[A-Za-z0-9_-]{43}\n$/;

describe('secrets at rest', () => {
  it('without a key-encryption key: starts, and warns once naming LATCHKEY_KEY_ENCRYPTION_KEY and how to make one', async () => {
    const dataDir = freshDir();
    const { notices } = await startOnce(dataDir);
    const warnings = notices.filter((n) => n.includes('LATCHKEY_KEY_ENCRYPTION_KEY'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /unencrypted/);
    assert.match(warnings[0]!, /openssl rand -base64 32/);
    assert.match(readFileSync(join(dataDir, 'csrf.key'), 'utf8'), PLAIN_SECRET);
  });

  it('with a key-encryption key: csrf.key, refresh.key, device.key and the signing key are sealed, and reopen with the same values', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    const first = await startOnce(dataDir, kek);
    assert.deepEqual(first.notices, []);
    for (const name of SECRET_FILES) {
      const text = readFileSync(join(dataDir, name), 'utf8');
      const file = JSON.parse(text) as Record<string, unknown>;
      assert.equal(file.enc, 'A256GCM');
      assert.equal(statSync(join(dataDir, name)).mode & 0o777, 0o600);
      assert.equal(readSecret(dataDir, name, kekBytes(kek)).state, 'sealed');
    }
    const csrf = readSecret(dataDir, 'csrf.key', kekBytes(kek)).secret;
    const again = await startOnce(dataDir, kek);
    assert.equal(again.kid, first.kid);
    assert.deepEqual(readSecret(dataDir, 'csrf.key', kekBytes(kek)).secret, csrf);
  });

  it('turning the key on later seals the plaintext secrets and keys in place, keeping their values', async () => {
    const dataDir = freshDir();
    const plain = await startOnce(dataDir);
    const csrf = readSecret(dataDir, 'csrf.key', undefined).secret;
    const refresh = readSecret(dataDir, 'refresh.key', undefined).secret;
    const kek = newKek();
    const sealed = await startOnce(dataDir, kek);
    assert.equal(sealed.kid, plain.kid, 'the same signing key signs');
    assert.match(sealed.notices.join('\n'), /encrypted with LATCHKEY_KEY_ENCRYPTION_KEY: csrf\.key, refresh\.key, device\.key, keys\//);
    assert.deepEqual(readSecret(dataDir, 'csrf.key', kekBytes(kek)), { secret: csrf, state: 'sealed' });
    assert.deepEqual(readSecret(dataDir, 'refresh.key', kekBytes(kek)), { secret: refresh, state: 'sealed' });
    const keyFile = JSON.parse(readFileSync(join(dataDir, 'keys', `${plain.kid}.json`), 'utf8')) as Record<string, unknown>;
    assert.equal(keyFile.enc, 'A256GCM');
    assert.equal(keyFile.jwk, undefined);
    // no temp file left behind
    assert.deepEqual(readdirSync(join(dataDir, 'keys')), [`${plain.kid}.json`]);
  });

  it('a wrong key or no key fails start-up with a clear error and rewrites nothing', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    await startOnce(dataDir, kek);
    const before = snapshot(dataDir);
    await assert.rejects(startOnce(dataDir, newKek()), { code: 'ERR_SECRET_FILE', message: /cannot decrypt .*csrf\.key: wrong LATCHKEY_KEY_ENCRYPTION_KEY/ });
    await assert.rejects(startOnce(dataDir), { code: 'ERR_SECRET_FILE', message: /csrf\.key is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY/ });
    assert.deepEqual(snapshot(dataDir), before);
    await startOnce(dataDir, kek);
  });

  it('a wrong key with only the signing keys sealed (an older data dir) seals nothing under it', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    await startOnce(dataDir, kek);
    // as an earlier latchkey left it: signing keys sealed, secrets in plaintext
    const csrf = randomBytes(32).toString('base64url') + '\n';
    writeFileSync(join(dataDir, 'csrf.key'), csrf);
    writeFileSync(join(dataDir, 'refresh.key'), csrf);
    writeFileSync(join(dataDir, 'device.key'), csrf);
    const before = snapshot(dataDir);
    await assert.rejects(startOnce(dataDir, newKek()), /cannot decrypt the private key/);
    assert.deepEqual(snapshot(dataDir), before);
    await startOnce(dataDir, kek);
    assert.equal(readSecret(dataDir, 'csrf.key', kekBytes(kek)).state, 'sealed');
  });

  it('a sealed secret copied over another does not open (its name is bound as AAD)', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    await startOnce(dataDir, kek);
    copyFileSync(join(dataDir, 'csrf.key'), join(dataDir, 'refresh.key'));
    await assert.rejects(startOnce(dataDir, kek), { code: 'ERR_SECRET_FILE', message: /cannot decrypt .*refresh\.key/ });
  });

  for (const [what, content] of [
    ['empty', ''],
    ['short', randomBytes(16).toString('base64url') + '\n'],
    ['malformed', 'not a secret at all\n'],
    ['broken JSON', '{"enc":"A256GCM",'],
  ] as const) {
    it(`a ${what} secret file fails start-up naming the file, and is not regenerated over`, async () => {
      for (const kek of [undefined, newKek()]) {
        const dataDir = freshDir();
        await startOnce(dataDir, kek);
        writeFileSync(join(dataDir, 'refresh.key'), content);
        await assert.rejects(startOnce(dataDir, kek), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_SECRET_FILE');
          assert.ok(err.message.includes(join(dataDir, 'refresh.key')), err.message);
          return true;
        });
        assert.equal(readFileSync(join(dataDir, 'refresh.key'), 'utf8'), content);
      }
    });
  }
});

describe('data dir permissions', () => {
  it('a new SQLite file in an existing data dir is 0600, as are its -wal and -shm', async () => {
    const dataDir = freshDir();
    const lk = await createLatchkey(config(dataDir), { logger: false });
    for (const f of ['latchkey.sqlite', 'latchkey.sqlite-wal', 'latchkey.sqlite-shm']) {
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
    }
    await lk.close();
  });

  it('looser modes are tightened on every start, and each one is reported', async () => {
    const dataDir = freshDir();
    const { kid } = await startOnce(dataDir);
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, 'keys'), 0o755);
    for (const f of ['latchkey.sqlite', 'csrf.key', 'refresh.key', `keys/${kid}.json`]) chmodSync(join(dataDir, f), 0o644);
    const lk = await createLatchkey(config(dataDir), { logger: false });
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dataDir, 'keys')).mode & 0o777, 0o700);
    for (const f of ['latchkey.sqlite', 'latchkey.sqlite-wal', 'latchkey.sqlite-shm', 'csrf.key', 'refresh.key', `keys/${kid}.json`]) {
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
    }
    const text = lk.notices.join('\n');
    for (const f of ['latchkey.sqlite', 'csrf.key', 'refresh.key', `keys/${kid}.json`]) {
      assert.ok(text.includes(`${join(dataDir, f)} was open to other users (mode 0644): now 0600`), `${f} reported: ${text}`);
    }
    assert.ok(text.includes(`${dataDir} was open to other users (mode 0755): now 0700`), text);
    await lk.close();
  });
});
