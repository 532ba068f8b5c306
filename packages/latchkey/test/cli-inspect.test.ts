/**
 * `latchkey inspect`: tokens from a running server (valid, expired, for another audience), tokens
 * made here to break one rule at a time, and latchkey's secrets, which it must recognise without
 * decoding or printing them. The verifier's error codes are @latchkey/verify's own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { cliJson, runCli } from './cli-helpers.js';
import { Client, json, startServer, type TestServer } from './helpers.js';
import { loginTokens, PASSWORD, signup } from './token-helpers.js';

interface Check {
  check: string;
  result: 'pass' | 'fail' | 'skipped';
  code?: string;
  detail: string;
}
interface JwtReport {
  kind: 'jwt';
  bytes: number;
  header: Record<string, unknown> | null;
  claims: Record<string, unknown> | null;
  times: Record<'iat' | 'exp' | 'nbf', { at: number; utc: string; fromNow: number; relative: string } | undefined>;
  lifetimeSeconds: number | null;
  checks: Check[];
  failed: string[];
  verification: null | { result: 'accepted' | 'refused'; code?: string; issuerChecked: boolean; audienceChecked: boolean };
}

const results = (r: JwtReport) => Object.fromEntries(r.checks.map((c) => [c.check, c.code ?? c.result]));

/** inspect with the token on stdin, as the help recommends. */
async function inspect(token: string, flags: string[] = []) {
  const r = await runCli(['inspect', '--json', ...flags, '-'], { stdin: `${token}\n` });
  return { ...r, report: JSON.parse(r.stdout) as JwtReport };
}

/** A signing key of our own and an HTTP server that publishes it and counts every request. */
async function keyServer() {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'EdDSA', use: 'sig' };
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    jwks: { keys: [jwk] },
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    /** An RFC 9068 access token of this issuer; `claims` and `header` override. */
    token: (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: CryptoKey | Uint8Array = privateKey) => {
      const t = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: url, sub: 'u_someone', aud: 'orders', iat: t, exp: t + 300, jti: 'jti-1', client_id: 'latchkey', ...claims })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'test-key', ...header })
        .sign(key);
    },
  };
}

