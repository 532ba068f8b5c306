/**
 * Revocation events as Security Event Tokens (RFC 8417) carrying OpenID CAEP
 * events, subjects as RFC 9493 identifiers. The mapping is docs/revocation.md.
 */
import type { Signer } from '../keys/service.js';
import type { RevocationEvent } from '../store/store.js';
import { signature } from '../tokens/issuer.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const EVENT_TYPES = {
  sessionRevoked: `${CAEP}session-revoked`,
  credentialChange: `${CAEP}credential-change`,
  tokenClaimsChange: `${CAEP}token-claims-change`,
  /** No standard type exists for a signing key taken back. */
  keyRevoked: 'urn:latchkey:event-type:signing-key-revoked',
} as const;

type SubjectId = Record<string, unknown>;

/** Why every token of a user up to a cutoff was revoked (events written before `reason` existed: disabled). */
const USER_REASONS: Record<string, string> = {
  disabled: 'account disabled',
  signed_out_everywhere: 'signed out everywhere',
  password_changed: 'password changed',
};

/** The SET claims of one event. */
export function setClaims(issuer: string, e: RevocationEvent): Record<string, unknown> {
  // the same on every node and every delivery: seq and commit time (a store replaced later reuses seqs, not times)
  const jti = `${e.seq}.${e.at}`;
  const iat = Math.floor(e.at / 1000);
  const user: SubjectId | undefined = e.userId === null ? undefined : { format: 'iss_sub', iss: issuer, sub: e.userId };
  const initiator = typeof e.detail.initiator === 'string' ? { initiating_entity: e.detail.initiator } : {};
  let subId: SubjectId;
  let type: string;
  let body: Record<string, unknown> = { event_timestamp: iat, ...initiator };
  switch (e.kind) {
    case 'session':
      subId = { format: 'complex', ...(user ? { user } : {}), session: { format: 'opaque', id: e.sid } };
      type = EVENT_TYPES.sessionRevoked;
      if (e.detail.reason === 'refresh_token_reuse') body.reason_admin = { en: 'refresh token reuse detected' };
      break;
    case 'user':
      subId = user!;
      type = EVENT_TYPES.sessionRevoked;
      body = { ...body, tokens_issued_before: e.tokensIssuedBefore, reason_admin: { en: USER_REASONS[String(e.detail.reason)] ?? 'account disabled' } };
      // the sessions it ended: their tokens are refused whenever minted, even after the cutoff
      if (Array.isArray(e.detail.sids)) body.sids = e.detail.sids;
      break;
    case 'claims':
      subId = user!;
      type = EVENT_TYPES.tokenClaimsChange;
      body = { ...body, claims: { roles: e.detail.roles }, tokens_issued_before: e.tokensIssuedBefore };
      break;
    case 'credential':
      subId = user!;
      type = EVENT_TYPES.credentialChange;
      body = { ...body, credential_type: e.detail.credential_type ?? 'password', change_type: 'update' };
      break;
    case 'key':
      subId = { format: 'opaque', id: e.kid };
      type = EVENT_TYPES.keyRevoked;
      break;
  }
  return { iss: issuer, iat, jti, sub_id: subId, events: { [type]: body } };
}

/** Sign a SET: typ `secevent+jwt` (RFC 8417 §2.3) keeps it from passing as an access token. */
export function signSet(signer: Signer, claims: Record<string, unknown>): string {
  const header = Buffer.from(JSON.stringify({ alg: signer.alg, kid: signer.kid, typ: 'secevent+jwt' })).toString('base64url');
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${signature(signer, input)}`;
}

/** The feed's own messages besides SETs: the catch-up is done, still alive, a position from another store. */
export type ControlKind = 'ready' | 'heartbeat' | 'reset';

/**
 * The claims of a signed control message (docs/revocation.md): the position it
 * vouches for, when it was said, and (ready, reset) the subscriber's nonce when it sent one.
 * No `sub`, `aud` or `exp`: it is not a token of anyone, and its freshness is
 * judged by the subscriber from `iat` against its own staleness bound.
 */
export function controlClaims(
  issuer: string,
  nowSeconds: number,
  m: { kind: ControlKind; seq: number; nonce: string | undefined; heartbeatSeconds: number },
): Record<string, unknown> {
  return {
    iss: issuer,
    iat: nowSeconds,
    feed: m.kind,
    seq: m.seq,
    ...(m.nonce === undefined ? {} : { nonce: m.nonce }),
    ...(m.kind === 'ready' ? { heartbeat_seconds: m.heartbeatSeconds } : {}),
  };
}

/** Sign a control message: typ `latchkey-feed+jwt` keeps it from passing as an access token or a SET. */
export function signControl(signer: Signer, claims: Record<string, unknown>): string {
  const header = Buffer.from(JSON.stringify({ alg: signer.alg, kid: signer.kid, typ: 'latchkey-feed+jwt' })).toString('base64url');
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${signature(signer, input)}`;
}
