import { PostgresStore } from '../src/store/postgres/index.js';
import { createDatabase } from './postgres.js';
import { storeContract } from './store.contract.js';

// a fresh database per test: the contract counts keys, events and audit rows from zero
storeContract('postgres', async () => new PostgresStore({ url: await createDatabase(), poolSize: 4 }));
