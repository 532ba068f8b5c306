/**
 * `latchkey inspect [token|-]`: what a token is and why a service would refuse it. Offline
 * unless --jwks names a URL. Decodes with jose, checks with @latchkey/verify (token-checks.ts),
 * and never decodes or prints a latchkey secret (refresh token, session cookie): those are
 * recognised by their shape only.
 */
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet, VerifyError, VerifyErrorCode } from '@latchkey/verify';
import { looksLikeDeviceToken } from '../accounts/known-devices.js';
import { looksLikeRefreshToken } from '../refresh/service.js';
import { handleOf, hashSecret, looksLikeSecret } from '../sessions/ids.js';
import { PRESESSION_COOKIE as FORM_COOKIE } from '../web/form-tokens.js';
import { EXIT, parse, printJson, showHelp, takeOperand, usageError, type CommandSpec } from './command.js';
import type { CheckResult } from './token-checks.js';

export const inspectCommand: CommandSpec = {
  name: 'inspect',
  summary: 'decode a token and say which checks it would fail; recognise latchkey secrets without decoding them',
  usage: ['latchkey inspect [--issuer URL] [--audience AUD]... [--jwks URL|FILE] [--json] [<token> | -]'],
  about: `Reads the token from the argument, or from stdin with - or with no argument (prefer stdin:
a command line is visible to every local user). A leading "Bearer " is ignored.

An access token (JWT) is decoded (header, claims, times in UTC and relative, size, lifetime), then
run through @latchkey/verify's checks one by one with its defaults: size, header, claims, issuer
(with --issuer), audience (with --audience), time, lifetime. The signature is not checked offline.
Nothing is sent anywhere, unless --jwks is a URL: with --jwks the token is verified in full by
@latchkey/verify against that key set (a URL, such as <issuer>/.well-known/jwks.json, or a JSON
file), and its error code is printed.

A latchkey refresh token or session cookie (or "name=value" as in a Cookie header) is recognised
by its shape and reported as the secret it is: nothing in it can be decoded, and it is never
printed. For a session cookie the public session handle is shown, to end it with
latchkey sessions revoke <handle>.`,
  options: {
    issuer: { type: 'string', arg: 'URL', help: 'the iss to expect' },
    audience: { type: 'string', arg: 'AUD', multiple: true, help: 'an accepted aud' },
    jwks: { type: 'string', arg: 'URL|FILE', help: 'verify the signature with this key set (a URL is fetched)' },
    json: { type: 'boolean', help: 'JSON for scripts' },
  },
  env: [],
  run: inspect,
};

/** Anything longer is not a token of ours, and is not read further. */
const MAX_INPUT = 1 << 20;

async function readStdin(): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_INPUT) return undefined;
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const UNITS = [
  ['d', 86400],
  ['h', 3600],
  ['min', 60],
  ['s', 1],
] as const;

/** "4 min 12 s", "3 h", "2 d 5 h": the largest unit, and the next one down when it is not zero. */
function duration(totalSeconds: number): string {
  const s = Math.round(Math.abs(totalSeconds));
  const i = UNITS.findIndex(([, size]) => s >= size);
  if (i < 0) return '0 s';
  const [unit, size] = UNITS[i]!;
  const first = `${Math.floor(s / size)} ${unit}`;
  const next = UNITS[i + 1];
  if (!next) return first;
  const rest = Math.floor((s % size) / next[1]);
  return rest > 0 ? `${first} ${rest} ${next[0]}` : first;
}

interface TimeView {
  /** Unix seconds, as in the token. */
  at: number;
  utc: string;
  /** Seconds from now: negative in the past. */
  fromNow: number;
  relative: string;
}

function timeView(name: string, value: unknown, now: number): TimeView | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  const utc = Math.abs(value) <= 8.64e12 ? new Date(value * 1000).toISOString().replace('.000Z', 'Z') : 'out of range';
  const fromNow = Math.round(value - now / 1000);
  const span = duration(fromNow);
  const future = fromNow > 0;
  let relative: string;
  if (name === 'exp') relative = future ? `expires in ${span}` : `expired ${span} ago`;
  else if (name === 'nbf') relative = future ? `valid in ${span}` : `valid since ${span} ago`;
  else relative = future ? `${span} in the future` : `${span} ago`;
  return { at: value, utc, fromNow, relative };
}

