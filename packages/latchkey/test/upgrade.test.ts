/**
 * Upgrading from a data dir made by latchkey 0.1 (test/fixtures/datadir-0.1: made by that code,
 * secrets and private keys in files, plaintext and sealed): the first start imports them into the
 * store in one transaction and deletes the files after; what clients of the old server hold (a
 * session cookie, an access token, a refresh token) keeps working, and the same key signs.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { createLatchkey, type Latchkey } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { openPrivateKey } from '../src/keys/material.js';
import { decodeSecret, SECRET_FILES } from '../src/keys/secrets.js';
import { Database } from '../src/store/sqlite/driver.js';
import { Client, FAST_ARGON2, json } from './helpers.js';

interface Fixture {
  madeAt: number;
  kek: string | null;
  issuer: string;
  email: string;
  cookie: string;
  accessToken: string;
  refreshToken: string;
  activeKid: string;
  pendingKid: string;
}

const FIXTURES = new URL('./fixtures/datadir-0.1/', import.meta.url).pathname;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the fixture `variant` as a data dir: its files, and the SQLite database rebuilt from its dump. */
function dataDirOf(variant: 'plain' | 'sealed'): { dataDir: string; fixture: Fixture } {
  const src = join(FIXTURES, variant);
  const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-upgrade-'));
  dirs.push(dataDir);
  for (const f of SECRET_FILES) cpSync(join(src, f), join(dataDir, f));
  cpSync(join(src, 'keys'), join(dataDir, 'keys'), { recursive: true });
  const db = new Database(join(dataDir, 'latchkey.sqlite'));
  db.exec(readFileSync(join(src, 'latchkey.sql'), 'utf8'));
  db.close();
  return { dataDir, fixture: JSON.parse(readFileSync(join(src, 'fixture.json'), 'utf8')) as Fixture };
}

const kekOf = (kek: string | null | undefined) => (kek ? Buffer.from(kek, 'base64') : undefined);

/** The new code on `dataDir`, at the fixture's time (a minute after it was made), listening on loopback. */
async function start(dataDir: string, fixture: Fixture, kek: string | null | undefined) {
  const config = parseConfig({
    dataDir,
    issuer: fixture.issuer,
    logLevel: 'silent',
    passwords: { argon2: FAST_ARGON2 },
    keys: kek ? { encryptionKey: kek } : {},
  });
  const now = () => fixture.madeAt + 60_000;
  const lk = await createLatchkey(config, { logger: false, now });
  await lk.http.listen({ port: 0, host: '127.0.0.1' });
  const { port } = lk.http.server.address() as { port: number };
  return { lk, url: `http://127.0.0.1:${port}`, now };
}

function stored(dataDir: string): { secrets: Record<string, string>; keys: Record<string, string | null> } {
  const db = new Database(join(dataDir, 'latchkey.sqlite'), { readonly: true });
  try {
    const secrets = db.prepare('SELECT name, value FROM secrets').all() as { name: string; value: string }[];
    const keys = db.prepare('SELECT kid, private_key FROM signing_keys').all() as { kid: string; private_key: string | null }[];
    return { secrets: Object.fromEntries(secrets.map((r) => [r.name, r.value])), keys: Object.fromEntries(keys.map((r) => [r.kid, r.private_key])) };
  } finally {
    db.close();
  }
}

