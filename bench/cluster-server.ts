/**
 * A node of bench/cluster.ts (started by it through examples/cluster/cluster.mjs, in place of
 * `latchkey serve`): the same configuration from the same environment and flags, the same
 * createLatchkey, plus
 *
 *   GET /bench/bare: /v1/session's handler without its auth hook. It sends the body /v1/session
 *     sends (userView + sessionView, built on every request, `cache-control: no-store`) for a
 *     fixed user and session, so the two routes differ by the session check alone;
 *   IPC 'stats': the session cache's counters, so the report can say how the session route was
 *     answered (cache hits or store reads).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { createLatchkey } from '../packages/latchkey/src/app.js';
import { sessionView, userView } from '../packages/latchkey/src/admin/views.js';
import { configFrom, parse } from '../packages/latchkey/src/cli/command.js';
import { serveCommand } from '../packages/latchkey/src/cli/serve.js';
import { handleOf } from '../packages/latchkey/src/sessions/ids.js';
import type { Session, User } from '../packages/latchkey/src/store/store.js';

const t = Math.floor(Date.now() / 1000);
const user: User = { id: `u_${randomBytes(16).toString('base64url')}`, email: 'bench0@example.com', roles: [], disabled: false, createdAt: t };
const session: Session = {
  idHash: randomBytes(32),
  userId: user.id,
  createdAt: t,
  lastSeenAt: t,
  expiresAt: t + 7 * 86400,
  device: 'Unknown device',
  ip: '127.0.0.1',
};
const handle = handleOf(session.idHash);

async function bare(app: FastifyInstance) {
  app.get('/bench/bare', async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ user: userView(user), session: sessionView(session, handle) }),
  );
}

// serve's flags (--port, --host, --data-dir, --config), read as serve reads them
const config = await configFrom(parse(serveCommand, process.argv.slice(2)).values);
const lk = await createLatchkey(config, { plugins: [bare] });
await lk.http.listen({ port: config.port, host: config.host });
process.on('message', (m) => {
  if (m === 'stats') process.send?.({ stats: lk.sessions.stats() });
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    lk.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
