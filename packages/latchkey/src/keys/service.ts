/**
 * Signing keys: which key signs now, which keys JWKS publishes, scheduled
 * rotation in-process, and operator rotation and retirement.
 *
 * A key's state at time t follows from its timestamps, so every process (the
 * server, the CLI, a second server on the same store) derives the same answer
 * without anyone flipping states on a timer:
 *
 *   pending   t < activatesAt                      published, does not sign yet
 *   active    activatesAt <= t < deactivatesAt     published, signs
 *   retiring  deactivatesAt <= t < unpublishAt     published until its last token expired
 *   retired   retiredAt set, or t >= unpublishAt   unpublished: its tokens no longer verify
 *
 * where unpublishAt = deactivatesAt + the longest token lifetime + clock leeway.
 * The next key is scheduled `prePublishSeconds` before it signs, so verifiers
 * that cache JWKS for less than that always know a kid before they see it.
 *
 * A key's private half is added to the store with its record, in one transaction
 * (sealed with the key-encryption key), and every node loads it from there when
 * its reload (about every second) first sees the key pending or active: a key
 * made by any node signs on all of them, and JWKS, built from the same rows, is
 * the same from each. Of nodes that tick or start at once, one adds the key
 * (addSigningKey's guards); the others load it.
 */
import type { KeyObject } from 'node:crypto';
import { createHash } from 'node:crypto';
import type { AuditLog } from '../audit/log.js';
import { LatchkeyError } from '../errors.js';
import type { AddKeyGuards, SigningAlgorithm, SigningKeyRecord, Store } from '../store/store.js';
import { generateKeyMaterial, KeyMaterialError, openPrivateKey, privateJwkOf, privateKeyText, type PublicJwk } from './material.js';

export type KeyState = 'pending' | 'active' | 'retiring' | 'retired';

export interface KeyView extends SigningKeyRecord {
  state: KeyState;
  /** When a superseded key leaves JWKS; null while it has no successor. */
  unpublishAt: number | null;
}

export interface KeySettings {
  /** Algorithm of new keys. */
  algorithm: SigningAlgorithm;
  rotationIntervalSeconds: number;
  prePublishSeconds: number;
  /** The longest lifetime of any token signed here: a superseded key stays published that long. */
  maxTokenLifetimeSeconds: number;
  /** Seals the private halves stored with their keys; without it they are stored plaintext (SQLite only). */
  encryptionKey: Buffer | undefined;
}

/** A key left JWKS: retired by an operator (`retired`) or after its last token expired (`expired`). */
export interface KeyRetiredEvent {
  kid: string;
  alg: SigningAlgorithm;
  at: number;
  reason: 'retired' | 'expired';
}
export type KeyRetiredListener = (event: KeyRetiredEvent) => void;

export interface Signer {
  kid: string;
  alg: SigningAlgorithm;
  key: KeyObject;
}

/** Verifiers' clocks may run this far behind ours. */
export const CLOCK_LEEWAY_SECONDS = 60;

export class KeyService {
  private records: SigningKeyRecord[] = [];
  private fingerprint = '';
  private readonly privateKeys = new Map<string, KeyObject>();
  private readonly retired = new Set<string>();
  /** Retired keys whose private halves this process has had the store delete. */
  private readonly forgotten = new Set<string>();
  private readonly listeners: KeyRetiredListener[] = [];
  private jwksCache: { kids: string; body: string; etag: string; keys: PublicJwk[] } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly settings: KeySettings,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  onRetired(listener: KeyRetiredListener): void {
    this.listeners.push(listener);
  }

  /**
   * Load the key state; on first start (or when the configured algorithm
   * changed) create a key that signs at once, since no verifier can hold a
   * token of ours yet (or of the new algorithm).
   */
  async start(): Promise<void> {
    await this.load({ emit: false });
    const t = this.seconds();
    const active = this.records.find((r) => this.stateOf(r, t) === 'active');
    const pendingOfAlg = this.records.find((r) => this.stateOf(r, t) === 'pending' && r.alg === this.settings.algorithm);
    if (!active && pendingOfAlg) {
      // nothing signs (every key retired behind our back), and a key is already published: it signs now
      await this.store.promoteSigningKey(pendingOfAlg.kid, t);
      await this.audit.record({ type: 'key_rotated', detail: { kid: pendingOfAlg.kid, alg: pendingOfAlg.alg, activatesAt: t, why: 'no_active_key' } });
      await this.load({ emit: false });
    } else if (!active || (active.alg !== this.settings.algorithm && !pendingOfAlg)) {
      // nodes starting together each find no key (of this algorithm): the first one's key serves them all
      await this.createKey(t, active ? 'algorithm_changed' : 'first_start', { unlessSigningFrom: t });
      await this.load({ emit: false });
    }
    this.signer();
  }

  /** Re-read the shared state (keys rotated or retired by another process). */
  async reload(): Promise<void> {
    await this.load({ emit: true });
  }