for (const variant of ['plain', 'sealed'] as const) {
  describe(`upgrade from a 0.1 data dir (${variant})`, () => {
    it('imports the secrets and keys into the store, deletes the files, and what the old server handed out still works', async () => {
      const { dataDir, fixture } = dataDirOf(variant);
      const kek = kekOf(fixture.kek);
      const fileSecrets = Object.fromEntries(
        SECRET_FILES.map((name) => {
          const read = decodeSecret(name, readFileSync(join(dataDir, name), 'utf8'), kek);
          assert.ok('secret' in read);
          return [name, read.secret];
        }),
      );
      const fileKeys = Object.fromEntries(
        [fixture.activeKid, fixture.pendingKid].map((kid) => [kid, openPrivateKey(readFileSync(join(dataDir, 'keys', `${kid}.json`), 'utf8'), kid, undefined, kek, 'file')]),
      );

      let node: { lk: Latchkey; url: string; now: () => number } | undefined = await start(dataDir, fixture, fixture.kek);
      try {
        const files = [...SECRET_FILES, ...[fixture.activeKid, fixture.pendingKid].sort().map((k) => `keys/${k}.json`)];
        assert.ok(node.lk.notices.includes(`moved into the store and deleted from ${dataDir}: ${files.join(', ')}`), node.lk.notices.join('\n'));
        assert.deepEqual(readdirSync(dataDir).filter((f) => !f.includes('.sqlite')), [], 'no secret file, no keys/ left');

        // the store holds the same values, sealed as the files were
        const now = stored(dataDir);
        for (const name of SECRET_FILES) {
          const read = decodeSecret(name, now.secrets[name]!, kek);
          assert.ok('secret' in read);
          assert.deepEqual(read.secret, fileSecrets[name], name);
          assert.equal(read.sealed, kek !== undefined);
        }
        for (const [kid, file] of Object.entries(fileKeys)) {
          const key = openPrivateKey(now.keys[kid]!, kid, undefined, kek, 'in the store');
          assert.equal(key.jwk.d, file.jwk.d, `the private key of ${kid}`);
          assert.equal(key.sealed, kek !== undefined);
        }

        // the same key signs; JWKS publishes it and the pending one
        assert.equal(node.lk.context.keys.signer().kid, fixture.activeKid);
        const jwks = await json<JSONWebKeySet>(await fetch(`${node.url}/.well-known/jwks.json`));
        assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [fixture.activeKid, fixture.pendingKid].sort());

        // the old server's session cookie
        const browser = new Client(node.url);
        browser.cookies.set('__Host-latchkey', fixture.cookie);
        const me = await browser.get('/v1/session');
        assert.equal(me.status, 200);
        assert.equal((await json<{ user: { email: string } }>(me)).user.email, fixture.email);

        // its access token verifies with the new JWKS
        const at = new Date(node.now());
        await jwtVerify(fixture.accessToken, createLocalJWKSet(jwks), { issuer: fixture.issuer, currentDate: at });

        // its refresh token rotates; presented again within the grace window it gets the same successor
        // (sealed with refresh.key, imported from the file)
        const refresh = () =>
          fetch(`${node!.url}/oauth/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: fixture.refreshToken, client_id: 'latchkey' }),
          });
        const first = await refresh();
        assert.equal(first.status, 200);
        const rotated = await json<{ access_token: string; refresh_token: string }>(first);
        assert.equal(decodeProtectedHeader(rotated.access_token).kid, fixture.activeKid);
        const again = await refresh();
        assert.equal(again.status, 200);
        assert.equal((await json<{ refresh_token: string }>(again)).refresh_token, rotated.refresh_token);
        await node.lk.close();

        // a restart imports nothing more and changes nothing
        node = await start(dataDir, fixture, fixture.kek);
        assert.ok(!node.lk.notices.some((n) => n.startsWith('moved into the store')), node.lk.notices.join('\n'));
        assert.deepEqual(stored(dataDir), now);
        assert.equal(node.lk.context.keys.signer().kid, fixture.activeKid);
      } finally {
        await node?.lk.close();
      }
    });
  });
}

describe('upgrade from a 0.1 data dir: refusals', () => {
  it('a wrong key-encryption key stops start-up naming the file that does not open; nothing imported, nothing deleted', async () => {
    const { dataDir, fixture } = dataDirOf('sealed');
    const before = readdirSync(dataDir).sort();
    const wrong = Buffer.alloc(32, 7).toString('base64');
    await assert.rejects(start(dataDir, fixture, wrong), {
      code: 'ERR_SECRET_FILE',
      message: `${join(dataDir, 'csrf.key')} does not decrypt: wrong LATCHKEY_KEY_ENCRYPTION_KEY? (or it was copied from another secret)`,
    });
    await assert.rejects(start(dataDir, fixture, undefined), { code: 'ERR_SECRET_FILE', message: /csrf\.key is encrypted: set LATCHKEY_KEY_ENCRYPTION_KEY/ });
    assert.deepEqual(readdirSync(dataDir).sort(), before);
    const db = new Database(join(dataDir, 'latchkey.sqlite'), { readonly: true });
    assert.equal(db.pragma('user_version', { simple: true }), 4, 'the store was not even opened');
    db.close();
  });

  it('a key file that does not open with the key stops start-up naming it; nothing imported, nothing deleted', async () => {
    const { dataDir, fixture } = dataDirOf('sealed');
    // the secrets open, one key file was sealed with another key
    const file = join(dataDir, 'keys', `${fixture.pendingKid}.json`);
    cpSync(join(FIXTURES, 'sealed', 'keys', `${fixture.activeKid}.json`), file);
    await assert.rejects(start(dataDir, fixture, fixture.kek), {
      code: 'ERR_KEY_MATERIAL',
      message: `the private key of ${fixture.pendingKid} in ${file} holds another key`,
    });
    assert.ok(existsSync(file) && existsSync(join(dataDir, 'csrf.key')));
  });

  it('a plaintext data dir started with a key-encryption key is imported sealed', async () => {
    const { dataDir, fixture } = dataDirOf('plain');
    const kek = Buffer.alloc(32, 3).toString('base64');
    const node = await start(dataDir, fixture, kek);
    try {
      assert.equal(node.lk.context.keys.signer().kid, fixture.activeKid);
    } finally {
      await node.lk.close();
    }
    const now = stored(dataDir);
    for (const value of [...Object.values(now.secrets), ...Object.values(now.keys)]) {
      assert.equal((JSON.parse(value!) as { enc?: string }).enc, 'A256GCM');
    }
  });
});
