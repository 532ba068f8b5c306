/**
 * One "node" on a SQLite file, in a worker thread of its own (its own connection, truly in
 * parallel with the others): waits at a barrier so every worker starts its call at the same
 * moment, then runs one store call and posts the answer. Used by store.sqlite.test.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { AddKeyGuards, AtRest, NewSigningKey } from '../src/store/store.js';

export type NodeCall = { op: 'addAtRest'; add: AtRest } | { op: 'addSigningKey'; key: NewSigningKey; guards: AddKeyGuards };

const { filename, call, barrier } = workerData as { filename: string; call: NodeCall; barrier: SharedArrayBuffer };
const store = new SqliteStore({ filename });
await store.migrate();
// [0]: how many workers are ready; [1]: set to 1 when all may go
const flags = new Int32Array(barrier);
Atomics.add(flags, 0, 1);
while (Atomics.load(flags, 1) === 0) Atomics.wait(flags, 1, 0);
const result = call.op === 'addAtRest' ? await store.addAtRest(call.add) : await store.addSigningKey(call.key, call.guards);
await store.close();
parentPort!.postMessage(result);
