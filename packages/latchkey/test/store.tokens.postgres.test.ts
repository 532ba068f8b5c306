import { PostgresStore } from '../src/store/postgres/index.js';
import { createDatabase } from './postgres.js';
import { tokenStoreContract } from './store.tokens.contract.js';

tokenStoreContract('postgres', async () => new PostgresStore({ url: await createDatabase(), poolSize: 4 }));
