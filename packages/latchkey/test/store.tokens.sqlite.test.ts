import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { tokenStoreContract } from './store.tokens.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-store-tokens-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let i = 0;

tokenStoreContract('sqlite', async () => new SqliteStore({ filename: join(dir, `t${++i}.sqlite`) }));