describe('latchkey inspect: access tokens of a running server', () => {
  let srv: TestServer;
  let past: TestServer;
  let token: string;
  let expired: string;
  let userId: string;
  before(async () => {
    srv = await startServer();
    const u = await signup(srv);
    userId = u.userId;
    token = (await loginTokens(srv, u.email)).access_token;
    // a server whose clock is two hours behind mints tokens that expired long ago
    past = await startServer({}, { now: () => Date.now() - 2 * 3600_000 });
    expired = (await loginTokens(past, (await signup(past)).email)).access_token;
  });
  after(async () => {
    await srv.close();
    await past.close();
  });

  it('a valid token offline: header, claims, UTC and relative times, size, lifetime; every check that ran passes; exit 0', async () => {
    const { code, report } = await inspect(token);
    assert.equal(code, 0);
    assert.equal(report.kind, 'jwt');
    assert.equal(report.bytes, Buffer.byteLength(token));
    assert.deepEqual([report.header?.alg, report.header?.typ], ['EdDSA', 'at+jwt']);
    assert.equal(report.claims?.sub, userId);
    const exp = report.times.exp!;
    assert.equal(exp.at, report.claims?.exp);
    assert.equal(exp.utc, new Date(exp.at * 1000).toISOString().replace('.000Z', 'Z'));
    assert.match(exp.relative, /^expires in (4 min( [0-9]+ s)?|5 min)$/);
    assert.equal(report.lifetimeSeconds, 300);
    assert.deepEqual(results(report), { size: 'pass', header: 'pass', claims: 'pass', issuer: 'skipped', audience: 'skipped', time: 'pass', lifetime: 'pass' });
    assert.deepEqual(report.failed, []);
    assert.equal(report.verification, null);

    const human = await runCli(['inspect', token]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^JWT, [0-9]+ bytes$/m);
    assert.match(human.stdout, /^ {2}exp +[0-9T:-]+Z \(expires in /m);
    assert.match(human.stdout, /^lifetime {2}5 min \(exp - iat = 300 s\)$/m);
    assert.match(human.stdout, /signature: not checked/);
  });

  it('an expired token: the time check fails with expired ("expired 2 h ago"), and so does the verifier against the server’s JWKS; exit 1', async () => {
    const offline = await inspect(expired);
    assert.equal(offline.code, 1);
    assert.equal(results(offline.report).time, 'expired');
    assert.deepEqual(offline.report.failed, ['expired']);
    assert.match(offline.report.times.exp!.relative, /^expired 1 h 5[0-9] min ago$/);
    assert.match(offline.report.times.iat!.relative, /^(2 h|1 h 5[0-9] min|2 h [0-9] min) ago$/);

    const online = await inspect(expired, ['--jwks', `${past.url}/.well-known/jwks.json`, '--issuer', past.config.issuer, '--audience', 'latchkey']);
    assert.equal(online.code, 1);
    assert.deepEqual(online.report.verification, { jwks: `${past.url}/.well-known/jwks.json`, result: 'refused', code: 'expired', description: 'token expired', issuerChecked: true, audienceChecked: true });
  });

  it('a token for another audience: wrong_audience offline with --audience and from the verifier with --jwks; the right one is accepted', async () => {
    const jwksUrl = `${srv.url}/.well-known/jwks.json`;
    const wrong = await inspect(token, ['--audience', 'billing', '--issuer', srv.config.issuer, '--jwks', jwksUrl]);
    assert.equal(wrong.code, 1);
    assert.equal(results(wrong.report).audience, 'wrong_audience');
    assert.match(wrong.report.checks.find((c) => c.check === 'audience')!.detail, /aud is "latchkey", expected billing/);
    assert.equal(wrong.report.verification?.code, 'wrong_audience');

    const right = await inspect(token, ['--audience', 'billing', '--audience', 'latchkey', '--issuer', srv.config.issuer, '--jwks', jwksUrl]);
    assert.equal(right.code, 0, right.stderr);
    assert.deepEqual(right.report.failed, []);
    assert.deepEqual(right.report.verification, { jwks: jwksUrl, result: 'accepted', issuerChecked: true, audienceChecked: true });

    const otherIssuer = await inspect(token, ['--issuer', 'https://auth.example.com']);
    assert.equal(results(otherIssuer.report).issuer, 'wrong_issuer');
  });

  it('a forged signature passes every offline check and is bad_signature once --jwks (a file) is given', async () => {
    const [h, p, sig] = token.split('.');
    const forged = `${h}.${p}.${sig!.startsWith('A') ? 'B' : 'A'}${sig!.slice(1)}`;
    const offline = await inspect(forged);
    assert.equal(offline.code, 0);
    assert.deepEqual(offline.report.failed, []);
    const file = join(mkdtempSync(join(tmpdir(), 'latchkey-inspect-')), 'jwks.json');
    writeFileSync(file, await (await fetch(`${srv.url}/.well-known/jwks.json`)).text());
    const online = await inspect(forged, ['--jwks', file]);
    assert.equal(online.code, 1);
    assert.equal(online.report.verification?.code, 'bad_signature');
    // without --issuer and --audience the token's own are used, and the report says so
    assert.deepEqual([online.report.verification?.issuerChecked, online.report.verification?.audienceChecked], [false, false]);
    const genuine = await inspect(token, ['--jwks', file]);
    assert.equal(genuine.report.verification?.result, 'accepted');
  });
});

describe('latchkey inspect: one broken rule at a time, with the verifier’s codes', () => {
  let ks: Awaited<ReturnType<typeof keyServer>>;
  before(async () => {
    ks = await keyServer();
  });
  after(() => ks.close());

  it('offline sends nothing anywhere, even with the issuer’s URL in the token; --jwks URL fetches the key set and verifies', async () => {
    const token = await ks.token();
    const offline = await inspect(token, ['--issuer', ks.url, '--audience', 'orders']);
    assert.equal(offline.code, 0, offline.stderr);
    assert.deepEqual(results(offline.report), { size: 'pass', header: 'pass', claims: 'pass', issuer: 'pass', audience: 'pass', time: 'pass', lifetime: 'pass' });
    assert.equal(ks.requests(), 0);
    const online = await inspect(token, ['--issuer', ks.url, '--audience', 'orders', '--jwks', `${ks.url}/jwks.json`]);
    assert.equal(online.report.verification?.result, 'accepted');
    assert.ok(ks.requests() >= 1);
  });

  it('each header and claim rule fails with the verifier’s code, and checks it never reaches are skipped', async () => {
    const t = Math.floor(Date.now() / 1000);
    const hmac = new TextEncoder().encode('a shared secret that no access token may use');
    const requestsBefore = ks.requests();
    const cases: [string, Promise<string>, Record<string, string>][] = [
      ['a jku header', ks.token({}, { jku: 'https://attacker.example/jwks.json' }), { header: 'bad_header' }],
      ['HS256', ks.token({}, { alg: 'HS256' }, hmac), { header: 'bad_algorithm' }],
      ['typ JWT', ks.token({}, { typ: 'JWT' }), { header: 'wrong_type' }],
      [
        'no jti',
        ks.token({ jti: undefined }),
        { claims: 'missing_claim', issuer: 'skipped', audience: 'skipped', time: 'skipped', lifetime: 'skipped' },
      ],
      ['a numeric sub', ks.token({ sub: 42 }), { claims: 'malformed' }],
      ['nbf in half an hour', ks.token({ nbf: t + 1800, exp: t + 3000 }), { time: 'not_yet_valid' }],
      ['a two-hour lifetime', ks.token({ exp: t + 7200 }), { lifetime: 'lifetime_too_long' }],
      ['5 KB of claims', ks.token({ padding: 'x'.repeat(5000) }), { size: 'too_large' }],
    ];
    for (const [what, tokenP, expected] of cases) {
      const { code, report } = await inspect(await tokenP, ['--issuer', ks.url, '--audience', 'orders']);
      const got = results(report);
      for (const [check, want] of Object.entries(expected)) assert.equal(got[check], want, `${what}: ${check} in ${JSON.stringify(got)}`);
      const failing = Object.entries(got).filter(([, v]) => v !== 'pass' && v !== 'skipped');
      assert.deepEqual(failing.map(([k]) => k).sort(), Object.entries(expected).filter(([, v]) => v !== 'skipped').map(([k]) => k).sort(), what);
      assert.equal(code, 1, what);
    }
    assert.equal(ks.requests(), requestsBefore, 'offline throughout');
  });

  it('something that is not a JWT at all is reported, not echoed; bad arguments are usage errors', async () => {
    const r = await runCli(['inspect', '--json', '-'], { stdin: 'hello, this is not a token\n' });
    assert.equal(r.code, 1);
    assert.deepEqual(JSON.parse(r.stdout), { kind: 'unknown', bytes: 26, note: 'not a JWT, nor a latchkey refresh token or session cookie; not shown, in case it is a secret' });
    assert.equal(r.stdout.includes('hello'), false);
    const token = await ks.token();
    const missingFile = await runCli(['inspect', '--jwks', join(tmpdir(), 'no-such-jwks.json'), token]);
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /cannot read --jwks/);
    for (const args of [['inspect', token, token], ['inspect', '--jwks'], ['inspect', '--frob', token]]) {
      assert.equal((await runCli(args)).code, 2, args.join(' '));
    }
    assert.equal((await runCli(['inspect', '-'], { stdin: '  \n' })).code, 2);
  });
});

