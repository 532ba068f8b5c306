/**
 * The seeds' stateful stack, as they describe it: Express + express-session
 * with its sessions in Redis (connect-redis) + passport-local. Started by
 * bench/seeds.ts with SEEDS_REDIS_URL, SEEDS_HASH and SEEDS_USERS.
 *
 * Settings are the packages' documented ones: resave and saveUninitialized off
 * (express-session's README recommends both), connect-redis's defaults (prefix
 * `sess:`, touch on: an unmodified session's key has its TTL renewed per
 * request), an HttpOnly SameSite=Lax cookie that lives as long as latchkey's
 * idle timeout. Accounts are in this process's memory, which spares this stack
 * the user lookup latchkey makes in its store.
 */
import { randomBytes } from 'node:crypto';
import { verify } from '@node-rs/argon2';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { createClient } from 'redis';
import { accounts, BACKLOG, IDLE_SECONDS, ready, type Account } from './common.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface User {
      id: string;
      email: string;
    }
  }
}

const all = accounts();
const byEmail = new Map(all.map((a) => [a.email, a]));
const byId = new Map(all.map((a) => [a.id, a]));
const dummyHash = all[0]!.passwordHash;

const client = createClient({ url: process.env.SEEDS_REDIS_URL });
client.on('error', (err: Error) => console.error('express-session stack: redis:', err.message));
await client.connect();

passport.use(
  new LocalStrategy({ usernameField: 'email' }, (email, password, done) => {
    const account: Account | undefined = byEmail.get(email);
    // an unknown email still costs one verification, as latchkey's does
    verify(account?.passwordHash ?? dummyHash, password).then(
      (ok) => done(null, ok && account ? { id: account.id, email: account.email } : false),
      (err: unknown) => done(err),
    );
  }),
);
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id: string, done) => {
  const a = byId.get(id);
  done(null, a ? { id: a.id, email: a.email } : false);
});

const app = express();
app.use(
  session({
    store: new RedisStore({ client }),
    secret: randomBytes(32).toString('base64url'),
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, secure: false, sameSite: 'lax', maxAge: IDLE_SECONDS * 1000 },
  }),
);
app.use(passport.session());
app.post('/login', express.json(), passport.authenticate('local'), (req, res) => {
  res.json({ ok: true, sub: req.user!.id });
});
app.get('/me', (req, res) => {
  if (!req.user) {
    res.status(401).json({ ok: false });
    return;
  }
  res.json({ ok: true, sub: req.user.id });
});

const server = app.listen(0, '127.0.0.1', BACKLOG, () => ready((server.address() as { port: number }).port));
