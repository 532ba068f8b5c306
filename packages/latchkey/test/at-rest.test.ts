/**
 * Secrets at rest (issue 12 item 13, issue 13 item 6): the node-wide secrets and the private
 * signing keys live in the store, sealed with the key-encryption key when one is set (on
 * PostgreSQL one must be), plaintext ones are sealed when the key is turned on, a wrong key or a
 * damaged value stops start-up naming it with nothing written, and the data dir keeps nothing
 * secret; its permissions are enforced on every start. The upgrade from a 0.1 data dir is in
 * upgrade.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createLatchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { generateKeyMaterial, openPrivateKey, privateJwkOf, privateKeyText } from '../src/keys/material.js';
import { decodeSecret, SECRET_FILES, type SecretName } from '../src/keys/secrets.js';
import { Database } from '../src/store/sqlite/driver.js';
import { FAST_ARGON2, startServer, TEST_KEK } from './helpers.js';
import { createDatabase } from './postgres.js';
import { form, loginTokens, signup } from './token-helpers.js';

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

/** Run `fn` on the SQLite store of `dataDir` (the server stopped). */
function sqlite<T>(dataDir: string, fn: (db: InstanceType<typeof Database>) => T): T {
  const db = new Database(join(dataDir, 'latchkey.sqlite'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
const storedSecrets = (dataDir: string) =>
  Object.fromEntries(sqlite(dataDir, (db) => db.prepare('SELECT name, value FROM secrets').all() as { name: string; value: string }[]).map((r) => [r.name, r.value]));
const storedKeys = (dataDir: string) =>
  sqlite(dataDir, (db) => db.prepare('SELECT kid, alg, private_key FROM signing_keys ORDER BY activates_at, kid').all() as { kid: string; alg: 'EdDSA'; private_key: string | null }[]);
/** What is at rest in the store: a rewrite anywhere shows as a difference. */
const snapshot = (dataDir: string) => ({ secrets: storedSecrets(dataDir), keys: storedKeys(dataDir) });
const setSecret = (dataDir: string, name: string, value: string) =>
  sqlite(dataDir, (db) => db.prepare('UPDATE secrets SET value = ? WHERE name = ?').run(value, name));
const secretOf = (dataDir: string, name: SecretName, kek: string | undefined) => {
  const read = decodeSecret(name, storedSecrets(dataDir)[name]!, kek ? kekBytes(kek) : undefined);
  assert.ok('secret' in read, JSON.stringify(read));
  return read;
};

const PLAIN_SECRET = /^[A-Za-z0-9_-]{43}$/;

describe('secrets at rest in the store', () => {
  it('without a key-encryption key (SQLite): in the store in plaintext, nothing in the data dir, and one warning naming LATCHKEY_KEY_ENCRYPTION_KEY and how to make one', async () => {
    const dataDir = freshDir();
    const { notices } = await startOnce(dataDir);
    const warnings = notices.filter((n) => n.includes('LATCHKEY_KEY_ENCRYPTION_KEY'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /unencrypted/);
    assert.match(warnings[0]!, /openssl rand -base64 32/);
    const secrets = storedSecrets(dataDir);
    assert.deepEqual(Object.keys(secrets).sort(), [...SECRET_FILES].sort());
    for (const name of SECRET_FILES) assert.match(secrets[name]!, PLAIN_SECRET, name);
    for (const name of [...SECRET_FILES, 'keys']) assert.equal(existsSync(join(dataDir, name)), false, name);
  });

  it('with a key-encryption key: the three secrets and the signing key are sealed in the store, and reopen with the same values', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    const first = await startOnce(dataDir, kek);
    assert.deepEqual(first.notices, []);
    for (const name of SECRET_FILES) {
      assert.equal((JSON.parse(storedSecrets(dataDir)[name]!) as { enc?: string }).enc, 'A256GCM', name);
      assert.equal(secretOf(dataDir, name, kek).sealed, true);
    }
    const key = storedKeys(dataDir)[0]!;
    assert.equal(openPrivateKey(key.private_key!, key.kid, key.alg, kekBytes(kek), 'in the store').sealed, true);
    const csrf = secretOf(dataDir, 'csrf.key', kek).secret;
    const again = await startOnce(dataDir, kek);
    assert.equal(again.kid, first.kid);
    assert.deepEqual(secretOf(dataDir, 'csrf.key', kek).secret, csrf);
  });

  it('turning the key on later seals the plaintext secrets and keys in place, keeping their values', async () => {
    const dataDir = freshDir();
    const plain = await startOnce(dataDir);
    const csrf = secretOf(dataDir, 'csrf.key', undefined).secret;
    const refresh = secretOf(dataDir, 'refresh.key', undefined).secret;
    const kek = newKek();
    const sealed = await startOnce(dataDir, kek);
    assert.equal(sealed.kid, plain.kid, 'the same signing key signs');
    assert.ok(
      sealed.notices.includes(
        `encrypted with LATCHKEY_KEY_ENCRYPTION_KEY in the store: csrf.key, refresh.key, device.key, the private key of ${plain.kid} (they were plaintext)`,
      ),
      sealed.notices.join('\n'),
    );
    assert.deepEqual(secretOf(dataDir, 'csrf.key', kek), { secret: csrf, sealed: true });
    assert.deepEqual(secretOf(dataDir, 'refresh.key', kek), { secret: refresh, sealed: true });
    const key = storedKeys(dataDir)[0]!;
    assert.equal((JSON.parse(key.private_key!) as { enc?: string; jwk?: unknown }).enc, 'A256GCM');
    assert.equal((JSON.parse(key.private_key!) as { jwk?: unknown }).jwk, undefined);
  });

  it('a wrong key or no key fails start-up naming the secret that does not open, and writes nothing', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    await startOnce(dataDir, kek);
    const before = snapshot(dataDir);
    await assert.rejects(startOnce(dataDir, newKek()), {
      code: 'ERR_STORED_SECRET',
      message: /^the secret csrf\.key in the store does not decrypt: wrong LATCHKEY_KEY_ENCRYPTION_KEY\?/,
    });
    await assert.rejects(startOnce(dataDir), { code: 'ERR_STORED_SECRET', message: /csrf\.key in the store is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY/ });
    assert.deepEqual(snapshot(dataDir), before);
    await startOnce(dataDir, kek);
  });

  it('a private key that does not open with the key stops start-up naming its kid; nothing is regenerated over it', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    const { kid } = await startOnce(dataDir, kek);
    // the key sealed with another key-encryption key (the secrets still open): as if copied from another cluster
    const row = storedKeys(dataDir)[0]!;
    const opened = openPrivateKey(row.private_key!, kid, row.alg, kekBytes(kek), 'in the store');
    const foreign = privateKeyText(opened, kekBytes(newKek()));
    sqlite(dataDir, (db) => db.prepare('UPDATE signing_keys SET private_key = ? WHERE kid = ?').run(foreign, kid));
    const before = snapshot(dataDir);
    await assert.rejects(startOnce(dataDir, kek), {
      code: 'ERR_KEY_MATERIAL',
      message: `cannot decrypt the private key of ${kid} in the store: wrong LATCHKEY_KEY_ENCRYPTION_KEY?`,
    });
    assert.deepEqual(snapshot(dataDir), before, 'no key added, nothing resealed');
    // a private half that is another key's
    const other = privateKeyText(privateJwkOf(await generateKeyMaterial('EdDSA')), kekBytes(kek));
    sqlite(dataDir, (db) => db.prepare('UPDATE signing_keys SET private_key = ? WHERE kid = ?').run(other, kid));
    await assert.rejects(startOnce(dataDir, kek), { code: 'ERR_KEY_MATERIAL', message: new RegExp(`the private key of ${kid} in the store holds another key`) });
  });

  it('a sealed secret copied over another does not open (its name is bound as AAD)', async () => {
    const dataDir = freshDir();
    const kek = newKek();
    await startOnce(dataDir, kek);
    setSecret(dataDir, 'refresh.key', storedSecrets(dataDir)['csrf.key']!);
    await assert.rejects(startOnce(dataDir, kek), { code: 'ERR_STORED_SECRET', message: /the secret refresh\.key in the store does not decrypt/ });
  });

  for (const [what, content] of [
    ['empty', ''],
    ['short', randomBytes(16).toString('base64url')],
    ['malformed', 'not a secret at all'],
    ['broken JSON', '{"enc":"A256GCM",'],
  ] as const) {
    it(`a ${what} secret in the store fails start-up naming it, and is not regenerated over`, async () => {
      for (const kek of [undefined, newKek()]) {
        const dataDir = freshDir();
        await startOnce(dataDir, kek);
        setSecret(dataDir, 'refresh.key', content);
        await assert.rejects(startOnce(dataDir, kek), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_STORED_SECRET');
          assert.match(err.message, /^the secret refresh\.key in the store /);
          assert.ok(err.message.includes("secrets.name = 'refresh.key'"), err.message);
          return true;
        });
        assert.equal(storedSecrets(dataDir)['refresh.key'], content);
      }
    });
  }
});

