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
    assert.throws(() => loadConfig({ configFile: file }, {}), /not valid JSON/);
    assert.throws(() => loadConfig({ configFile: join(dir, 'missing.json') }, {}), /cannot read config file/);
    writeFileSync(file, '[1]');
    assert.throws(() => loadConfig({ configFile: file }, {}), /JSON object/);
  });
});
