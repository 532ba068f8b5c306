import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
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
