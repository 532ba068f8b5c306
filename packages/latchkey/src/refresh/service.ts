/**
 * Refresh tokens for token clients (mobile, CLI, server-to-server, SPAs).
 *
 * One family per session; a refresh token is `familyKey (128 bit) || secret
 * (256 bit)`, base64url, 64 characters, opaque to clients. The store keeps only
 * SHA-256 of the token and of the family key. Every use rotates the token with
 * an atomic compare-and-swap in the store:
 *
 * - the current token: rotated; the successor is returned.
 * - a token rotated less than `graceSeconds` ago: the same successor again.
 *   Two tabs or twenty parallel requests refreshing with one token are not
 *   theft; they all continue with one successor. The successor's secret is
 *   kept AES-256-GCM sealed on the old token's row for that window (and pruned
 *   after it), so any process sharing the store can hand it out.
 * - any older token of the family (its own row may be gone: the family key
 *   still names the family): reuse. The family's session is deleted in the
 *   same transaction, so the newest token dies too; audit event
 *   `refresh_reuse_detected`; listeners told.
 *
 * The family lives as long as its session row: idle and absolute lifetimes are
 * the session's (`refresh.*` timeouts), and every way a session ends (logout,
 * revocation, password change, disable) deletes the family by FK cascade.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { AuditLog } from '../audit/log.js';
import { LatchkeyError } from '../errors.js';
import { handleOf, hashSecret, newSecret } from '../sessions/ids.js';
import type { SessionService } from '../sessions/service.js';
import type { Session, Store, User } from '../store/store.js';

export interface RefreshSettings {
  graceSeconds: number;
  idleTimeoutSeconds: number;
  absoluteLifetimeSeconds: number;
}

export interface IssuedFamily {
  refreshToken: string;
  session: Session;
  sessionHandle: string;
}

export interface RefreshResult {
  refreshToken: string;
  user: User;
  session: Session;
  sessionHandle: string;
  clientId: string;
}

/** A family ended by this service (reuse or revocation). Families also end with their session: see SessionService.onEnd. */
export interface FamilyEndedEvent {
  reason: 'refresh_reuse_detected' | 'revoked';
  session: Session;
  sessionHandle: string;
  userId: string;
  clientId: string;
}
export type FamilyEndedListener = (event: FamilyEndedEvent) => void;

export interface RefreshIntrospection {
  active: boolean;
  user: User;
  sessionHandle: string;
  clientId: string;
  issuedAt: number;
  /** The family's end if unused: the earlier of its idle and absolute ends. */
  expiresAt: number;
}

const KEY_BYTES = 16;
const SECRET_BYTES = 32;
const TOKEN_LENGTH = Math.ceil(((KEY_BYTES + SECRET_BYTES) * 4) / 3);
const B64URL = /^[A-Za-z0-9_-]+$/;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

interface ParsedToken {
  raw: Buffer;
  familyKey: Buffer;
  tokenHash: Buffer;
  familyKeyHash: Buffer;
}

/** Shaped like one of our refresh tokens (length and alphabet): nothing is decoded. */
export const looksLikeRefreshToken = (token: string): boolean => token.length === TOKEN_LENGTH && B64URL.test(token);

/** Split a presented token; undefined when it cannot be one of ours. */
export function parseRefreshToken(token: string): ParsedToken | undefined {
  if (token.length !== TOKEN_LENGTH || !B64URL.test(token)) return undefined;
  const raw = Buffer.from(token, 'base64url');
  if (raw.length !== KEY_BYTES + SECRET_BYTES) return undefined;
  const familyKey = raw.subarray(0, KEY_BYTES);
  return { raw, familyKey, tokenHash: sha256(raw), familyKeyHash: sha256(familyKey) };
}

const invalidGrant = () => new LatchkeyError('invalid_grant', 'the refresh token is invalid, expired or revoked');

export class RefreshService {
  private readonly listeners: FamilyEndedListener[] = [];

  constructor(
    private readonly store: Store,
    private readonly sessions: SessionService,
    private readonly audit: AuditLog,
    /** 32 bytes: seals successors for the grace window. */
    private readonly sealKey: Buffer,
    readonly settings: RefreshSettings,
    private readonly now: () => number = Date.now,
  ) {}

  onFamilyEnded(listener: FamilyEndedListener): void {
    this.listeners.push(listener);
  }

  /** Start a session for a token client (shown in the user's session list) and its family. */
  async issue(user: User, client: { clientId: string; ip: string; device: string }): Promise<IssuedFamily> {
    const t = this.seconds();
    const session: Session & { idleTimeoutSeconds: number } = {
      // a session row needs a key; its secret is dropped, so this session can never be a cookie
      idHash: hashSecret(newSecret()),
      userId: user.id,
      createdAt: t,
      lastSeenAt: t,
      expiresAt: t + this.settings.absoluteLifetimeSeconds,
      device: client.device,
      ip: client.ip,
      idleTimeoutSeconds: this.settings.idleTimeoutSeconds,
    };
    const familyKey = randomBytes(KEY_BYTES);
    const raw = Buffer.concat([familyKey, randomBytes(SECRET_BYTES)]);
    const evicted = await this.store.createRefreshFamily(
      { session, keyHash: sha256(familyKey), clientId: client.clientId, tokenHash: sha256(raw) },
      this.sessions.limit,
    );
    this.sessions.ended(evicted, 'session_limit');
    return { refreshToken: raw.toString('base64url'), session, sessionHandle: handleOf(session.idHash) };
  }

