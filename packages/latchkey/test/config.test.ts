import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../src/config.js';

describe('config', () => {
  it('has working defaults: embedded store, EdDSA, __Host- cookie, OWASP argon2id', () => {
    const c = parseConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.dataDir, '.latchkey');
    assert.equal(c.issuer, 'http://localhost:8080');
    assert.equal(c.sessions.cookieName, '__Host-latchkey');
    assert.equal(c.sessions.sameSite, 'lax');
    assert.deepEqual(c.passwords.argon2, { memoryKiB: 19456, iterations: 2, parallelism: 1 });
    assert.equal(c.tokens.algorithm, 'EdDSA');
  });

  it('names the bad key and the reason', () => {
    assert.throws(() => parseConfig({ port: 'eighty' }), (e: Error) => e instanceof ConfigError && /port/.test(e.message));
    assert.throws(() => parseConfig({ sessions: { sameSite: 'none' } }), /sessions\.sameSite/);
    assert.throws(() => parseConfig({ sessions: { idelTimeoutSeconds: 5 } }), /sessions/);
    assert.throws(() => parseConfig({ passwords: { argon2: { memoryKiB: 10 } } }), /passwords\.argon2\.memoryKiB/);
    assert.throws(() => parseConfig({ adminKey: 'short' }), /adminKey/);
    assert.throws(() => parseConfig({ portt: 1 }), /portt|root|additional/i);
    assert.throws(
      () => parseConfig({ sessions: { idleTimeoutSeconds: 7200, absoluteLifetimeSeconds: 3600 } }),
      /absoluteLifetimeSeconds/,
    );
  });

  it('layers file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 1000, host: '0.0.0.0', dataDir: 'from-file' }));
    const c = loadConfig({ configFile: file, port: '3000' }, { LATCHKEY_PORT: '2000', LATCHKEY_DATA_DIR: 'from-env' });
    assert.equal(c.port, 3000);
    assert.equal(c.dataDir, 'from-env');
    assert.equal(c.host, '0.0.0.0');
  });

  it('reports an unreadable or malformed file clearly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cfg-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ "port": ');
    assert.throws(() => loadConfig({ configFile: file }, {}), /not valid JSON: ValueExpected at line 1, column 11$/);
    assert.throws(() => loadConfig({ configFile: join(dir, 'missing.json') }, {}), /cannot read config file/);
    writeFileSync(file, '[1]');
    assert.throws(() => loadConfig({ configFile: file }, {}), /JSON object/);
  });

  it('a file that is not JSON is reported by line and column only, never with its text (it holds secrets)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cfg-'));
    const file = join(dir, 'secret.json');
    const secret = 'Sup3rS3cretAdminKeyThatMustNeverBeEchoed';
    for (const [text, where] of [
      [`{\n  "port": 8080,\n  "adminKey": "${secret}",\n}`, /PropertyNameExpected at line 4, column 1$/],
      [`{\n  "adminKey": "${secret}"\n  "port": 1\n}`, /CommaExpected at line 3, column 3$/],
      [`{ "adminKey": ${secret} }`, /InvalidSymbol at line 1, column 15$/],
      [`{ "adminKey": "${secret}`, /UnexpectedEndOfString at line 1, column 15$/],
      [`{ "adminKey": "${secret}" } ${secret}`, /at line 1, column \d+$/],
    ] as const) {
      writeFileSync(file, text);
      assert.throws(
        () => loadConfig({ configFile: file }, {}),
        (e: Error) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, where);
          for (let i = 0; i + 6 <= secret.length; i++) assert.ok(!e.message.includes(secret.slice(i, i + 6)), e.message);
          assert.ok(!e.message.includes('adminKey'), e.message);
          return true;
        },
      );
    }
  });

  it('refuses secrets of whitespace, invisible characters or a pattern, naming the key and never the value', () => {
    const good = 'k3J9-vQ2_xW8pL5mN7bR4tY6uI1oA0sDf';
    const weak: [string, RegExp][] = [
      [' '.repeat(32), /whitespace, control or invisible/],
      ['\n'.repeat(32), /whitespace, control or invisible/],
      [`${good}\n`, /whitespace, control or invisible/],
      [`${good.slice(0, 16)} ${good.slice(16)}`, /whitespace, control or invisible/],
      [`${good}\u200b`, /whitespace, control or invisible/],
      [`${good}\u00a0`, /whitespace, control or invisible/],
      [`${good}\u0000`, /whitespace, control or invisible/],
      [`${good}\ud800`, /whitespace, control or invisible/],
      ['a'.repeat(40), /too predictable/],
      ['ab'.repeat(20), /too predictable/],
      ['0123456'.repeat(5), /too predictable/],
    ];
    for (const [secret, why] of weak) {
      const checks: [Record<string, unknown>, string][] = [
        [{ adminKey: secret }, 'adminKey'],
        [{ clients: [{ id: 'svc', secret }] }, 'clients.0.secret'],
      ];
      for (const [cfg, key] of checks) {
        assert.throws(
          () => parseConfig(cfg),
          (e: Error) =>
            e instanceof ConfigError &&
            e.message.startsWith(`invalid config: ${key}: `) &&
            why.test(e.message) &&
            !e.message.includes(secret.trim() || secret),
          `${key} ${JSON.stringify(secret)}`,
        );
      }
    }
    // the admin key travels in a header: visible ASCII only; a client secret (HTTP Basic, base64) may be any text
    assert.throws(() => parseConfig({ adminKey: `${good}é` }), /invalid config: adminKey: must be visible ASCII/);
    assert.equal(parseConfig({ clients: [{ id: 'svc', secret: `${good}é` }] }).clients[0]!.secret, `${good}é`);
    // through the environment too
    assert.throws(() => loadConfig({}, { LATCHKEY_ADMIN_KEY: ' '.repeat(40) }), /invalid config: adminKey: must not contain whitespace/);
    // generated secrets pass: base64, base64url, hex
    for (const k of [good, 'q1w2e3r4t5y6u7i8o9p0asdfghjklzxc', '3f9a0c1e7b2d4f6a8c0e1b3d5f7a9c2e', 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2Q=']) {
      assert.equal(parseConfig({ adminKey: k, clients: [{ id: 'svc', secret: k }] }).adminKey, k);
    }
  });

  it('validation errors name the key, never a secret value', () => {
    const m = 'MARKER0123456789';
    const cases: Record<string, unknown>[] = [
      { adminKey: m },
      { adminKey: [m] },
      { clients: [{ id: 'svc', secret: m }] },
      { clients: [{ id: 'svc', secret: { v: m } }] },
      { keys: { encryptionKey: m } },
      { keys: { encryptionKey: `${m}${m}${m}===` } },
      { gateway: { routes: [{ prefix: '/a', upstream: `http://user:${m}@`, audience: 'a' }] } },
      { sessions: { cookieName: m } },
    ];
    for (const c of cases) {
      assert.throws(
        () => parseConfig(c),
        (e: Error) => e instanceof ConfigError && e.message.startsWith('invalid config: ') && !e.message.includes(m),
        JSON.stringify(c),
      );
    }
    // and through the environment
    assert.throws(() => loadConfig({}, { LATCHKEY_ADMIN_KEY: m }), (e: Error) => /^invalid config: adminKey: /.test(e.message) && !e.message.includes(m));
  });

  it('the session cookie name must carry the __Host- prefix, and not be the sign-in form\'s cookie', () => {
    for (const name of ['latchkey', '__Secure-latchkey', '__host-latchkey', '__Host-', 'x__Host-latchkey']) {
      assert.throws(() => parseConfig({ sessions: { cookieName: name } }), /^ConfigError: invalid config: sessions\.cookieName: must start with __Host- /, name);
    }
    assert.throws(() => parseConfig({ sessions: { cookieName: '__Host-latchkey-csrf' } }), /invalid config: sessions\.cookieName: __Host-latchkey-csrf is the sign-in form's cookie/);
    assert.equal(parseConfig({ sessions: { cookieName: '__Host-myapp' } }).sessions.cookieName, '__Host-myapp');
  });

  it('gateway.loginPath must be an ASCII path here (it goes into Location), and a prefix has no //', () => {
    for (const bad of ['https://evil.example/signin', '//evil.example', '/\\evil.example', '/中', '/sign in', 'signin']) {
      assert.throws(() => parseConfig({ gateway: { loginPath: bad } }), /^ConfigError: invalid config: gateway\.loginPath: /, bad);
    }
    assert.equal(parseConfig({ gateway: { loginPath: '/login' } }).gateway.loginPath, '/login');
    const route = { upstream: 'http://127.0.0.1:9', audience: 'a' };
    assert.throws(() => parseConfig({ gateway: { routes: [{ ...route, prefix: '/a//b' }] } }), /invalid config: gateway\.routes\.0\.prefix: must not contain \/\//);
  });
});