describe('data dir files of an earlier latchkey (the upgrade itself: upgrade.test.ts)', () => {
  for (const [what, content] of [
    ['empty', ''],
    ['short', randomBytes(16).toString('base64url') + '\n'],
    ['malformed', 'not a secret at all\n'],
    ['broken JSON', '{"enc":"A256GCM",'],
  ] as const) {
    it(`a ${what} secret file fails start-up naming the file; nothing is imported or created, the file stays`, async () => {
      for (const kek of [undefined, newKek()]) {
        const dataDir = freshDir();
        writeFileSync(join(dataDir, 'refresh.key'), content);
        await assert.rejects(startOnce(dataDir, kek), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_SECRET_FILE');
          assert.ok(err.message.includes(join(dataDir, 'refresh.key')), err.message);
          return true;
        });
        assert.equal(readFileSync(join(dataDir, 'refresh.key'), 'utf8'), content);
        assert.equal(existsSync(join(dataDir, 'latchkey.sqlite')), false);
      }
    });
  }

  it('a secret file that differs from the stored secret stops start-up naming it, and nothing is deleted', async () => {
    const dataDir = freshDir();
    await startOnce(dataDir);
    const before = snapshot(dataDir);
    const file = join(dataDir, 'csrf.key');
    writeFileSync(file, randomBytes(32).toString('base64url') + '\n');
    await assert.rejects(startOnce(dataDir), { code: 'ERR_STORED_SECRET', message: new RegExp(`^${file} differs from the csrf\\.key the store already holds`) });
    assert.ok(existsSync(file));
    assert.deepEqual(snapshot(dataDir), before);
  });

  it('a key file of a key the store does not know is left in place, with a notice', async () => {
    const dataDir = freshDir();
    await startOnce(dataDir);
    const m = await generateKeyMaterial('EdDSA');
    mkdirSync(join(dataDir, 'keys'));
    writeFileSync(join(dataDir, 'keys', `${m.kid}.json`), privateKeyText(privateJwkOf(m), undefined) + '\n');
    const { notices } = await startOnce(dataDir);
    assert.ok(notices.some((n) => n.includes(`the store has no key ${m.kid}, so it was not imported; left in place`)), notices.join('\n'));
    assert.ok(existsSync(join(dataDir, 'keys', `${m.kid}.json`)));
    assert.equal(
      storedKeys(dataDir).some((k) => k.kid === m.kid),
      false,
    );
  });
});