  /**
   * The refresh grant. `clientId`, when the caller identified itself, must be
   * the family's. Throws invalid_grant for anything but a usable token.
   */
  async refresh(token: string, caller: { clientId: string | undefined; ip: string }): Promise<RefreshResult> {
    const parsed = parseRefreshToken(token);
    if (!parsed) throw invalidGrant();
    const successor = Buffer.concat([parsed.familyKey, randomBytes(SECRET_BYTES)]);
    const out = await this.store.rotateRefreshToken({
      tokenHash: parsed.tokenHash,
      familyKeyHash: parsed.familyKeyHash,
      successorHash: sha256(successor),
      successorSealed: this.seal(successor, parsed.tokenHash),
      clientId: caller.clientId,
      now: this.seconds(),
      graceSeconds: this.settings.graceSeconds,
      ip: caller.ip,
    });
    switch (out.outcome) {
      case 'rotated':
        return { ...out, refreshToken: successor.toString('base64url'), sessionHandle: handleOf(out.session.idHash) };
      case 'shared': {
        const shared = this.unseal(out.successorSealed, out.sealedBy);
        return {
          refreshToken: shared.toString('base64url'),
          user: out.user,
          session: out.session,
          sessionHandle: handleOf(out.session.idHash),
          clientId: out.clientId,
        };
      }
      case 'reused': {
        const sessionHandle = handleOf(out.session.idHash);
        this.sessions.ended([out.session], 'refresh_reuse_detected');
        await this.audit.record({
          type: 'refresh_reuse_detected',
          userId: out.session.userId,
          session: sessionHandle,
          ip: caller.ip,
          detail: { clientId: out.clientId },
        });
        this.emit({ reason: 'refresh_reuse_detected', session: out.session, sessionHandle, userId: out.session.userId, clientId: out.clientId });
        throw invalidGrant();
      }
      default:
        throw invalidGrant();
    }
  }

  /**
   * Revoke the family a token belongs to (RFC 7009), ending its session.
   * False (and nothing changed) for unknown tokens or another client's.
   */
  async revoke(token: string, clientId: string, ip?: string): Promise<boolean> {
    const parsed = parseRefreshToken(token);
    if (!parsed) return false;
    const ended = await this.store.revokeRefreshFamily({ familyKeyHash: parsed.familyKeyHash }, clientId);
    if (!ended) return false;
    await this.familyRevoked(ended, clientId, ip);
    return true;
  }

  /** Revoke the family of a session (an access token's `sid`), if it has one of this client. */
  async revokeSession(sessionHash: Buffer, clientId: string, ip?: string): Promise<boolean> {
    const ended = await this.store.revokeRefreshFamily({ sessionHash }, clientId);
    if (!ended) return false;
    await this.familyRevoked(ended, clientId, ip);
    return true;
  }

  /** What introspection (RFC 7662) may say about a refresh token; undefined if it is not one. */
  async inspect(token: string): Promise<RefreshIntrospection | undefined> {
    const parsed = parseRefreshToken(token);
    if (!parsed) return undefined;
    const info = await this.store.findRefreshToken(parsed.tokenHash, parsed.familyKeyHash);
    if (!info || info.issuedAt === undefined) return undefined;
    const t = this.seconds();
    const s = info.session;
    const idleEnd = s.lastSeenAt + (s.idleTimeoutSeconds ?? this.settings.idleTimeoutSeconds);
    return {
      active: info.current && !info.user.disabled && this.sessions.isLive(s, t),
      user: info.user,
      sessionHandle: handleOf(s.idHash),
      clientId: info.clientId,
      issuedAt: info.issuedAt,
      expiresAt: Math.min(idleEnd, s.expiresAt),
    };
  }

  /** Drop rows rotated before the grace window, and with them their sealed successors. */
  async sweep(): Promise<number> {
    return this.store.pruneRefreshTokens(this.seconds() - this.settings.graceSeconds);
  }

  private async familyRevoked(ended: Session, clientId: string, ip: string | undefined): Promise<void> {
    const sessionHandle = handleOf(ended.idHash);
    this.sessions.ended([ended], 'revoked');
    await this.audit.record({ type: 'refresh_family_revoked', userId: ended.userId, session: sessionHandle, ip, detail: { clientId } });
    this.emit({ reason: 'revoked', session: ended, sessionHandle, userId: ended.userId, clientId });
  }

  /** AES-256-GCM, bound (AAD) to the hash of the token whose row holds it. */
  private seal(successor: Buffer, holder: Buffer): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, iv);
    cipher.setAAD(holder);
    const ct = Buffer.concat([cipher.update(successor), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), ct]);
  }

  private unseal(sealed: Buffer, holder: Buffer): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.sealKey, sealed.subarray(0, 12));
    decipher.setAAD(holder);
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]);
  }

  private emit(e: FamilyEndedEvent): void {
    for (const l of this.listeners) l(e);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
