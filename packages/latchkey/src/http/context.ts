import type { AccountService } from '../accounts/service.js';
import type { AdminService } from '../admin/service.js';
import type { AuditLog } from '../audit/log.js';
import type { Config } from '../config.js';
import type { KeyService } from '../keys/service.js';
import type { RefreshService } from '../refresh/service.js';
import type { AuthenticatedSession, SessionService } from '../sessions/service.js';
import type { Store } from '../store/store.js';
import type { ClientRegistry } from '../tokens/clients.js';
import type { TokenIssuer } from '../tokens/issuer.js';
import type { CsrfGuard } from './csrf.js';

/** Everything route plugins need; built once in app.ts. */
export interface Context {
  config: Config;
  store: Store;
  accounts: AccountService;
  sessions: SessionService;
  csrf: CsrfGuard;
  /** Access-token minting and verification (RFC 9068). */
  tokens: TokenIssuer;
  keys: KeyService;
  refresh: RefreshService;
  clients: ClientRegistry;
  audit: AuditLog;
  /** Operators' actions: the admin API and the CLI call the same service. */
  admin: AdminService;
}

export type Auth = AuthenticatedSession;

declare module 'fastify' {
  interface FastifyRequest {
    auth: Auth | null;
  }
}
