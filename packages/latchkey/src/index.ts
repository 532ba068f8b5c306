export { createLatchkey, type Latchkey, type CreateOptions } from './app.js';
export { loadConfig, parseConfig, ConfigError, type Config } from './config.js';
export type { Store, User, Session, SessionWithUser } from './store/store.js';
export { SqliteStore } from './store/sqlite/index.js';
export { LatchkeyError, type ErrorCode } from './errors.js';
export type { MintRequest, MintedToken, AccessTokenClaims } from './tokens/issuer.js';
export type { FamilyEndedEvent } from './refresh/service.js';
export type { KeyRetiredEvent, KeyView } from './keys/service.js';
