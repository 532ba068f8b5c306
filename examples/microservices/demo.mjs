// Serves the one-page demo behind the gateway (route /demo). The page calls
// /api/orders and /api/profile with the session cookie; the gateway swaps it
// for a short-lived JWT per service. Usage: node demo.mjs [port]
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';

const port = Number(process.argv[2] ?? 4000);
const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
};

createServer(async (req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const f = files[path];
  if (!f) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'content-type': f[1],
    'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'",
  });
  res.end(await readFile(new URL(`./public/${f[0]}`, import.meta.url)));
}).listen(port, '127.0.0.1', () => console.log(`demo page on http://127.0.0.1:${port} (open it through the gateway: /demo/)`));
