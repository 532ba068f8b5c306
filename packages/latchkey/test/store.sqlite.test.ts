import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { DEVICE_PRUNE_ABOVE, SqliteStore } from '../src/store/sqlite/index.js';
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

  it('the sweep forgets device labels no session shows once there are more than DEVICE_PRUNE_ABOVE', async () => {
    const store = new SqliteStore({ filename: join(dir, 'devices.sqlite') });
    await store.migrate();
    await store.createUser({ id: 'u_dev', email: 'dev@example.com', passwordHash: 'h', createdAt: 1 });
    const base = { userId: 'u_dev', createdAt: 1000, lastSeenAt: 1000, ip: '192.0.2.1' };
    const live = { ...base, idHash: randomBytes(32), expiresAt: 100_000, device: 'Firefox on Linux' };
    await store.createSession(live);
    // one session per made-up label, as clients with arbitrary User-Agents could leave behind
    for (let i = 0; i <= DEVICE_PRUNE_ABOVE; i++) {
      await store.createSession({ ...base, idHash: randomBytes(32), expiresAt: 1500, device: `Made up ${i}` });
    }
    const devices = () => store.db.prepare('SELECT label FROM devices ORDER BY label').pluck().all();
    assert.equal(devices().length, DEVICE_PRUNE_ABOVE + 2);
    assert.equal(await store.deleteExpiredSessions(2000, 86400), DEVICE_PRUNE_ABOVE + 1);
    assert.deepEqual(devices(), ['Firefox on Linux']);
    assert.equal((await store.getSession(live.idHash))?.session.device, 'Firefox on Linux');
    await store.close();
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
