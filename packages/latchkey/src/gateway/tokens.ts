/**
 * The BFF's token policy: a session becomes a short-lived access token for one
 * audience, minted once and reused from TokenCache until near expiry.
 */
import type { RouteConfig } from '../config.js';
import type { SessionService } from '../sessions/service.js';
import type { User } from '../store/store.js';
import { TokenCache } from './token-cache.js';

/** What the gateway needs from the token issuer (tokens/). */
export interface AccessTokenMinter {
  mint(input: {
    user: User;
    sessionHandle: string;
    audience: string;
    lifetimeSeconds: number;
  }): Promise<{ token: string; expiresAt: number }>;
}

export class GatewayTokens {
  readonly cache = new TokenCache();

  constructor(
    private readonly minter: AccessTokenMinter,
    sessions: SessionService,
    private readonly now: () => number = Date.now,
  ) {
    // an ended session's tokens are never handed out again
    sessions.onEnd((ended) => {
      for (const s of ended) this.cache.forgetSession(sessions.handle(s));
    });
  }

  async tokenFor(user: User, sessionHandle: string, route: RouteConfig): Promise<string> {
    const t = Math.floor(this.now() / 1000);
    // the cutoff too: after a role change (even to the same roles) older tokens are revoked
    const roles = `${user.tokensNotBefore ?? 0} ${user.roles.join(' ')}`;
    const cached = this.cache.get(sessionHandle, route.audience, roles, t, route.tokenLifetimeSeconds);
    if (cached) return cached;
    const { token, expiresAt } = await this.minter.mint({
      user,
      sessionHandle,
      audience: route.audience,
      lifetimeSeconds: route.tokenLifetimeSeconds,
    });
    this.cache.set(sessionHandle, route.audience, { token, expiresAt, roles });
    return token;
  }
}