type Verification =
  | { jwks: string; result: 'accepted'; issuerChecked: boolean; audienceChecked: boolean }
  | { jwks: string; result: 'refused'; code: VerifyErrorCode; description: string; detail?: string; issuerChecked: boolean; audienceChecked: boolean };

type Report =
  | {
      kind: 'jwt';
      bytes: number;
      header: Record<string, unknown> | null;
      claims: Record<string, unknown> | null;
      /** Why header or claims did not decode. */
      decodeErrors: string[];
      times: { iat?: TimeView; nbf?: TimeView; exp?: TimeView };
      lifetimeSeconds: number | null;
      checks: CheckResult[];
      /** The verifier's codes of the checks that failed (and of the verification, when refused). */
      failed: VerifyErrorCode[];
      verification: Verification | null;
    }
  | { kind: 'refresh_token'; secret: true; bytes: number; note: string }
  | { kind: 'session_cookie'; secret: true; bytes: number; cookieName: string | null; sessionHandle: string; note: string }
  | { kind: 'form_cookie' | 'device_cookie'; secret: true; bytes: number; cookieName: string | null; note: string }
  | { kind: 'unknown'; bytes: number; note: string };

/** Three base64url-looking segments: only then is it handed to the JWT decoder. */
const looksLikeJws = (s: string): boolean => s.split('.').length === 3;

/** name=value as in a Cookie header: the value only, and the name when one is given. */
function cookieParts(input: string): { name: string | null; value: string } {
  const eq = input.indexOf('=');
  // base64url has no '=': a value with one is "name=value"
  if (eq <= 0) return { name: null, value: input };
  return { name: input.slice(0, eq).trim(), value: input.slice(eq + 1).trim() };
}

async function inspect(args: string[]): Promise<number> {
  const spec = inspectCommand;
  // a refresh token or cookie value may begin with '-'
  const operand = takeOperand(spec, args);
  const { values, positionals, help } = parse(spec, args);
  if (help) return showHelp(spec);
  const operands = operand === undefined ? positionals : [operand, ...positionals];
  if (operands.length > 1) return usageError(spec, 'one token at a time');
  let input: string | undefined;
  if (operands[0] === undefined || operands[0] === '-') {
    if (operands[0] === undefined && process.stdin.isTTY) return usageError(spec, 'give a token, or - to read it from stdin');
    input = await readStdin();
    if (input === undefined) return usageError(spec, `the input is over ${MAX_INPUT} bytes: not a token`);
  } else {
    input = operands[0];
  }
  let token = input.trim();
  if (token.slice(0, 7).toLowerCase() === 'bearer ') token = token.slice(7).trim();
  if (token === '') return usageError(spec, 'the input is empty');

  const json = values.json === true;
  const audiences = values.audience as string[] | undefined;
  const report = await describe(token, {
    issuer: values.issuer as string | undefined,
    audiences,
    jwks: values.jwks as string | undefined,
  });
  if (typeof report === 'string') {
    process.stderr.write(`latchkey inspect: ${report}\n`);
    return EXIT.failed;
  }
  if (json) printJson(report);
  else process.stdout.write(text(report));
  if (report.kind === 'unknown') return EXIT.failed;
  if (report.kind === 'jwt' && (report.failed.length > 0 || report.header === null || report.claims === null)) return EXIT.failed;
  return EXIT.ok;
}

