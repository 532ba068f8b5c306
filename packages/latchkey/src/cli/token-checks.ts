/**
 * Which of @latchkey/verify's checks a token would fail, offline, told by the verifier itself
 * rather than by a second implementation of its rules that could drift from it.
 *
 * The verifier stops at the first failure and checks the signature before any claim, and offline
 * there is no key to check the signature with. So each check is run on its own:
 *
 * - size and header: the token as it is, against a throwaway public key of the header's `kid` and
 *   `alg`. Everything up to the key lookup is the verifier's own parsing; a header it accepts then
 *   fails on the signature (bad_signature), which here means "header passed".
 * - claims, issuer, audience, time, lifetime: the token's payload, byte for byte, signed again in
 *   memory with a throwaway key under a plain header, so the verifier reaches its claim checks.
 *   Each run sets every other rule so it passes (the token's own iss and aud, a clock inside its
 *   validity, a lifetime bound that cannot bind), leaving only the check under test to fail.
 *
 * The throwaway keys live in this function's memory only; the re-signed copy is never printed.
 * None of this says the signature is good: that needs the issuer's keys (inspect --jwks).
 */
import { createVerifier, VerifyError, type JSONWebKeySet, type VerifierOptions, type VerifyErrorCode } from '@latchkey/verify';
import { base64url, CompactSign, exportJWK, generateKeyPair, type CryptoKey } from 'jose';

export type CheckName = 'size' | 'header' | 'claims' | 'issuer' | 'audience' | 'time' | 'lifetime';

export interface CheckResult {
  check: CheckName;
  /** skipped: not asked for (issuer, audience), or an earlier check failed so the verifier never gets here. */
  result: 'pass' | 'fail' | 'skipped';
  /** The verifier's error code when it failed. */
  code?: VerifyErrorCode;
  detail: string;
}

export interface CheckOptions {
  /** The `iss` to expect; without it the issuer check is skipped. */
  issuer?: string | undefined;
  /** Accepted audiences; without them the audience check is skipped. */
  audiences?: readonly string[] | undefined;
  /** The time to judge expiry by, in ms. */
  now: number;
}

/** The largest token the verifier can be told to accept (its maxTokenBytes bound). */
const MAX_TOKEN_BYTES = 65536;
/** The loosest lifetime bound the verifier takes: 366 days. */
const LOOSEST_LIFETIME = 366 * 86400;
const PLACEHOLDER = 'urn:latchkey:inspect';
const ALGS = ['EdDSA', 'ES256', 'RS256'] as const;
type Alg = (typeof ALGS)[number];

interface Throwaway {
  privateKey: CryptoKey;
  jwks: JSONWebKeySet;
}

async function throwaway(alg: Alg, kid: string): Promise<Throwaway> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] } };
}

/** What the verifier says of `token` with these options: undefined when it accepts it. */
async function verdict(token: string, options: VerifierOptions): Promise<VerifyError | undefined> {
  try {
    await createVerifier({ cache: false, ...options }).verify(token);
    return undefined;
  } catch (err) {
    if (err instanceof VerifyError) return err;
    throw err;
  }
}

const say = (e: VerifyError): string => (e.detail ? `${e.description} (${e.detail})` : e.description);
const pass = (check: CheckName, detail: string): CheckResult => ({ check, result: 'pass', detail });
const fail = (check: CheckName, e: VerifyError): CheckResult => ({ check, result: 'fail', code: e.code, detail: say(e) });
const skip = (check: CheckName, detail: string): CheckResult => ({ check, result: 'skipped', detail });

/** The order the verifier checks claims in (jwt/claims.ts), by the codes each check fails with. */
const STAGE: Partial<Record<VerifyErrorCode, number>> = {
  missing_claim: 1,
  malformed: 1,
  wrong_issuer: 2,
  wrong_audience: 3,
  expired: 4,
  not_yet_valid: 4,
  lifetime_too_long: 5,
};
const STAGE_OF: Record<CheckName, number> = { size: 0, header: 0, claims: 1, issuer: 2, audience: 3, time: 4, lifetime: 5 };

const HEADER_CODES: readonly VerifyErrorCode[] = ['malformed', 'bad_header', 'bad_algorithm', 'wrong_type', 'unknown_key'];

/**
 * Run the verifier's checks one by one. `header` and `claims` are the token's as jose decoded
 * them (undefined when they do not decode); `payloadSegment` is the token's second segment.
 */
