/**
 * Secrets and private signing keys at rest (keys/at-rest.ts seals them; this keeps the text as
 * given): the node-wide secrets in `secrets`, each private key on its `signing_keys` row. A secret
 * is inserted only if absent and read back in the same transaction, so nodes starting together on
 * an empty database all end with the first one's.
 */
import type { AtRest, AtRestChange } from '../store.js';
import type { Db, Queryable } from './db.js';

export async function readAtRest(db: Queryable): Promise<AtRest> {
  const secrets = await db.query<{ name: string; value: string }>('SELECT name, value FROM secrets ORDER BY name');
  const keys = await db.query<{ kid: string; private_key: string }>(
    'SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL AND private_key IS NOT NULL ORDER BY kid',
  );
  return {
    secrets: Object.fromEntries(secrets.rows.map((r) => [r.name, r.value])),
    privateKeys: Object.fromEntries(keys.rows.map((r) => [r.kid, r.private_key])),
  };
}

export function addAtRest(db: Db, add: AtRest): Promise<AtRest & { unknownKids: string[] }> {
  return db.tx(async (tx) => {
    // sorted: two nodes inserting the same names take the index entries' locks in one order
    const names = Object.keys(add.secrets).sort();
    if (names.length) {
      // ON CONFLICT waits for a concurrent insert of the name to commit, then leaves its value
      await tx.query(
        'INSERT INTO secrets (name, value) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING',
        [names, names.map((n) => add.secrets[n]!)],
      );
    }
    const kids = Object.keys(add.privateKeys).sort();
    const known = new Set<string>();
    if (kids.length) {
      const found = await tx.query<{ kid: string }>('SELECT kid FROM signing_keys WHERE kid = ANY($1::text[])', [kids]);
      for (const r of found.rows) known.add(r.kid);
      await tx.query(
        `UPDATE signing_keys k SET private_key = v.value FROM unnest($1::text[], $2::text[]) AS v(kid, value)
         WHERE k.kid = v.kid AND k.private_key IS NULL AND k.retired_at IS NULL`,
        [kids, kids.map((k) => add.privateKeys[k]!)],
      );
    }
    // READ COMMITTED: each statement sees what other transactions committed before it began
    const stored = await readAtRest(tx);
    return { ...stored, unknownKids: kids.filter((k) => !known.has(k)) };
  });
}

export function replaceAtRest(db: Db, changes: readonly AtRestChange[]): Promise<number> {
  if (!changes.length) return Promise.resolve(0);
  return db.tx(async (tx) => {
    let replaced = 0;
    for (const c of changes) {
      const r =
        'secret' in c
          ? await tx.query('UPDATE secrets SET value = $1 WHERE name = $2 AND value = $3', [c.to, c.secret, c.from])
          : await tx.query('UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3', [c.to, c.kid, c.from]);
      replaced += r.rowCount ?? 0;
    }
    return replaced;
  });
}