describe('latchkey inspect: latchkey’s own secrets are recognised, never decoded or printed', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer();
  });
  after(() => srv.close());

  it('a refresh token is named as one and a secret; nothing of it is shown', async () => {
    const u = await signup(srv);
    const refresh = (await loginTokens(srv, u.email)).refresh_token!;
    for (const args of [['inspect', '--json', '-'], ['inspect', '-']]) {
      const r = await runCli(args, { stdin: refresh });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(`${r.stdout}${r.stderr}`.includes(refresh), false, 'the token is not printed');
      assert.equal(`${r.stdout}${r.stderr}`.includes(refresh.slice(0, 16)), false, 'not even a part of it');
      if (args.includes('--json')) {
        const report = JSON.parse(r.stdout) as Record<string, unknown>;
        assert.deepEqual(Object.keys(report).sort(), ['bytes', 'kind', 'note', 'secret']);
        assert.deepEqual([report.kind, report.secret, report.bytes], ['refresh_token', true, 64]);
      } else {
        assert.match(r.stdout, /^refresh token \(64 bytes\)$/m);
      }
    }
  });

  it('a session cookie (name=value or the value) is named as one, with the handle that ends it, and its value is not shown', async () => {
    const browser = new Client(srv.url);
    await browser.signup(`cookie-${process.pid}@example.com`, PASSWORD);
    const [name, value] = [...browser.cookies].find(([n]) => n === '__Host-latchkey')!;
    const handle = (await json<{ session: { handle: string } }>(await browser.get('/v1/session'))).session.handle;
    const named = await cliJson<Record<string, unknown>>(['inspect', '--json', `${name}=${value}`]);
    assert.deepEqual(
      { kind: named.kind, secret: named.secret, cookieName: named.cookieName, sessionHandle: named.sessionHandle, bytes: named.bytes },
      { kind: 'session_cookie', secret: true, cookieName: name, sessionHandle: handle, bytes: 43 },
    );
    assert.equal(JSON.stringify(named).includes(value), false);
    const bare = await runCli(['inspect', '-'], { stdin: value });
    assert.equal(bare.code, 0);
    assert.equal(bare.stdout.includes(value), false);
    assert.ok(bare.stdout.includes(`session handle: ${handle}`), bare.stdout);
    // the handle it prints ends that session
    const revoke = await runCli(['sessions', 'revoke', '--data-dir', srv.config.dataDir, '--', handle]);
    assert.equal(revoke.code, 0, revoke.stderr);
  });

  it('the known-device cookie and the sign-in form’s cookie are named as what they are, not printed', async () => {
    const browser = new Client(srv.url);
    const email = `device-${process.pid}@example.com`;
    await browser.signup(email, PASSWORD);
    assert.equal((await browser.login(email, PASSWORD)).status, 200);
    // a browser not signed in gets the form's cookie with the sign-in page
    const visitor = new Client(srv.url);
    await visitor.get('/signin');
    const expected: [string, string, Client][] = [
      ['__Host-latchkey-device', 'device_cookie', browser],
      ['__Host-latchkey-csrf', 'form_cookie', visitor],
    ];
    for (const [name, kind, client] of expected) {
      const value = client.cookies.get(name);
      assert.ok(value, `the server set ${name}`);
      const r = await runCli(['inspect', '--json', `${name}=${value}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).kind, kind);
      assert.equal(`${r.stdout}${r.stderr}`.includes(value), false, `${name} is not printed`);
    }
  });
});
