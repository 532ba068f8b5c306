/**
 * The stacks bench/seeds.ts compares, each as the runner drives it: start its
 * processes (and the Redis/PostgreSQL it needs, private, on free ports), sign a
 * virtual user in, the route an authenticated request goes to, how a session is
 * revoked, which processes do the server's work.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStore } from 'connect-redis';
import pg from 'pg';
import { createClient } from 'redis';
import { freePort, startPostgres, type PostgresServer } from '../../scripts/pg-server.mjs';
import { startRedis } from '../../scripts/redis-server.mjs';
import { cookiesFrom, http, type Credential } from './load.js';
import { processTree, startServer, type Server } from './procs.js';
import { emailOf, PASSWORD } from './stacks/common.js';

/** A group of processes whose CPU time is reported together ("Express app", "Redis"). */
export interface Role {
  name: string;
  pids(): number[];
}

export interface Running {
  roles: Role[];
  signIn(agent: Agent, i: number): Promise<Credential>;
  /** The authenticated route. */
  me: string;
  /** End the session behind a credential the way the stack does; undefined: the stack cannot. */
  revoke?: (c: Credential) => Promise<void>;
  stop(): Promise<void>;
}

export interface Contender {
  id: string;
  label: string;
  /** A no-auth baseline: no sign-in, no sessions; only the request phase runs. */
  baseline?: boolean;
  /** How it answers "revoke", for the report. */
  revocation: string;
  start(env: Env): Promise<Running>;
}

/** What the runner gives every contender. */
export interface Env {
  /** A directory of the run's own (removed at the end). */
  dir: string;
  hash: string;
  /** Accounts each server creates: the virtual users and the one-at-a-time probes. */
  users: number;
  /** The run's PostgreSQL cluster, started on first use. */
  postgres(): Promise<PostgresServer & { postmasterPid(): number }>;
  /** Stops registered here run at the end even if the run fails. */
  stops: (() => Promise<void>)[];
}

export const ADMIN_KEY = randomBytes(32).toString('base64url');
const FEED_SECRET = randomBytes(32).toString('base64url');

const accountEnv = (env: Env) => ({ SEEDS_HASH: env.hash, SEEDS_USERS: String(env.users) });

async function signInJson(agent: Agent, url: string, i: number): Promise<{ status: number; reply: Awaited<ReturnType<typeof http>>; body: Record<string, unknown> }> {
  const reply = await http(agent, url, { json: { email: emailOf(i), password: PASSWORD } });
  if (reply.status !== 200) throw new Error(`sign-in of user ${i}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
  return { status: reply.status, reply, body: JSON.parse(reply.body) as Record<string, unknown> };
}

function registered(env: Env, s: Server): Server {
  env.stops.push(s.stop);
  return s;
}

const redisStack = (name: string, env: Env) => startRedis(join(env.dir, `${name}-redis`), env.stops);

export const expressSession: Contender = {
  id: 'express-session',
  label: 'Express + express-session + connect-redis + passport-local',
  revocation: "the session's key deleted from Redis (connect-redis `destroy`), as the seeds describe",
  async start(env) {
    const redis = await redisStack('express-session', env);
    const server = registered(env, await startServer('express-session.ts', { ...accountEnv(env), SEEDS_REDIS_URL: redis.url }));
    const base = `http://127.0.0.1:${server.port}`;
    // the operator's side: the same store class the app uses, on a connection of its own
    const client = createClient({ url: redis.url });
    await client.connect();
    const store = new RedisStore({ client });
    return {
      roles: [
        { name: 'Express app', pids: () => [server.pid] },
        { name: 'Redis', pids: () => (redis.pid === undefined ? [] : [redis.pid]) },
      ],
      me: `${base}/me`,
      async signIn(agent, i) {
        const { reply } = await signInJson(agent, `${base}/login`, i);
        const value = cookiesFrom(reply);
        // connect.sid=s%3A<id>.<signature>
        const signed = decodeURIComponent(value.slice(value.indexOf('=') + 1));
        return { header: 'Cookie', value, session: signed.slice(2, signed.lastIndexOf('.')) };
      },
      revoke: (c) => store.destroy(c.session!),
      async stop() {
        await client.quit();
        await server.stop();
        await redis.stop();
      },
    };
  },
};

function jwtStack(alg: 'HS256' | 'RS256'): Contender {
  return {
    id: `jwt-${alg.toLowerCase()}`,
    label: `Express + jsonwebtoken ${alg} + passport-local`,
    revocation: 'none: a token is accepted until its exp (15 minutes after sign-in)',
    async start(env) {
      const server = registered(env, await startServer('express-jwt.ts', { ...accountEnv(env), SEEDS_ALG: alg }));
      const base = `http://127.0.0.1:${server.port}`;
      return {
        roles: [{ name: 'Express app', pids: () => [server.pid] }],
        me: `${base}/me`,
        async signIn(agent, i) {
          const { body } = await signInJson(agent, `${base}/login`, i);
          return { header: 'Authorization', value: `Bearer ${body.token as string}` };
        },
        stop: () => server.stop(),
      };
    },
  };
}
export const jwtHs256 = jwtStack('HS256');
export const jwtRs256 = jwtStack('RS256');

async function startLatchkey(env: Env, name: string, extra: Record<string, string>): Promise<{ server: Server; base: string }> {
  const port = await freePort();
  const dataDir = join(env.dir, name);
  mkdirSync(dataDir, { mode: 0o700 });
  const server = registered(
    env,
    await startServer('latchkey.ts', { ...accountEnv(env), SEEDS_PORT: String(port), SEEDS_DATA_DIR: dataDir, SEEDS_ADMIN_KEY: ADMIN_KEY, ...extra }),
  );
  return { server, base: `http://127.0.0.1:${port}` };
}

