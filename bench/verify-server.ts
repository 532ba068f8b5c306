/**
 * The server side of bench/verify.ts's HTTP comparison (started by it, in a
 * child process): GET /bare and GET /auth answer the same JSON; /auth is in a
 * scope guarded by @latchkey/verify's Fastify plugin; GET /__cpu reports the
 * process's CPU time. Prints its port.
 */
import Fastify from 'fastify';
import { createVerifier } from '@latchkey/verify';
import { latchkeyAuth } from '@latchkey/verify/fastify';

const verifier = createVerifier({
  issuer: process.env.VERIFY_ISSUER!,
  audience: process.env.VERIFY_AUDIENCE!,
  jwks: JSON.parse(process.env.VERIFY_JWKS!),
});
const app = Fastify({ logger: false });
const body = { ok: true, items: [1, 2, 3] };
app.get('/bare', async () => body);
// CPU time this process has used, so the runner can tell server cost per request apart from load-generator limits
app.get('/__cpu', async () => {
  const u = process.cpuUsage();
  return { us: u.user + u.system };
});
await app.register(async (guarded) => {
  await guarded.register(latchkeyAuth, { verifier });
  guarded.get('/auth', async () => body);
});
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${(app.server.address() as { port: number }).port}\n`);
