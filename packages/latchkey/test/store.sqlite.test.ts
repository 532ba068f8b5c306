import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { handleOf } from '../src/sessions/ids.js';
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
const RACER = new URL('./fixtures/sqlite-racer.mjs', import.meta.url).pathname;
const sha = (b: Buffer) => createHash('sha256').update(b).digest();
/** JSON with Buffers as "hex:…", as the racer reads it. */
const encode = (v: unknown) => JSON.stringify(v, (_k, x) => (x && x.type === 'Buffer' && Array.isArray(x.data) ? `hex:${Buffer.from(x.data).toString('hex')}` : x));

/**
 * Run one call per argument in processes of their own, each with its own connection to `file`,
 * all released at once when every one is ready. Returns what each printed.
 */
async function race<T>(file: string, op: 'rotate' | 'login', args: unknown[]): Promise<T[]> {
  const children = args.map((a) => spawn(process.execPath, [RACER, file, op, encode(a)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = children.map((c) => {
    const out: string[] = [];
    let buf = '';
    let ready: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') ready();
        else out.push(line);
      }
    });
    const exited = new Promise<void>((resolve, reject) =>
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`racer exited with ${code}`)))),
    );
    return { isReady, exited, out };
  });
  await Promise.all(lines.map((l) => l.isReady));
  for (const c of children) c.stdin.write('go\n');
  await Promise.all(lines.map((l) => l.exited));
  return lines.map((l) => JSON.parse(l.out[0]!) as T);
}

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

  it('externalWriteCounter moves when another connection commits, not for this one’s own writes', async () => {
    const file = join(dir, 'counter.sqlite');
    const a = new SqliteStore({ filename: file });
    await a.migrate();
    const b = new SqliteStore({ filename: file });
    await b.migrate();
    try {
      const start = a.externalWriteCounter();
      await a.createUser({ id: 'u_own', email: 'own@example.com', passwordHash: 'h', createdAt: 1 });
      assert.equal(a.externalWriteCounter(), start);
      await b.createUser({ id: 'u_other', email: 'other@example.com', passwordHash: 'h', createdAt: 1 });
      assert.notEqual(a.externalWriteCounter(), start);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('rotations of one token from eight processes at once: exactly one rotates, the others share its successor', async () => {
    const file = join(dir, 'race-rotate.sqlite');
    const store = new SqliteStore({ filename: file });
    await store.migrate();
    try {
      await store.createUser({ id: 'u_race', email: 'race@example.com', passwordHash: 'h', createdAt: 1 });
      const session = { idHash: randomBytes(32), userId: 'u_race', createdAt: 1000, lastSeenAt: 1000, expiresAt: 10_000, device: 'x', ip: '192.0.2.1', idleTimeoutSeconds: 500 };
      const keyHash = sha(randomBytes(16));
      const tokenHash = sha(randomBytes(32));
      await store.createRefreshFamily({ session, keyHash, clientId: 'latchkey', tokenHash });
      const seq = await store.lastRevocationSeq();
      const rotation = () => ({ tokenHash, familyKeyHash: keyHash, successorHash: randomBytes(32), successorSealed: randomBytes(76), clientId: 'latchkey', now: 1100, graceSeconds: 5, ip: '192.0.2.2' });
      const outcomes = (await race<{ outcome: string }>(file, 'rotate', Array.from({ length: 8 }, rotation))).map((o) => o.outcome);
      assert.equal(outcomes.filter((o) => o === 'rotated').length, 1, outcomes.join(','));
      assert.equal(outcomes.filter((o) => o === 'shared').length, 7, outcomes.join(','));
      assert.ok(await store.getSession(session.idHash));
      assert.equal(await store.lastRevocationSeq(), seq);
    } finally {
      await store.close();
    }
  });

  it('logins of one user from eight processes at once under maxPerUser: the cap holds, every ended session has its event', async () => {
    const file = join(dir, 'race-cap.sqlite');
    const store = new SqliteStore({ filename: file });
    await store.migrate();
    try {
      await store.createUser({ id: 'u_cap', email: 'cap@example.com', passwordHash: 'h', createdAt: 1 });
      const seq = await store.lastRevocationSeq();
      const login = (k: number) => ({
        session: { idHash: randomBytes(32), userId: 'u_cap', createdAt: 1000 + k, lastSeenAt: 1000 + k, expiresAt: 10_000, device: 'x', ip: '192.0.2.1' },
        maxPerUser: 3,
      });
      const ended = (await race<{ ended: string[] }>(file, 'login', Array.from({ length: 8 }, (_, k) => login(k)))).flatMap((r) => r.ended);
      assert.equal((await store.listSessions('u_cap')).length, 3);
      assert.equal(ended.length, 5);
      assert.equal(new Set(ended).size, 5, 'no session ended twice');
      const events = await store.listRevocations(seq, 100, 0);
      assert.deepEqual(events.map((e) => e.sid).sort(), ended.map((h) => handleOf(Buffer.from(h, 'hex'))).sort());
    } finally {
      await store.close();
    }
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
