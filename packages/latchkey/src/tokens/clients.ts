/**
 * OAuth clients: the first-party public client (no secret; mobile apps, CLIs
 * and SPAs cannot keep one) and registered confidential clients (resource
 * servers that introspect, feed subscribers) with a secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { LatchkeyError } from '../errors.js';

export interface RegisteredClient {
  id: string;
  secret: string;
  introspect: boolean;
  revocationFeed: boolean;
}

/** Who is calling: the public client, or a registered client that proved its secret. */
export type CallingClient = { id: string; confidential: false } | { id: string; confidential: true; client: RegisteredClient };

const digest = (s: string) => createHash('sha256').update(s).digest();

export class ClientRegistry {
  private readonly byId: Map<string, { client: RegisteredClient; secretDigest: Buffer }>;

  constructor(
    readonly publicClientId: string,
    clients: readonly RegisteredClient[],
  ) {
    this.byId = new Map(clients.map((c) => [c.id, { client: c, secretDigest: digest(c.secret) }]));
  }

  /**
   * Identify the caller from the credentials it sent (HTTP Basic or form
   * client_id/client_secret). No credentials at all: the public client.
   * Throws invalid_client for a wrong secret, an unknown id, or a registered
   * client that sent no secret.
   */
  identify(id: string | undefined, secret: string | undefined): CallingClient {
    if (id === undefined || id === this.publicClientId) {
      if (secret !== undefined) throw invalidClient();
      return { id: this.publicClientId, confidential: false };
    }
    const entry = this.byId.get(id);
    // digests compare in constant time whatever the lengths; unknown ids cost the same
    const given = digest(secret ?? '');
    const ok = entry !== undefined && secret !== undefined && timingSafeEqual(given, entry.secretDigest);
    if (!ok) throw invalidClient();
    return { id, confidential: true, client: entry.client };
  }
}

const invalidClient = () => new LatchkeyError('invalid_client', 'client authentication failed');

/** Client id and secret from an HTTP Basic header (RFC 6749 §2.3.1: each form-urlencoded first). Throws invalid_client. */
export function basicCredentials(header: string): { id: string; secret: string } {
  const m = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
  const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new LatchkeyError('invalid_client', 'malformed Basic credentials');
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
}

function formDecode(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    throw new LatchkeyError('invalid_client', 'malformed Basic credentials');
  }
}