describe('data dir permissions', () => {
  it('the data dir holds the SQLite database and the rate-limit counters, nothing else', async () => {
    const dataDir = freshDir();
    await startOnce(dataDir, newKek());
    const names = readdirSync(dataDir).filter((f) => !/-(wal|shm|journal)$/.test(f)).sort();
    assert.deepEqual(names, ['latchkey.sqlite', 'ratelimits.sqlite']);
  });

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
    await startOnce(dataDir);
    chmodSync(dataDir, 0o755);
    for (const f of ['latchkey.sqlite', 'ratelimits.sqlite']) chmodSync(join(dataDir, f), 0o644);
    const lk = await createLatchkey(config(dataDir), { logger: false });
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    for (const f of ['latchkey.sqlite', 'latchkey.sqlite-wal', 'latchkey.sqlite-shm', 'ratelimits.sqlite']) {
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
    }
    const text = lk.notices.join('\n');
    for (const f of ['latchkey.sqlite', 'ratelimits.sqlite']) {
      assert.ok(text.includes(`${join(dataDir, f)} was open to other users (mode 0644): now 0600`), `${f} reported: ${text}`);
    }
    assert.ok(text.includes(`${dataDir} was open to other users (mode 0755): now 0700`), text);
    await lk.close();
  });
});

