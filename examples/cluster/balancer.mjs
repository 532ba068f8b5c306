#!/usr/bin/env node
// The round-robin balancer the cluster example uses when HAProxy is not installed: a few lines
// around @fastify/reply-from (undici), which does the proxying and streams bodies both ways; no
// body is parsed here. It does what the example's haproxy.cfg does, more simply:
//
//   - round robin over the nodes that are up;
//   - a node is taken out after 2 failed /healthz checks (one a second) or at once when a request
//     cannot connect to it (that request answers 502: unlike HAProxy, it is not sent elsewhere),
//     and back in after 2 good checks;
//   - X-Served-By: the node that answered; X-Forwarded-For: the client's address appended
//     (the nodes run with LATCHKEY_TRUST_PROXY=1).
//
// Usage: node balancer.mjs <port> <name>=<url> [<name>=<url> ...]
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';

const [port, ...specs] = process.argv.slice(2);
const nodes = specs.map((s) => {
  const eq = s.indexOf('=');
  return { name: s.slice(0, eq), url: s.slice(eq + 1), up: true, fails: 0, oks: 0 };
});
if (!port || !nodes.length || nodes.some((n) => !n.name || !URL.canParse(n.url))) {
  process.stderr.write('usage: node balancer.mjs <port> <name>=<url> [<name>=<url> ...]\n');
  process.exit(2);
}

let next = 0;
function pick() {
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[next++ % nodes.length];
    if (n.up) return n;
  }
  return undefined;
}

function mark(n, up, why) {
  if (n.up === up) return;
  n.up = up;
  process.stderr.write(`${n.name} is ${up ? 'UP' : 'DOWN'} (${why}); ${nodes.filter((x) => x.up).length} of ${nodes.length} up\n`);
}

async function check(n) {
  let ok = false;
  try {
    const res = await fetch(`${n.url}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    ok = res.status === 200;
  } catch {
    ok = false;
  }
  if (ok) {
    n.fails = 0;
    if (++n.oks >= 2) mark(n, true, 'health check passed');
  } else {
    n.oks = 0;
    if (++n.fails >= 2) mark(n, false, 'health check failed');
  }
}
const checks = setInterval(() => nodes.forEach(check), 1000);

const app = Fastify({ logger: false });
// bodies go through as streams, whatever their type
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
// no retries of its own: reply-from would otherwise repeat a GET that got a 503 (a PostgreSQL
// outage must reach the client as the node's 503)
await app.register(replyFrom, { retryMethods: [] });

app.all('/*', (request, reply) => {
  const n = pick();
  if (!n) return reply.code(503).type('text/plain').send('no node is up\n');
  return reply.from(n.url + request.url, {
    rewriteRequestHeaders: (req, headers) => {
      const seen = req.raw.socket.remoteAddress ?? '';
      const xff = headers['x-forwarded-for'];
      return { ...headers, 'x-forwarded-for': xff ? `${xff}, ${seen}` : seen };
    },
    rewriteHeaders: (headers) => ({ ...headers, 'x-served-by': n.name }),
    onError: (rep, { error }) => {
      const code = error.cause?.code ?? error.code;
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') mark(n, false, `request failed: ${code}`);
      rep.code(502).header('x-served-by', n.name).type('text/plain').send(`${n.name} did not answer\n`);
    },
  });
});

await app.listen({ port: Number(port), host: '127.0.0.1' });
process.stderr.write(`round robin over ${nodes.map((n) => n.name).join(', ')} on http://127.0.0.1:${port}\n`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    clearInterval(checks);
    app.close().then(() => process.exit(0));
  });
}