/** The report, or a sentence saying why --jwks could not be used. */
async function describe(token: string, opts: { issuer?: string | undefined; audiences?: string[] | undefined; jwks?: string | undefined }): Promise<Report | string> {
  const bytes = Buffer.byteLength(token);
  if (!looksLikeJws(token)) {
    if (looksLikeRefreshToken(token)) {
      return {
        kind: 'refresh_token',
        secret: true,
        bytes,
        note: 'a latchkey refresh token: a secret that gets new access tokens until its family ends. It is random bytes: nothing in it can be decoded. Keep it out of logs and tickets; to end it, revoke it at POST /oauth/revoke or end its session.',
      };
    }
    const { name, value } = cookieParts(token);
    if (looksLikeDeviceToken(value)) {
      return {
        kind: 'device_cookie',
        secret: true,
        bytes: Buffer.byteLength(value),
        cookieName: name,
        note: 'a latchkey known-device cookie: proof that this browser signed in to an account before, which exempts it from the per-account login backoff. A secret bound to one account; nothing in it names the account or can be decoded.',
      };
    }
    if (looksLikeSecret(value) && name === FORM_COOKIE) {
      return {
        kind: 'form_cookie',
        secret: true,
        bytes: Buffer.byteLength(value),
        cookieName: name,
        note: "the sign-in and sign-up forms' CSRF cookie: random bytes, not a session; nothing in it can be decoded.",
      };
    }
    if (looksLikeSecret(value)) {
      return {
        kind: 'session_cookie',
        secret: true,
        bytes: Buffer.byteLength(value),
        cookieName: name,
        // the handle is public (a prefix of the hash the store keeps): showing it reveals nothing of the cookie
        sessionHandle: handleOf(hashSecret(value)),
        note:
          `a latchkey session cookie value${name === null ? ` (or another 256-bit random value of the same shape, such as the ${FORM_COOKIE} cookie)` : ''}: ` +
          `a secret that signs its holder in until the session ends. It is random bytes: nothing in it can be decoded. ` +
          `Keep it out of logs and tickets; to end the session: latchkey sessions revoke -- ${handleOf(hashSecret(value))}`,
      };
    }
    return { kind: 'unknown', bytes, note: 'not a JWT, nor a latchkey refresh token or session cookie; not shown, in case it is a secret' };
  }

  // loaded for JWTs only
  const { decodeJwt, decodeProtectedHeader } = await import('jose');
  const { verifierChecks } = await import('./token-checks.js');
  const now = Date.now();
  const decodeErrors: string[] = [];
  let header: Record<string, unknown> | undefined;
  let claims: Record<string, unknown> | undefined;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
  } catch (err) {
    decodeErrors.push(`header: ${(err as Error).message}`);
  }
  try {
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch (err) {
    decodeErrors.push(`claims: ${(err as Error).message}`);
  }
  const times: { iat?: TimeView; nbf?: TimeView; exp?: TimeView } = {};
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    const t = timeView(name, claims?.[name], now);
    if (t) times[name] = t;
  }
  const lifetimeSeconds = times.exp && times.iat ? times.exp.at - times.iat.at : null;
  const checks = await verifierChecks(token, { header, claims, payloadSegment: token.split('.')[1] }, { issuer: opts.issuer, audiences: opts.audiences, now });
  const failed = checks.filter((c) => c.result === 'fail').map((c) => c.code!);

  let verification: Verification | null = null;
  if (opts.jwks !== undefined) {
    const v = await verify(token, claims, opts as { jwks: string; issuer?: string; audiences?: string[] });
    if (typeof v === 'string') return v;
    verification = v;
    if (v.result === 'refused' && !failed.includes(v.code)) failed.push(v.code);
  }
  return {
    kind: 'jwt',
    bytes,
    header: header ?? null,
    claims: claims ?? null,
    decodeErrors,
    times,
    lifetimeSeconds,
    checks,
    failed,
    verification,
  };
}

