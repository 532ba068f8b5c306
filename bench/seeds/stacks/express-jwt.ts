/**
 * The seeds' stateless stack: Express + jsonwebtoken, passport-local for the
 * password, the token in the Authorization header, verified per request by the
 * middleware the seeds print (split the header, `jwt.verify` with the algorithm
 * pinned), no revocation. SEEDS_ALG picks HS256 (a shared secret, as the
 * seeds' benchmark) or RS256 (2048-bit key, as their code sample). Tokens live
 * JWT_LIFETIME_SECONDS (15 minutes, the seeds' figure).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { verify } from '@node-rs/argon2';
import express, { type NextFunction, type Request, type Response } from 'express';
import jwt from 'jsonwebtoken';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { accounts, BACKLOG, JWT_LIFETIME_SECONDS, ready } from './common.js';

const alg = process.env.SEEDS_ALG;
if (alg !== 'HS256' && alg !== 'RS256') throw new Error('SEEDS_ALG must be HS256 or RS256');

let signKey: string;
let verifyKey: string;
if (alg === 'HS256') {
  signKey = verifyKey = randomBytes(32).toString('base64url');
} else {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  signKey = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  verifyKey = pair.publicKey.export({ format: 'pem', type: 'spki' }) as string;
}

const all = accounts();
const byEmail = new Map(all.map((a) => [a.email, a]));
const dummyHash = all[0]!.passwordHash;

passport.use(
  new LocalStrategy({ usernameField: 'email', session: false }, (email, password, done) => {
    const account = byEmail.get(email);
    verify(account?.passwordHash ?? dummyHash, password).then(
      (ok) => done(null, ok && account ? { id: account.id, email: account.email } : false),
      (err: unknown) => done(err),
    );
  }),
);

/** The seeds' middleware, with 401 for every refusal. */
function verifyToken(req: Request, res: Response, next: NextFunction): void {
  const authHeader = req.headers['authorization'];
  const token = authHeader && authHeader.split(' ')[1];
  if (!token) {
    res.sendStatus(401);
    return;
  }
  jwt.verify(token, verifyKey, { algorithms: [alg as jwt.Algorithm] }, (err, payload) => {
    if (err || typeof payload !== 'object' || typeof payload.sub !== 'string') {
      res.sendStatus(401);
      return;
    }
    res.locals.sub = payload.sub;
    next();
  });
}

const app = express();
app.post('/login', express.json(), passport.authenticate('local', { session: false }), (req, res) => {
  const user = req.user as { id: string };
  const token = jwt.sign({ sub: user.id, role: 'user' }, signKey, { algorithm: alg, expiresIn: JWT_LIFETIME_SECONDS });
  res.json({ token });
});
app.get('/me', verifyToken, (_req, res) => {
  res.json({ ok: true, sub: res.locals.sub as string });
});

const server = app.listen(0, '127.0.0.1', BACKLOG, () => ready((server.address() as { port: number }).port));