  /** Re-read the shared state about every second; rotate when due. */
  startTimer(onError: (err: unknown) => void, intervalMs = 1000): void {
    this.timer = setInterval(() => {
      this.tick().catch(onError);
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round of the background work: reload, rotate if due, delete retired keys' private halves. */
  async tick(): Promise<void> {
    // never two rounds at once: a slow RSA generation must not schedule two keys
    if (this.ticking) return this.ticking;
    this.ticking = (async () => {
      await this.load({ emit: true });
      await this.rotateIfDue();
      // a key whose last token expired must never sign again: its private half leaves the store
      // (an operator's retirement deletes it at once, in retireSigningKey's transaction)
      const t = this.seconds();
      const expired = this.records.filter((r) => this.stateOf(r, t) === 'retired' && !this.forgotten.has(r.kid)).map((r) => r.kid);
      if (expired.length) {
        await this.store.forgetPrivateKeys(expired);
        for (const kid of expired) this.forgotten.add(kid);
      }
    })().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  /** The key to sign with now. Throws if there is none (start() ensures one). */
  signer(): Signer {
    const t = this.seconds();
    let best: SigningKeyRecord | undefined;
    for (const r of this.records) {
      const state = this.stateOf(r, t);
      if (state === 'active' && this.privateKeys.has(r.kid)) return { kid: r.kid, alg: r.alg, key: this.privateKeys.get(r.kid)! };
      // a key activated by another process whose private half this one has not loaded yet
      // (within a second): keep signing with the newest loaded key still published
      if ((state === 'retiring' || state === 'active') && this.privateKeys.has(r.kid) && (!best || r.activatesAt > best.activatesAt)) {
        best = r;
      }
    }
    if (!best) throw new Error('no signing key is available');
    return { kid: best.kid, alg: best.alg, key: this.privateKeys.get(best.kid)! };
  }

  /** The JWKS document (RFC 7517) of the keys published now, and its ETag. */
  jwks(): { body: string; etag: string; keys: PublicJwk[] } {
    const t = this.seconds();
    const published = this.records.filter((r) => this.stateOf(r, t) !== 'retired');
    const kids = published.map((r) => r.kid).join(',');
    if (this.jwksCache?.kids !== kids) {
      const keys = published.map((r) => JSON.parse(r.publicJwk) as PublicJwk);
      const body = JSON.stringify({ keys });
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
      this.jwksCache = { kids, body, etag, keys };
    }
    return this.jwksCache;
  }

  /** Algorithms of the published keys. */
  algorithms(): SigningAlgorithm[] {
    return [...new Set(this.jwks().keys.map((k) => k.alg))];
  }

  /** Every key with its state now, oldest first. */
  list(): KeyView[] {
    const t = this.seconds();
    return this.records.map((r) => this.view(r, t));
  }

  /**
   * Schedule the next key: published now, signing after `prePublishSeconds`
   * (or at once with `immediately`, e.g. after a compromise; verifiers then
   * learn the kid on their next JWKS fetch). When a key is already scheduled,
   * `immediately` brings it forward and otherwise nothing changes.
   */
  async rotate(opts: { immediately?: boolean } = {}): Promise<{ key: KeyView; created: boolean }> {
    await this.load({ emit: true });
    const t = this.seconds();
    const pending = this.records.find((r) => this.stateOf(r, t) === 'pending');
    if (pending) {
      if (!opts.immediately) return { key: this.view(pending, t), created: false };
      await this.store.promoteSigningKey(pending.kid, t);
      await this.audit.record({ type: 'key_rotated', detail: { kid: pending.kid, alg: pending.alg, activatesAt: t } });
      await this.load({ emit: true });
      return { key: this.view(this.find(pending.kid)!, t), created: false };
    }
    const kid = await this.createKey(opts.immediately ? t : t + this.settings.prePublishSeconds, 'rotate');
    await this.load({ emit: true });
    return { key: this.view(this.find(kid!)!, t), created: true };
  }

  /**
   * Retire a key now (compromise): JWKS stops listing it, its tokens stop
   * verifying, its private half is deleted from the store. Sessions and refresh tokens are
   * untouched: clients refresh and get tokens from another key. Retiring the
   * signing key first hands signing to the scheduled key or a new one.
   */
  async retire(kid: string): Promise<KeyView> {
    await this.load({ emit: true });
    const t = this.seconds();
    const rec = this.find(kid);
    if (!rec) throw new LatchkeyError('key_not_found', `no key ${kid}`);
    if (this.stateOf(rec, t) === 'retired') return this.view(rec, t);
    if (this.stateOf(rec, t) === 'active') {
      const pending = this.records.find((r) => r.kid !== kid && this.stateOf(r, t) === 'pending');
      if (pending) await this.store.promoteSigningKey(pending.kid, t);
      else await this.createKey(t, 'replaces_retired');
    }
    await this.store.retireSigningKey(kid, t);
    this.privateKeys.delete(kid);
    await this.audit.record({ type: 'key_retired', detail: { kid, alg: rec.alg, reason: 'retired' } });
    await this.load({ emit: true });
    return this.view(this.find(kid)!, t);
  }

  stateOf(r: SigningKeyRecord, t: number): KeyState {
    if (r.retiredAt !== null && r.retiredAt <= t) return 'retired';
    if (t < r.activatesAt) return 'pending';
    if (r.deactivatesAt === null || t < r.deactivatesAt) return 'active';
    return t < this.unpublishAt(r)! ? 'retiring' : 'retired';
  }

  private unpublishAt(r: SigningKeyRecord): number | null {
    return r.deactivatesAt === null ? null : r.deactivatesAt + this.settings.maxTokenLifetimeSeconds + CLOCK_LEEWAY_SECONDS;
  }

  private view(r: SigningKeyRecord, t: number): KeyView {
    return { ...r, state: this.stateOf(r, t), unpublishAt: this.unpublishAt(r) };
  }

  private find(kid: string): SigningKeyRecord | undefined {
    return this.records.find((r) => r.kid === kid);
  }

  private async rotateIfDue(): Promise<void> {
    const t = this.seconds();
    if (this.records.some((r) => this.stateOf(r, t) === 'pending')) return;
    const active = this.records.find((r) => this.stateOf(r, t) === 'active');
    if (!active) {
      // every key was retired behind our back: sign again at once (one key, however many nodes notice)
      await this.createKey(t, 'no_active_key', { unlessSigningFrom: t });
      await this.load({ emit: true });
      return;
    }
    const due = active.activatesAt + this.settings.rotationIntervalSeconds;
    if (t < due - this.settings.prePublishSeconds) return;
    // overdue (the server was down): still publish a full pre-publish period ahead
    const at = Math.max(due, t + this.settings.prePublishSeconds);
    // every node ticks: the first to add a successor of this active key wins, the others add nothing
    if (await this.createKey(at, 'scheduled', { unlessScheduledAfter: active.activatesAt })) await this.load({ emit: true });
  }

  /**
   * Generate a key and add it with its private half (sealed with the key-encryption key) in one
   * store transaction: every node can then load it. Returns the kid, or undefined if another
   * process scheduled first (its key is added; this one is forgotten, never stored).
   */
  private async createKey(activatesAt: number, why: string, guards: AddKeyGuards = {}): Promise<string | undefined> {
    const m = await generateKeyMaterial(this.settings.algorithm);
    const t = this.seconds();
    const added = await this.store.addSigningKey(
      {
        kid: m.kid,
        alg: m.alg,
        publicJwk: JSON.stringify(m.publicJwk),
        createdAt: t,
        activatesAt,
        deactivatesAt: null,
        retiredAt: null,
        privateKey: privateKeyText(privateJwkOf(m), this.settings.encryptionKey),
      },
      guards,
    );
    if (!added) return undefined;
    this.privateKeys.set(m.kid, m.privateKey);
    await this.audit.record({
      type: why === 'first_start' ? 'key_created' : 'key_rotated',
      detail: { kid: m.kid, alg: m.alg, activatesAt, why },
    });
    return m.kid;
  }

  /**
   * The private halves of the keys that sign now or soon and are not loaded yet (those another
   * node created included), from the store. Throws KeyMaterialError naming a kid whose private
   * half is missing or does not open: a key that cannot sign is never replaced behind the
   * operator's back.
   */
  private async privateKeysFor(records: SigningKeyRecord[]): Promise<Map<string, KeyObject>> {
    const t = this.seconds();
    const loaded = new Map<string, KeyObject>();
    for (const r of records) {
      const state = this.stateOf(r, t);
      if ((state !== 'pending' && state !== 'active') || this.privateKeys.has(r.kid)) continue;
      const text = await this.store.getPrivateKey(r.kid);
      if (text === undefined) {
        throw new KeyMaterialError(
          `the private key of ${r.kid} is not in the store (made by a node of an earlier latchkey? ` +
            `a start of this version on that node's data dir imports it)`,
        );
      }
      loaded.set(r.kid, openPrivateKey(text, r.kid, r.alg, this.settings.encryptionKey, 'in the store').key);
    }
    return loaded;
  }

  /** Read the shared state; report keys that left JWKS. */
  private async load({ emit }: { emit: boolean }): Promise<void> {
    const records = await this.store.listSigningKeys();
    // before the records are taken: a caller of signer() must never find a new active key (another
    // node's) without its private half while the store is read
    const loaded = await this.privateKeysFor(records);
    for (const [kid, key] of loaded) this.privateKeys.set(kid, key);
    const fingerprint = JSON.stringify(records);
    if (fingerprint !== this.fingerprint) {
      this.records = records;
      this.fingerprint = fingerprint;
    }
    const t = this.seconds();
    for (const r of this.records) {
      if (this.stateOf(r, t) === 'retired') {
        this.privateKeys.delete(r.kid);
        if (!this.retired.has(r.kid)) {
          this.retired.add(r.kid);
          if (emit) {
            const forced = r.retiredAt !== null;
            const at = forced ? r.retiredAt! : this.unpublishAt(r)!;
            for (const l of this.listeners) l({ kid: r.kid, alg: r.alg, at, reason: forced ? 'retired' : 'expired' });
          }
        }
      }
    }
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }
}
