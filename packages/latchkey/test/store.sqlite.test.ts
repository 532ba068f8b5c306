import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { DEVICE_PRUNE_ABOVE, SqliteStore } from '../src/store/sqlite/index.js';
import { driverPackage } from '../src/store/sqlite/driver.js';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeCall } from './sqlite-node.worker.js';
import { atRestStoreContract } from './store.at-rest.contract.js';
import { storeContract } from './store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let i = 0;

storeContract('sqlite', async () => new SqliteStore({ filename: join(dir, `s${++i}.sqlite`) }));
// peers are connections of this process: better-sqlite3 is synchronous, so their calls run one after
// another; the same races across threads, truly at once, are below ('nodes in worker threads')
atRestStoreContract('sqlite', async () => {
  const filename = join(dir, `r${++i}.sqlite`);
  return { store: new SqliteStore({ filename }), peer: () => new SqliteStore({ filename }) };
});

/**
 * Run `calls` at once, each in a worker thread with its own connection to `filename` (as processes
 * on one data dir would be): every worker opens and migrates, waits at a barrier, then all call.
 */
async function atOnce<T>(filename: string, calls: NodeCall[]): Promise<T[]> {
  const barrier = new SharedArrayBuffer(8);
  const flags = new Int32Array(barrier);
  // the worker is TypeScript: register tsx in it first (a worker does not inherit the loader on Node 20)
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./sqlite-node.worker.ts', import.meta.url).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  const workers = calls.map((call) => new Worker(code, { eval: true, workerData: { filename, call, barrier } }));
  const results = workers.map(
    (w) =>
      new Promise<T>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  const deadline = Date.now() + 60_000;
  while (Atomics.load(flags, 0) < calls.length) {
    if (Date.now() > deadline) throw new Error('workers did not get ready');
    await sleep(5);
  }
  Atomics.store(flags, 1, 1);
  Atomics.notify(flags, 1);
  try {
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

describe('sqlite store: nodes in worker threads, at once', () => {
  const NODES = 6;
  const key = (kid: string, activatesAt: number) => ({
    kid,
    alg: 'EdDSA' as const,
    publicJwk: `{"kid":"${kid}"}`,
    createdAt: activatesAt - 10,
    activatesAt,
    deactivatesAt: null,
    retiredAt: null,
    privateKey: `private-${kid}`,
  });

  it(`${NODES} connections adding the secrets to an empty file at once all get the same values, one caller's each`, async () => {
    const filename = join(dir, 'race-secrets.sqlite');
    const setup = new SqliteStore({ filename });
    await setup.migrate();
    await setup.close();
    const offers = Array.from({ length: NODES }, () => ({
      'csrf.key': randomBytes(32).toString('base64url'),
      'refresh.key': randomBytes(32).toString('base64url'),
      'device.key': randomBytes(32).toString('base64url'),
    }));
    const results = await atOnce<{ secrets: Record<string, string> }>(
      filename,
      offers.map((secrets) => ({ op: 'addAtRest', add: { secrets, privateKeys: {} } })),
    );
    for (const r of results) assert.deepEqual(r.secrets, results[0]!.secrets);
    for (const name of ['csrf.key', 'refresh.key', 'device.key'] as const) {
      assert.ok(offers.some((o) => o[name] === results[0]!.secrets[name]), name);
    }
  });

  it(`${NODES} connections scheduling one rotation at once add exactly one key`, async () => {
    const filename = join(dir, 'race-keys.sqlite');
    const setup = new SqliteStore({ filename });
    await setup.migrate();
    await setup.addSigningKey(key('k0', 100));
    const added = await atOnce<boolean>(
      filename,
      Array.from({ length: NODES }, (_, n) => ({ op: 'addSigningKey', key: key(`next${n}`, 500), guards: { unlessScheduledAfter: 100 } })),
    );
    assert.equal(added.filter(Boolean).length, 1);
    const winner = added.indexOf(true);
    assert.deepEqual((await setup.listSigningKeys()).map((k) => k.kid), ['k0', `next${winner}`]);
    assert.equal(await setup.getPrivateKey(`next${winner}`), `private-next${winner}`);
    await setup.close();
  });

  it(`${NODES} connections starting on a file with no key add exactly one first key`, async () => {
    const filename = join(dir, 'race-first.sqlite');
    const setup = new SqliteStore({ filename });
    await setup.migrate();
    const added = await atOnce<boolean>(
      filename,
      // their clocks a second apart, as nodes' may be
      Array.from({ length: NODES }, (_, n) => ({ op: 'addSigningKey', key: key(`first${n}`, 100 + (n % 2)), guards: { unlessSigningFrom: 100 + (n % 2) } })),
    );
    assert.equal(added.filter(Boolean).length, 1);
    assert.equal((await setup.listSigningKeys()).length, 1);
    await setup.close();
  });
});

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
