/**
 * PostgreSQL for tests: `npm test` starts a throwaway server (scripts/test.mjs) and passes its
 * URL in LATCHKEY_TEST_DATABASE_URL. Each test (or file) gets databases of its own, created with
 * random names and dropped after the file, so files run in parallel without seeing each other.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import pg from 'pg';

export function adminUrl(): string {
  const url = process.env.LATCHKEY_TEST_DATABASE_URL;
  if (!url) {
    throw new Error('LATCHKEY_TEST_DATABASE_URL is not set: run PostgreSQL tests through `npm test` (npm test -- <file> for one file)');
  }
  return url;
}

/** The URL of `adminUrl` pointing at database `name`. */
export function urlOf(name: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${name}`;
  return u.toString();
}

let admin: pg.Client | undefined;
const created: string[] = [];

async function adminClient(): Promise<pg.Client> {
  if (!admin) {
    const client = new pg.Client({ connectionString: adminUrl() });
    await client.connect();
    admin = client;
  }
  return admin;
}

// registered when the test file imports this module: at the root, so it runs once, after every test
after(async () => {
  const client = admin;
  if (!client) return;
  for (const name of created.splice(0)) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await client.end();
  admin = undefined;
});

/** Create an empty database; returns its URL. Dropped when the test file ends. */
export async function createDatabase(): Promise<string> {
  const client = await adminClient();
  // a random identifier of [a-z0-9_] only: safe to interpolate (CREATE DATABASE takes no parameters)
  const name = `latchkey_test_${randomBytes(8).toString('hex')}`;
  await client.query(`CREATE DATABASE ${name}`);
  created.push(name);
  return urlOf(name);
}

/**
 * Create an empty database on the server `serverUrl` names (a private server a test file started,
 * scripts/pg-server.mjs); returns its URL. Not dropped: the private server goes with its files.
 */
export async function createDatabaseOn(serverUrl: string): Promise<string> {
  const name = `latchkey_test_${randomBytes(8).toString('hex')}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