export async function verifierChecks(
  token: string,
  decoded: { header: Record<string, unknown> | undefined; claims: Record<string, unknown> | undefined; payloadSegment: string | undefined },
  opts: CheckOptions,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const { header, claims } = decoded;
  const bytes = Buffer.byteLength(token);

  // size and header: the token itself
  const kid = typeof header?.kid === 'string' ? header.kid : 'inspect';
  const alg: Alg = ALGS.find((a) => a === header?.alg) ?? 'EdDSA';
  let key: Throwaway;
  try {
    key = await throwaway(alg, kid);
    createVerifier({ issuer: PLACEHOLDER, audience: PLACEHOLDER, jwks: key.jwks });
  } catch {
    // a kid the verifier would never look up: the header check refuses it before any key is needed
    key = await throwaway(alg, 'inspect');
  }
  const base = { issuer: PLACEHOLDER, audience: PLACEHOLDER, jwks: key.jwks };
  const sized = await verdict(token, base);
  if (sized?.code === 'too_large') results.push(fail('size', sized));
  else results.push(pass('size', `${bytes} bytes`));
  if (bytes > MAX_TOKEN_BYTES) {
    results.push(skip('header', 'too large for the verifier to parse at all'));
  } else {
    const h = await verdict(token, { ...base, maxTokenBytes: MAX_TOKEN_BYTES });
    if (h && HEADER_CODES.includes(h.code)) results.push(fail('header', h));
    else results.push(pass('header', `alg ${String(header?.alg)}, typ ${String(header?.typ)}, kid ${String(header?.kid)} (signature not checked)`));
  }

  // the claims: the same payload bytes under a plain header and a key the verifier is given
  const claimChecks: CheckName[] = ['claims', 'issuer', 'audience', 'time', 'lifetime'];
  if (!claims || decoded.payloadSegment === undefined) {
    for (const c of claimChecks) results.push(skip(c, 'the payload does not decode to a JSON object'));
    return results;
  }
  const signer = await throwaway('EdDSA', 'inspect');
  const copy = await new CompactSign(base64url.decode(decoded.payloadSegment))
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'inspect' })
    .sign(signer.privateKey);
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  const tokenAud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.filter(str) : [];
  const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  // a moment the token is valid at, so the time checks pass in every run but the time run
  const validAt = Math.max(num(claims.iat) ?? 0, num(claims.nbf) ?? 0) * 1000 || opts.now;
  const loose: VerifierOptions = {
    issuer: str(claims.iss) ? claims.iss : PLACEHOLDER,
    audience: tokenAud.length ? tokenAud : PLACEHOLDER,
    jwks: signer.jwks,
    maxTokenBytes: MAX_TOKEN_BYTES,
    maxLifetimeSeconds: LOOSEST_LIFETIME,
    now: () => validAt,
  };
  // a run failing a check the verifier makes before the one under test cannot judge it
  const stage = (code: VerifyErrorCode): number => STAGE[code] ?? Infinity;
  const judge = async (check: CheckName, options: VerifierOptions, ok: string, why = ''): Promise<CheckResult> => {
    const e = await verdict(copy, options);
    if (!e || stage(e.code) > STAGE_OF[check]) return pass(check, ok);
    if (stage(e.code) === STAGE_OF[check]) return { ...fail(check, e), ...(why ? { detail: `${say(e)}: ${why}` } : {}) };
    return skip(check, `not reached: the verifier stops earlier (${e.code})`);
  };

  const claimsResult = await judge('claims', loose, 'every claim RFC 9068 requires, each of the right type');
  results.push(claimsResult);
  if (claimsResult.result !== 'pass') {
    for (const c of claimChecks.slice(1)) results.push(skip(c, 'not reached: the claims are incomplete or malformed'));
    return results;
  }
  results.push(
    opts.issuer === undefined
      ? skip('issuer', 'no --issuer given')
      : await judge('issuer', { ...loose, issuer: opts.issuer }, `iss is ${opts.issuer}`, `iss is ${JSON.stringify(claims.iss)}, expected ${opts.issuer}`),
  );
  results.push(
    opts.audiences === undefined || opts.audiences.length === 0
      ? skip('audience', 'no --audience given')
      : await judge(
          'audience',
          { ...loose, audience: opts.audiences },
          `aud includes ${opts.audiences.join(' or ')}`,
          `aud is ${JSON.stringify(claims.aud)}, expected ${opts.audiences.join(' or ')}`,
        ),
  );
  results.push(await judge('time', { ...loose, now: () => opts.now }, 'valid now (within the default clock tolerance)', 'judged now, with the default clock tolerance'));
  // the verifier's default bound: a service that sets maxLifetimeSeconds may differ
  const lifetime = num(claims.exp) !== undefined && num(claims.iat) !== undefined ? `exp - iat is ${num(claims.exp)! - num(claims.iat)!} s` : '';
  results.push(
    await judge('lifetime', { ...loose, maxLifetimeSeconds: undefined }, "exp - iat within the verifier's default bound", `${lifetime}, over the verifier's default bound`),
  );
  return results;
}
