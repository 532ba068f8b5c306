/**
 * The README's Express, Hono and framework-free examples, run as written
 * (plain Node ESM importing '@latchkey/verify' from the built package), with
 * two substitutions only: the placeholder issuer becomes a real local one and
 * the Express port a free one.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { KeyServer, newKey, sleep, token } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const PLACEHOLDER = "'https://auth.example.com'";

/** The first ```js block after `heading`. */
function example(heading: string): string {
  const at = README.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README has ${heading}`);
  const block = /```js\n([\s\S]*?)```/.exec(README.slice(at))?.[1];
  assert.ok(block, `README has a js block under ${heading}`);
  return block;
}

const key = newKey('EdDSA');
const server = new KeyServer(key);
let dir: string;
let child: ChildProcess | undefined;

before(async () => {
  // the examples import the built package, as a user's code would
  await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', join(ROOT, 'packages/verify')]);
  await server.start();
  dir = mkdtempSync(join(tmpdir(), 'latchkey-verify-readme-'));
  // resolve packages as from inside the repository
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
});
after(async () => {
  if (child && child.exitCode === null) child.kill();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, code: string): string {
  assert.ok(code.includes(PLACEHOLDER), 'the example uses the placeholder issuer');
  const file = join(dir, name);
  writeFileSync(file, code.replaceAll(PLACEHOLDER, JSON.stringify(server.issuer)));
  return file;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

describe('README examples', () => {
  it('the Express example is five lines and works as written', async () => {
    const code = example('### Express');
    assert.equal(code.trim().split('\n').length, 5);
    assert.match(code, /\.listen\(3000\)/);
    const port = await freePort();
    const file = write('express-example.mjs', code.replace('.listen(3000)', `.listen(${port})`));
    child = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
    let res: Response | undefined;
    for (let i = 0; i < 100 && !res; i++) {
      res = await fetch(`http://localhost:${port}/orders`, { headers: { authorization: `Bearer ${token(key, server.issuer, 'orders', { sub: 'u_ada' })}` } }).catch(() => undefined);
      if (!res) await sleep(50);
    }
    assert.ok(res, 'the example server answers');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: 'u_ada' });
    const refused = await fetch(`http://localhost:${port}/orders`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
    const wrongAudience = await fetch(`http://localhost:${port}/orders`, { headers: { authorization: `Bearer ${token(key, server.issuer, 'profile')}` } });
    assert.equal(wrongAudience.status, 401);
    child.kill();
  });

  it('the Hono example is five lines and works as written', async () => {
    const code = example('### Hono');
    assert.equal(code.trim().split('\n').length, 5);
    const app = (await import(pathToFileURL(write('hono-example.mjs', code)).href)).default as { fetch(r: Request): Promise<Response> };
    const ok = await app.fetch(new Request('http://localhost/orders', { headers: { authorization: `Bearer ${token(key, server.issuer, 'orders', { sub: 'u_bob' })}` } }));
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { user: 'u_bob' });
    const refused = await app.fetch(new Request('http://localhost/orders', { headers: { authorization: 'Bearer x.y.z' } }));
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
  });

  it('the framework-free example works as written', async () => {
    const code = example('### Any runtime with `Request` and `Response`');
    const handler = (await import(pathToFileURL(write('fetch-example.mjs', code)).href)).default as { fetch(r: Request): Promise<Response> };
    const ok = await handler.fetch(new Request('http://localhost/', { headers: { authorization: `Bearer ${token(key, server.issuer, 'orders', { sub: 'u_cy' })}` } }));
    assert.deepEqual(await ok.json(), { user: 'u_cy' });
    const refused = await handler.fetch(new Request('http://localhost/'));
    assert.equal(refused.status, 401);
  });
});
