/**
 * Assemble the token side of latchkey from the config: signing keys, the
 * access-token issuer, refresh families, clients and the audit log, plus their
 * background work (key state re-read every second, refresh rows pruned every
 * minute). Used by app.ts and by the `keys` CLI command.
 */
import { AuditLog } from '../audit/log.js';
import type { Config } from '../config.js';
import { parseEncryptionKey } from '../keys/material.js';
import { KeyService } from '../keys/service.js';
import { RefreshService } from '../refresh/service.js';
import type { SessionService } from '../sessions/service.js';
import type { Store } from '../store/store.js';
import { ClientRegistry } from './clients.js';
import { TokenIssuer } from './issuer.js';

export interface TokenServices {
  keys: KeyService;
  tokens: TokenIssuer;
  refresh: RefreshService;
  clients: ClientRegistry;
  audit: AuditLog;
  /** Start the background work; errors go to `onError` (they never stop it). */
  start(onError: (err: unknown, what: string) => void): void;
  stop(): void;
}

/** The longest lifetime any token of this config may have: the token endpoint's or a gateway route's. */
export function maxTokenLifetime(config: Config): number {
  return Math.max(config.tokens.accessTokenLifetimeSeconds, ...config.gateway.routes.map((r) => r.tokenLifetimeSeconds));
}

/** Revocation events are kept as long as the tokens they refer to can live, plus a minute of clock skew. */
export function revocationRetention(config: Config): number {
  return maxTokenLifetime(config) + 60;
}

export function createKeyService(config: Config, store: Store, audit: AuditLog, now: () => number): KeyService {
  return new KeyService(
    store,
    {
      algorithm: config.tokens.algorithm,
      rotationIntervalSeconds: config.keys.rotationIntervalSeconds,
      prePublishSeconds: config.keys.prePublishSeconds,
      maxTokenLifetimeSeconds: maxTokenLifetime(config),
      encryptionKey: parseEncryptionKey(config.keys.encryptionKey),
    },
    audit,
    now,
  );
}

export async function createTokenServices(opts: {
  config: Config;
  store: Store;
  sessions: SessionService;
  /** The store's 32-byte `refresh.key` (keys/at-rest.ts): seals refresh successors for the grace window. */
  sealKey: Buffer;
  now: () => number;
}): Promise<TokenServices> {
  const { config, store, sessions, now } = opts;
  const audit = new AuditLog(store, now, config.audit);
  const keys = createKeyService(config, store, audit, now);
  await keys.start();
  const tokens = new TokenIssuer(
    keys,
    {
      issuer: config.issuer,
      defaultLifetimeSeconds: config.tokens.accessTokenLifetimeSeconds,
      maxLifetimeSeconds: maxTokenLifetime(config),
      clientId: config.tokens.clientId,
      scope: config.tokens.scope,
    },
    now,
  );
  const refresh = new RefreshService(store, sessions, audit, opts.sealKey, config.refresh, now);
  const clients = new ClientRegistry(config.tokens.clientId, config.clients);
  let prune: NodeJS.Timeout | undefined;
  return {
    keys,
    tokens,
    refresh,
    clients,
    audit,
    start(onError) {
      keys.startTimer((err) => onError(err, 'signing key refresh failed'));
      prune = setInterval(() => {
        refresh.sweep().catch((err: unknown) => onError(err, 'refresh token prune failed'));
      }, 60_000);
      prune.unref();
    },
    stop() {
      keys.stop();
      if (prune) clearInterval(prune);
    },
  };
}
