/** Test helpers: real key pairs, JWKS documents, and a real JWKS/metadata server on 127.0.0.1. */
import { createHash, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Algorithm, JWK } from '../src/index.js';
import { attackerKey, claimsFor, mint, type SigningMaterial } from './catalogue.js';

export const ALGS: readonly Algorithm[] = ['EdDSA', 'ES256', 'RS256'];

export interface TestKey extends SigningMaterial {
  publicKey: KeyObject;
  jwk: JWK;
}

/** A fresh key pair with an RFC 7638-thumbprint kid and its published JWK {kty, ..., kid, alg, use}. */
export function newKey(alg: Algorithm): TestKey {
  const { key, publicKey } = attackerKey(alg);
  const pub = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const members = pub.kty === 'RSA' ? ['e', 'kty', 'n'] : pub.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
  const kid = createHash('sha256')
    .update(JSON.stringify(Object.fromEntries(members.map((m) => [m, pub[m]]))))
    .digest()
    .subarray(0, 6)
    .toString('base64url');
  return { kid, alg, key, publicKey, jwk: { ...pub, kid, alg, use: 'sig' } };
}

export const jwksOf = (...keys: TestKey[]) => ({ keys: keys.map((k) => k.jwk) });

export const now = () => Math.floor(Date.now() / 1000);

/** A valid token as the server mints it; `extra` overrides claims. */
export function token(k: TestKey, issuer: string, audience: string, extra: Record<string, unknown> = {}): string {
  return mint(k.alg, k.key, { alg: k.alg, kid: k.kid, typ: 'at+jwt' }, claimsFor(issuer, audience, now(), extra));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve to the error `p` rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; status?: number; detail?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

/**
 * An authorization server's well-known endpoints, for real: RFC 8414 metadata
 * and a JWKS with settable Cache-Control and ETag, an on/off switch, and a log
 * of what was requested.
 */
export class KeyServer {
  issuer = '';
  keys: TestKey[] = [];
  cacheControl: string | undefined = 'public, max-age=60';
  /** 'up', 'error' (HTTP 500), 'reset' (socket destroyed), 'hang' (never answers), 'redirect', 'huge' */
  mode: 'up' | 'error' | 'reset' | 'hang' | 'redirect' | 'huge' = 'up';
  /** Issuer path (RFC 8414 §3.1: metadata at /.well-known/oauth-authorization-server/<tenant>). */
  tenant = '';
  etags = true;
  /** Overrides of the metadata document. */
  metadata: Record<string, unknown> = {};
  /** Path and status of every request. */
  readonly log: { path: string; status: number }[] = [];
  private server: Server | undefined;

  constructor(...keys: TestKey[]) {
    this.keys = keys;
  }

  /** Requests for the JWKS (any outcome). */
  get jwksRequests(): number {
    return this.log.filter((l) => l.path === '/.well-known/jwks.json').length;
  }
  get metadataRequests(): number {
    return this.log.filter((l) => l.path.startsWith('/.well-known/oauth-authorization-server')).length;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${this.tenant ? '/' + this.tenant : ''}`;
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const done = (status: number, headers: Record<string, string> = {}, body = '') => {
      this.log.push({ path, status });
      res.writeHead(status, headers).end(body);
    };
    if (this.mode === 'reset') {
      this.log.push({ path, status: 0 });
      req.socket.destroy();
      return;
    }
    if (this.mode === 'hang') {
      this.log.push({ path, status: 0 });
      return;
    }
    if (this.mode === 'error') return done(500, {}, 'down');
    if (path === `/.well-known/oauth-authorization-server${this.tenant ? '/' + this.tenant : ''}`) {
      const origin = new URL(this.issuer).origin;
      return done(200, { 'content-type': 'application/json' }, JSON.stringify({ issuer: this.issuer, jwks_uri: `${origin}/.well-known/jwks.json`, ...this.metadata }));
    }
    if (path === '/.well-known/jwks.json') {
      if (this.mode === 'redirect') return done(302, { location: `${this.issuer}/other-jwks.json` });
      const body = this.mode === 'huge' ? JSON.stringify({ keys: this.keys.map((k) => k.jwk), pad: 'x'.repeat(600 * 1024) }) : JSON.stringify({ keys: this.keys.map((k) => k.jwk) });
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
      const headers: Record<string, string> = { 'content-type': 'application/jwk-set+json' };
      if (this.cacheControl !== undefined) headers['cache-control'] = this.cacheControl;
      if (this.etags) headers.etag = etag;
      if (this.etags && req.headers['if-none-match'] === etag) return done(304, headers);
      return done(200, headers, body);
    }
    if (path === '/other-jwks.json') return done(200, { 'content-type': 'application/json' }, JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
    done(404);
  }
}