describe('at rest on PostgreSQL', () => {
  it('with the key-encryption key, no secret and no private key is anywhere in the database in plaintext', async () => {
    const url = await createDatabase();
    const srv = await startServer({ store: { kind: 'postgres', url } });
    const kek = kekBytes(TEST_KEK);
    let needles: { what: string; text: string }[];
    let publicXs: string[];
    try {
      // state in every table: a user, a session, a refresh family with a sealed successor, a pending key
      const { email } = await signup(srv);
      const tokens = await loginTokens(srv, email);
      const res = await form(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'latchkey' });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      await srv.lk.context.keys.rotate();
      const atRest = await srv.lk.store.readAtRest();
      assert.equal(Object.keys(atRest.privateKeys).length, 2);
      needles = [];
      publicXs = (await srv.lk.store.listSigningKeys()).map((k) => (JSON.parse(k.publicJwk) as { x: string }).x);
      for (const name of SECRET_FILES) {
        const read = decodeSecret(name, atRest.secrets[name]!, kek);
        assert.ok('secret' in read && read.sealed, name);
        for (const enc of ['base64url', 'base64', 'hex'] as const) needles.push({ what: `${name} (${enc})`, text: read.secret.toString(enc) });
      }
      for (const [kid, text] of Object.entries(atRest.privateKeys)) {
        const d = Buffer.from(openPrivateKey(text, kid, undefined, kek, 'in the store').jwk.d!, 'base64url');
        for (const enc of ['base64url', 'base64', 'hex'] as const) needles.push({ what: `private key of ${kid} (${enc})`, text: d.toString(enc) });
      }
    } finally {
      await srv.close();
    }
    // every row of every table, as PostgreSQL prints it (bytea as hex)
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    let dump = '';
    try {
      const tables = await c.query<{ name: string }>("SELECT quote_ident(table_name) AS name FROM information_schema.tables WHERE table_schema = 'public'");
      assert.ok(tables.rows.some((t) => t.name === 'secrets'));
      for (const t of tables.rows) {
        for (const r of (await c.query<{ row: string }>(`SELECT t::text AS row FROM ${t.name} t`)).rows) dump += r.row + '\n';
      }
    } finally {
      await c.end();
    }
    // the scan sees the rows that hold them: the sealed secrets, and each key's public half beside its private one
    assert.ok(dump.includes('A256GCM') && dump.includes('csrf.key') && dump.includes('refresh.key'));
    for (const x of publicXs) assert.ok(dump.includes(x), 'a public key is found by the scan');
    for (const n of needles) assert.ok(!dump.includes(n.text), `${n.what} is in the database in plaintext`);
  });
});