async function adminRevoke(base: string, handle: string): Promise<void> {
  const agent = new Agent({ keepAlive: false });
  const r = await http(agent, `${base}/v1/admin/sessions/${encodeURIComponent(handle)}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  agent.destroy();
  if (r.status !== 204) throw new Error(`admin revoke: HTTP ${r.status} ${r.body.slice(0, 200)}`);
}

function latchkeyCookie(base: string): Pick<Running, 'me' | 'signIn' | 'revoke'> {
  return {
    me: `${base}/bench/me`,
    async signIn(agent, i) {
      const { reply, body } = await signInJson(agent, `${base}/v1/login`, i);
      return { header: 'Cookie', value: cookiesFrom(reply), session: (body.session as { handle: string }).handle };
    },
    revoke: (c) => adminRevoke(base, c.session!),
  };
}

export const latchkeySqlite: Contender = {
  id: 'latchkey-sqlite',
  label: 'latchkey session cookie, SQLite',
  revocation: 'DELETE /v1/admin/sessions/:handle (admin API)',
  async start(env) {
    const { server, base } = await startLatchkey(env, 'latchkey-sqlite', { SEEDS_STORE: 'sqlite' });
    return { roles: [{ name: 'latchkey', pids: () => [server.pid] }], ...latchkeyCookie(base), stop: () => server.stop() };
  },
};

export const latchkeyPostgres: Contender = {
  id: 'latchkey-postgres',
  label: 'latchkey session cookie, PostgreSQL + Redis',
  revocation: 'DELETE /v1/admin/sessions/:handle (admin API)',
  async start(env) {
    const cluster = await env.postgres();
    const url = await freshDatabase(cluster.url, 'seeds_load');
    const redis = await redisStack('latchkey-postgres', env);
    const { server, base } = await startLatchkey(env, 'latchkey-postgres', { SEEDS_STORE: 'postgres', SEEDS_DATABASE_URL: url, SEEDS_REDIS_URL: redis.url });
    return {
      roles: [
        { name: 'latchkey', pids: () => [server.pid] },
        { name: 'PostgreSQL', pids: () => processTree(cluster.postmasterPid()) },
        { name: 'Redis', pids: () => (redis.pid === undefined ? [] : [redis.pid]) },
      ],
      ...latchkeyCookie(base),
      async stop() {
        await server.stop();
        await redis.stop();
      },
    };
  },
};

export const latchkeyTokens: Contender = {
  id: 'latchkey-tokens',
  label: 'latchkey access tokens, @latchkey/verify in Fastify, revocation feed on',
  revocation: "DELETE /v1/admin/sessions/:sid (admin API); the verifier refuses once the feed's event arrives",
  async start(env) {
    const { server, base } = await startLatchkey(env, 'latchkey-tokens', { SEEDS_STORE: 'sqlite', SEEDS_FEED_SECRET: FEED_SECRET });
    const verifier = registered(env, await startServer('verify-service.ts', { SEEDS_ISSUER: base, SEEDS_FEED_SECRET: FEED_SECRET }));
    return {
      roles: [
        { name: 'Fastify + @latchkey/verify', pids: () => [verifier.pid] },
        { name: 'latchkey (issuer, feed)', pids: () => [server.pid] },
      ],
      me: `http://127.0.0.1:${verifier.port}/me`,
      async signIn(agent, i) {
        const { body } = await signInJson(agent, `${base}/v1/tokens`, i);
        const token = body.access_token as string;
        const sid = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;
        return { header: 'Authorization', value: `Bearer ${token}`, session: sid };
      },
      revoke: (c) => adminRevoke(base, c.session!),
      async stop() {
        await verifier.stop();
        await server.stop();
      },
    };
  },
};

function bare(framework: 'express' | 'fastify', label: string): Contender {
  return {
    id: `${framework}-bare`,
    label,
    baseline: true,
    revocation: 'no sessions',
    async start(env) {
      const server = registered(env, await startServer('bare.ts', { SEEDS_FRAMEWORK: framework }));
      return {
        roles: [{ name: `${framework === 'express' ? 'Express' : 'Fastify'} app`, pids: () => [server.pid] }],
        me: `http://127.0.0.1:${server.port}/me`,
        signIn: () => Promise.reject(new Error('a baseline has no sign-in')),
        stop: () => server.stop(),
      };
    },
  };
}
export const expressBare = bare('express', 'Express, no auth (baseline)');
export const fastifyBare = bare('fastify', 'Fastify, no auth (baseline)');

export const CONTENDERS: readonly Contender[] = [expressSession, jwtHs256, jwtRs256, latchkeySqlite, latchkeyPostgres, latchkeyTokens, expressBare, fastifyBare];

/** `url` with its database replaced by `name`, created empty (dropped first if it exists). */
export async function freshDatabase(url: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * The run's PostgreSQL cluster, started once, with its postmaster's pid (for CPU time). In a
 * directory of its own under the system's temporary directory: as root the cluster runs as the
 * postgres user, who must be able to reach it.
 */
export function postgresOnce(stops: (() => Promise<void>)[]): () => Promise<PostgresServer & { postmasterPid(): number }> {
  let started: Promise<PostgresServer & { postmasterPid(): number }> | undefined;
  return () =>
    (started ??= (async () => {
      const dir = mkdtempSync(join(tmpdir(), 'latchkey-seeds-pg-'));
      // registered first: it runs after the cluster's own stop (stops run in reverse)
      stops.push(async () => rmSync(dir, { recursive: true, force: true }));
      const s = await startPostgres(dir, stops);
      // pg-server.mjs keeps the cluster in <dir>/pg; the first line of postmaster.pid is the postmaster's pid
      return { ...s, postmasterPid: () => Number(readFileSync(join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]) };
    })());
}
