/**
 * Security Event Tokens from latchkey's revocation feed (docs/revocation.md):
 * verified as strictly as an access token (algorithm from the key, typ
 * `secevent+jwt`, iss exact, iat required), then read into what the
 * revocation list needs.
 */
import type { Backend } from '../crypto/backend.js';
import { VerifyError } from '../errors.js';
import { parseHeader, split } from '../jws/compact.js';
import type { KeyStore } from '../keys/store.js';
import type { Algorithm } from '../types.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const SESSION_REVOKED = `${CAEP}session-revoked`;
export const CLAIMS_CHANGE = `${CAEP}token-claims-change`;
export const CREDENTIAL_CHANGE = `${CAEP}credential-change`;
export const KEY_REVOKED = 'urn:latchkey:event-type:signing-key-revoked';

/** A SET is small; anything larger is not one of ours. */
const MAX_SET_BYTES = 8192;

/** Session ids read from one event: more than an 8 KiB SET can hold. */
const MAX_SIDS = 1000;

/** What one SET asks of a verifier. */
export type Revocation =
  | { kind: 'session'; sid: string; at: number }
  | { kind: 'subject'; sub: string; issuedBefore: number; at: number }
  | { kind: 'key'; kid: string; at: number }
  | { kind: 'none'; at: number };

const isSetType = (typ: string) => {
  const t = typ.toLowerCase();
  return t === 'secevent+jwt' || t === 'application/secevent+jwt';
};

interface JwsOptions {
  issuer: string;
  keys: KeyStore;
  backend: Backend;
  accepted: ReadonlySet<Algorithm>;
}

/**
 * Why a feed message did not verify, in the two kinds the subscriber treats
 * differently (docs/revocation.md): `unverifiable` (no key for its kid, keys
 * unreachable or past their staleness bound: it may verify once keys are
 * fetched again) and `invalid` (bad signature under a key we hold, wrong
 * issuer or typ, malformed: it never will). Neither is ever skipped.
 */
export function failureKind(err: unknown): 'unverifiable' | 'invalid' {
  if (err instanceof VerifyError) return err.code === 'unknown_key' || err.code === 'jwks_unavailable' ? 'unverifiable' : 'invalid';
  // a fetch or crypto backend failure: nothing was learnt about the message itself
  return 'unverifiable';
}

/**
 * Verify a compact JWS from the feed with `keys` and return its claims. An
 * unknown kid asks for one refetch (within the store's cooldown); keys past
 * their staleness bound are never used (jwks_unavailable).
 */
