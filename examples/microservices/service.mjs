// A tiny internal service that trusts only access tokens checked by
// @latchkey/verify: no session store, no call to latchkey per request.
// Usage: node service.mjs <orders|profile> <port>
import { createServer } from 'node:http';
import { createVerifier } from '@latchkey/verify';

const [name = 'orders', port = name === 'orders' ? '4001' : '4002'] = process.argv.slice(2);
const issuer = process.env.LATCHKEY_ISSUER ?? 'http://localhost:8080';
// the audience is this service's name: a token minted for another service is refused
const verifier = createVerifier({ issuer, audience: name });

const data = {
  orders: (sub) => ({ service: 'orders', user: sub, orders: [{ id: 1001, item: 'Notebook', total: 12.5 }, { id: 1002, item: 'Pen', total: 3 }] }),
  profile: (sub, claims) => ({ service: 'profile', user: sub, roles: claims.roles ?? [], session: claims.sid }),
};

createServer(async (req, res) => {
  const auth = req.headers.authorization ?? '';
  try {
    const claims = await verifier.verify(auth.startsWith('Bearer ') ? auth.slice(7) : '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(data[name](claims.sub, claims)));
  } catch (err) {
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
    res.end(JSON.stringify({ error: 'invalid_token', code: err.code ?? 'invalid' }));
  }
}).listen(Number(port), '127.0.0.1', () => console.log(`${name} service on http://127.0.0.1:${port}, trusting ${issuer}`));
