import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { driverPackage } from '../src/store/sqlite/driver.js';
import { storeContract } from './store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let i = 0;

storeContract('sqlite', async () => new SqliteStore({ filename: join(dir, `s${++i}.sqlite`) }));

describe('sqlite store', () => {
  it('loads the Node-API better-sqlite3 on Node >= 22 (12 aborts on Node 24)', () => {
    const major = Number(process.versions.node.split('.')[0]);
    assert.equal(driverPackage, major >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3');
  });

  it('uses WAL and keeps data across reopen', async () => {
    const file = join(dir, 'reopen.sqlite');
    const a = new SqliteStore({ filename: file });
    await a.migrate();
    assert.equal(a.db.pragma('journal_mode', { simple: true }), 'wal');
    await a.createUser({ id: 'u_keep', email: 'keep@example.com', passwordHash: 'h', createdAt: 1 });
    await a.close();
    const b = new SqliteStore({ filename: file });
    await b.migrate();
    assert.equal((await b.getUserById('u_keep'))?.email, 'keep@example.com');
    await b.close();
  });

  it('refuses a database from a newer version', async () => {
    const file = join(dir, 'newer.sqlite');
    const a = new SqliteStore({ filename: file });
    await a.migrate();
    a.db.pragma('user_version = 999');
    await a.close();
    const b = new SqliteStore({ filename: file });
    await assert.rejects(b.migrate(), /newer than this latchkey/);
    await b.close();
  });
});