/** The full verification by @latchkey/verify, or why it could not run. */
async function verify(
  token: string,
  claims: Record<string, unknown> | undefined,
  opts: { jwks: string; issuer?: string | undefined; audiences?: string[] | undefined },
): Promise<Verification | string> {
  const { createVerifier, VerifyError } = await import('@latchkey/verify');
  let source: { jwksUri: string } | { jwks: JSONWebKeySet };
  if (opts.jwks.startsWith('https://') || opts.jwks.startsWith('http://')) {
    source = { jwksUri: opts.jwks };
  } else {
    let text: string;
    try {
      text = readFileSync(opts.jwks, 'utf8');
    } catch (err) {
      return `cannot read --jwks ${opts.jwks}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    }
    try {
      source = { jwks: JSON.parse(text) as JSONWebKeySet };
    } catch {
      return `--jwks ${opts.jwks} is not JSON`;
    }
  }
  // without --issuer / --audience the token's own are taken, so the other checks still run; the report says so
  const iss = opts.issuer ?? (typeof claims?.iss === 'string' && claims.iss !== '' ? claims.iss : undefined);
  const tokenAud = typeof claims?.aud === 'string' ? [claims.aud] : Array.isArray(claims?.aud) ? (claims.aud as unknown[]).filter((a): a is string => typeof a === 'string' && a !== '') : [];
  const aud = opts.audiences?.length ? opts.audiences : tokenAud;
  const checked = { issuerChecked: opts.issuer !== undefined, audienceChecked: Boolean(opts.audiences?.length) };
  const refused = (e: VerifyError): Verification => ({
    jwks: opts.jwks,
    result: 'refused',
    code: e.code,
    description: e.description,
    ...(e.detail ? { detail: e.detail } : {}),
    ...checked,
  });
  if (iss === undefined) return refused(new VerifyError('missing_claim', 'iss (and no --issuer)'));
  if (aud.length === 0) return refused(new VerifyError('missing_claim', 'aud (and no --audience)'));
  let verifier: ReturnType<typeof createVerifier>;
  try {
    verifier = createVerifier({ issuer: iss, audience: aud, ...source, cache: false });
  } catch (err) {
    // createVerifier's TypeError names the option (a JWKS without a usable key, a bad URL)
    return `cannot verify with --jwks ${opts.jwks}: ${(err as Error).message}`;
  }
  try {
    await verifier.verify(token);
    return { jwks: opts.jwks, result: 'accepted', ...checked };
  } catch (err) {
    if (err instanceof VerifyError) return refused(err);
    throw err;
  }
}

// ---- text ----------------------------------------------------------------------------------

function rows(pairs: [string, string][], indent = '  '): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${indent}${k.padEnd(width)}${v}\n`).join('');
}

const shown = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

function text(r: Report): string {
  if (r.kind !== 'jwt') {
    const what = r.kind === 'unknown' ? 'unrecognised' : r.kind.replace('_', ' ');
    return `${what} (${r.bytes} bytes)\n${r.note}\n${r.kind === 'session_cookie' ? `session handle: ${r.sessionHandle}\n` : ''}`;
  }
  let out = `JWT, ${r.bytes} bytes\n`;
  for (const e of r.decodeErrors) out += `does not decode: ${e}\n`;
  if (r.header) out += `header\n${rows(Object.entries(r.header).map(([k, v]) => [k, shown(v)]))}`;
  if (r.claims) {
    out += `claims\n${rows(
      Object.entries(r.claims).map(([k, v]) => {
        const t = r.times[k as 'iat' | 'nbf' | 'exp'];
        return [k, t ? `${t.utc} (${t.relative})` : shown(v)];
      }),
    )}`;
  }
  if (r.lifetimeSeconds !== null) out += `lifetime  ${duration(r.lifetimeSeconds)} (exp - iat = ${r.lifetimeSeconds} s)\n`;
  out += "checks (@latchkey/verify's, one at a time, with its defaults)\n";
  const mark = { pass: 'ok', fail: 'FAIL', skipped: '--' } as const;
  out += rows(r.checks.map((c) => [`${mark[c.result].padEnd(4)}  ${c.check}`, c.code ? `${c.code}: ${c.detail}` : c.detail]));
  const v = r.verification;
  if (!v) out += 'signature: not checked (offline; --jwks URL|FILE verifies it)\n';
  else {
    const caveat = [v.issuerChecked ? '' : 'iss taken from the token', v.audienceChecked ? '' : 'aud taken from the token'].filter(Boolean).join(', ');
    out +=
      v.result === 'accepted'
        ? `verification with ${v.jwks}: accepted${caveat ? ` (${caveat})` : ''}\n`
        : `verification with ${v.jwks}: refused, ${v.code}: ${v.description}${v.detail ? ` (${v.detail})` : ''}${caveat ? ` (${caveat})` : ''}\n`;
  }
  return out;
}
