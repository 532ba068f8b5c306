/**
 * Secrets and private signing keys at rest in the SQLite file (keys/at-rest.ts seals them; this
 * keeps the text as given): the node-wide secrets in `secrets`, each private key on its
 * `signing_keys` row. Every write is one IMMEDIATE transaction, so processes on the same file
 * (the server, the CLI) take turns: the first to insert a secret wins and the others read it.
 */
import type { AtRest, AtRestChange } from '../store.js';
import type { Database } from './driver.js';

function prepare(db: Database) {
  return {
    secrets: db.prepare<[], { name: string; value: string }>('SELECT name, value FROM secrets ORDER BY name'),
    privateKeys: db.prepare<[], { kid: string; private_key: string }>(
      'SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL AND private_key IS NOT NULL ORDER BY kid',
    ),
    privateKey: db.prepare<[string], { private_key: string | null }>('SELECT private_key FROM signing_keys WHERE kid = ? AND retired_at IS NULL'),
    insertSecret: db.prepare('INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING'),
    keyExists: db.prepare<[string], { kid: string }>('SELECT kid FROM signing_keys WHERE kid = ?'),
    setPrivateKey: db.prepare('UPDATE signing_keys SET private_key = ? WHERE kid = ? AND private_key IS NULL AND retired_at IS NULL'),
    replaceSecret: db.prepare('UPDATE secrets SET value = ? WHERE name = ? AND value = ?'),
    replacePrivateKey: db.prepare('UPDATE signing_keys SET private_key = ? WHERE kid = ? AND private_key = ?'),
    forget: db.prepare('UPDATE signing_keys SET private_key = NULL WHERE kid = ? AND private_key IS NOT NULL'),
  };
}

// prepared once per connection, on first use (after the migration that makes the table)
const statements = new WeakMap<Database, ReturnType<typeof prepare>>();
function stmts(db: Database): ReturnType<typeof prepare> {
  let s = statements.get(db);
  if (!s) statements.set(db, (s = prepare(db)));
  return s;
}

export function readAtRest(db: Database): AtRest {
  const s = stmts(db);
  return {
    secrets: Object.fromEntries(s.secrets.all().map((r) => [r.name, r.value])),
    privateKeys: Object.fromEntries(s.privateKeys.all().map((r) => [r.kid, r.private_key])),
  };
}

export function addAtRest(db: Database, add: AtRest): AtRest & { unknownKids: string[] } {
  const s = stmts(db);
  return db
    .transaction(() => {
      for (const [name, value] of Object.entries(add.secrets)) s.insertSecret.run(name, value);
      const unknownKids: string[] = [];
      for (const [kid, value] of Object.entries(add.privateKeys)) {
        if (!s.keyExists.get(kid)) unknownKids.push(kid);
        else s.setPrivateKey.run(value, kid);
      }
      return { ...readAtRest(db), unknownKids: unknownKids.sort() };
    })
    .immediate();
}

export function replaceAtRest(db: Database, changes: readonly AtRestChange[]): number {
  const s = stmts(db);
  return db
    .transaction(() => {
      let replaced = 0;
      for (const c of changes) {
        const r = 'secret' in c ? s.replaceSecret.run(c.to, c.secret, c.from) : s.replacePrivateKey.run(c.to, c.kid, c.from);
        replaced += r.changes;
      }
      return replaced;
    })
    .immediate();
}

export function getPrivateKey(db: Database, kid: string): string | undefined {
  return stmts(db).privateKey.get(kid)?.private_key ?? undefined;
}

export function forgetPrivateKeys(db: Database, kids: readonly string[]): number {
  const s = stmts(db);
  return db
    .transaction(() => kids.reduce((n, kid) => n + s.forget.run(kid).changes, 0))
    .immediate();
}
