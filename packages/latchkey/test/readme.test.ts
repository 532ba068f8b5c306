import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { startServer, type TestServer } from './helpers.js';

let srv: TestServer;
before(async () => {
  srv = await startServer();
});
after(() => srv.close());

it('the README curl walk-through works as written', async () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Walk-through with curl'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'README has the walk-through block');
  const port = new URL(srv.url).port;
  const script = block.replaceAll('localhost:8080', `localhost:${port}`);
  const cwd = mkdtempSync(join(tmpdir(), 'latchkey-readme-'));
  // async: the server runs in this process and must keep answering
  const { stdout: out } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  const lines = out.trim().split('\n');
  // signup, login, list: JSON; then 204; then the phone's 401 problem; then 204
  assert.match(lines[0]!, /"email":"ada@example.com"/);
  assert.match(lines[1]!, /"email":"ada@example.com"/);
  assert.equal(JSON.parse(lines[2]!).sessions.length, 2);
  assert.equal(lines[3], '204');
  assert.equal(JSON.parse(lines[4]!).status, 401);
  assert.equal(lines[5], '204');
});