async function verifyJws(token: string, isType: (typ: string) => boolean, opts: JwsOptions): Promise<Record<string, unknown>> {
  if (token.length > MAX_SET_BYTES) throw new VerifyError('too_large');
  const seg = split(token);
  const header = parseHeader(seg.header, opts.backend, opts.accepted, isType);
  const ks = opts.keys;
  if (Date.now() > ks.usableUntil) {
    await ks.refresh(Date.now());
    if (Date.now() > ks.usableUntil) throw new VerifyError('jwks_unavailable', ks.lastError);
  } else if (Date.now() > ks.freshUntil) ks.revalidate(Date.now());
  let key = ks.keys.get(header.kid);
  if (key === undefined) {
    await ks.refresh(Date.now());
    key = ks.keys.get(header.kid);
    if (key === undefined) throw new VerifyError('unknown_key');
  }
  if (header.alg !== key.alg) throw new VerifyError('bad_algorithm');
  if (seg.signature.length === 0) throw new VerifyError('bad_signature', 'no signature');
  const ok = await opts.backend.verify(key.alg, key.handle, token, seg.dot2, key.sigBytes);
  if (!ok) throw new VerifyError('bad_signature');
  const text = opts.backend.text(seg.payload);
  if (text === undefined) throw new VerifyError('malformed', 'payload not UTF-8');
  let claims: unknown;
  try {
    claims = JSON.parse(text);
  } catch {
    throw new VerifyError('malformed', 'payload not JSON');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new VerifyError('malformed');
  const c = claims as Record<string, unknown>;
  if (c.iss !== opts.issuer) throw new VerifyError('wrong_issuer');
  if (typeof c.iat !== 'number' || !Number.isFinite(c.iat)) throw new VerifyError('malformed', 'iat');
  return c;
}

/** Verify a SET's signature with `keys` (one refetch for an unknown kid) and return its claims. */
export async function verifySet(set: string, opts: JwsOptions): Promise<Record<string, unknown>> {
  const c = await verifyJws(set, isSetType, opts);
  if (typeof c.events !== 'object' || c.events === null || Array.isArray(c.events)) throw new VerifyError('malformed', 'events');
  return c;
}

/** The position a latchkey SET vouches for: its jti is `<seq>.<commit time>`. */
export function seqOfSet(claims: Record<string, unknown>): number | undefined {
  const jti = claims.jti;
  if (typeof jti !== 'string') return undefined;
  const dot = jti.indexOf('.');
  const head = dot < 0 ? '' : jti.slice(0, dot);
  if (head.length === 0 || head.length > 15) return undefined;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return Number(head);
}

/** A signed control message of the feed (ready, heartbeat, reset): the position and time it vouches for. */
export interface Control {
  kind: 'ready' | 'heartbeat' | 'reset';
  seq: number;
  iat: number;
  nonce: string | undefined;
}

const isControlType = (typ: string) => typ.toLowerCase() === 'latchkey-feed+jwt';

/** Verify a control message: signed by the issuer, typ `latchkey-feed+jwt`, and naming the event it came as. */
export async function verifyControl(token: string, event: string, opts: JwsOptions): Promise<Control> {
  const c = await verifyJws(token, isControlType, opts);
  if (c.feed !== event) throw new VerifyError('malformed', 'control message sent as another event');
  const seq = c.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new VerifyError('malformed', 'seq');
  if (c.nonce !== undefined && typeof c.nonce !== 'string') throw new VerifyError('malformed', 'nonce');
  return { kind: event as Control['kind'], seq, iat: c.iat as number, nonce: c.nonce as string | undefined };
}

const obj = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= 256 ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The revocations a verified SET carries (unknown event types and other issuers' subjects: none). */
export function revocationsOf(claims: Record<string, unknown>, issuer: string): Revocation[] {
  const events = obj(claims.events)!;
  const subId = obj(claims.sub_id);
  const out: Revocation[] = [];
  for (const [type, body] of Object.entries(events)) {
    const ev = obj(body) ?? {};
    const at = num(ev.event_timestamp) ?? (claims.iat as number);
    // the cutoff: latchkey's exact one, or the event time (other transmitters)
    const issuedBefore = num(ev.tokens_issued_before) ?? at;
    const user = subId?.format === 'iss_sub' ? subId : obj(subId?.user);
    const sub = user?.format === 'iss_sub' && user.iss === issuer ? str(user.sub) : undefined;
    if (type === SESSION_REVOKED) {
      const session = obj(subId?.session);
      const sid = subId?.format === 'complex' && session?.format === 'opaque' ? str(session.id) : undefined;
      if (sid !== undefined) out.push({ kind: 'session', sid, at });
      else if (subId?.format === 'iss_sub' && sub !== undefined) {
        out.push({ kind: 'subject', sub, issuedBefore, at });
        // latchkey names the sessions a user-wide event ended: a token minted for one of them after the
        // cutoff (a request that read the session just before it ended) is refused by its sid.
        // Events without the member (an earlier latchkey, other transmitters) revoke by the cutoff alone.
        if (Array.isArray(ev.sids)) {
          for (const v of ev.sids.slice(0, MAX_SIDS)) {
            const s = str(v);
            if (s !== undefined) out.push({ kind: 'session', sid: s, at: Math.max(at, issuedBefore) });
          }
        }
      }
    } else if (type === CLAIMS_CHANGE) {
      if (sub !== undefined) out.push({ kind: 'subject', sub, issuedBefore, at });
    } else if (type === KEY_REVOKED) {
      const kid = subId?.format === 'opaque' ? str(subId.id) : undefined;
      if (kid !== undefined) out.push({ kind: 'key', kid, at });
    } else if (type === CREDENTIAL_CHANGE) {
      // informational: the tokens it ends are revoked by the user-wide session-revoked event beside it
      out.push({ kind: 'none', at });
    }
  }
  return out;
}
