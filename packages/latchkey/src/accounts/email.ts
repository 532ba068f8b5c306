/**
 * Emails as login names: one account per address a person can tell apart.
 *
 * The policy (documented in the README's security defaults):
 * 1. Refuse unpaired surrogates (they would be stored as invalid UTF-8) and,
 *    anywhere in the input, invisible, control and format characters and
 *    separators: Unicode categories C* (Cc, Cf, Cs, Co, Cn) and Z* (spaces, U+2028,
 *    U+2029), and Default_Ignorable_Code_Point (zero-width and bidi controls,
 *    soft hyphen, Hangul fillers...). Spaces and tabs around the address are trimmed.
 * 2. Fold: NFKC, lower case, NFKC again (full-width and other compatibility
 *    forms become their plain form; case does not make a second account).
 * 3. Each character must then be printable ASCII or a letter, combining mark or
 *    decimal digit (the PRECIS IdentifierClass repertoire, RFC 8264 §9.1); an
 *    Inherited-script mark NFKC could not compose into a letter is refused.
 * 4. Each letter must be of a script recommended for identifiers (UTS #31
 *    Table 7), and the local part and each domain label must each be
 *    single-script or one of the CJK combinations of UTS #39's "Highly
 *    Restrictive" level (Latin+Han+Hiragana+Katakana, Latin+Han+Bopomofo,
 *    Latin+Han+Hangul): a Latin name with a Cyrillic `а` in it is refused.
 * 5. The domain goes through IDNA (UTS #46, node's domainToASCII) and must then
 *    be a host name: at least two labels of 1..63 letters, digits and inner
 *    hyphens, at most 253 characters, not an all-numeric top-level label.
 *
 * 6. A local part or label written only with the Cyrillic letters that look
 *    like Latin ones (the set Chromium's IDN spoof checker uses, e.g. `аррӏе`)
 *    is refused: it would render as a Latin address. As in Chromium, not
 *    under a Cyrillic top-level domain (.рф, .бг...), where Cyrillic is expected.
 *
 * Other whole-script look-alikes (Greek, or Cyrillic beyond that set) are not
 * caught: that needs Unicode's confusables data (UTS #39 skeletons), which
 * latchkey does not ship yet.
 *
 * No regex here runs over the input with a quantifier: each one tests a single
 * code point, or is a single character class (linear, cannot backtrack).
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { LatchkeyError } from '../errors.js';

/** Never part of an identity: controls, format characters, separators, default-ignorables. */
const INVISIBLE = /[\p{C}\p{Z}\p{Default_Ignorable_Code_Point}]/u;
const LETTER_MARK_DIGIT = /^[\p{L}\p{Mn}\p{Mc}\p{Nd}]$/u;
const INHERITED = /^\p{Script=Inherited}$/u;
const COMMON = /^\p{Script=Common}$/u;
const CYRILLIC = /^\p{Script=Cyrillic}$/u;
/** UTS #31 Table 7, Recommended Scripts. */
const SCRIPTS: readonly (readonly [string, RegExp])[] = [
  'Latin', 'Greek', 'Cyrillic', 'Armenian', 'Hebrew', 'Arabic', 'Thaana', 'Devanagari', 'Bengali', 'Gurmukhi',
  'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala', 'Thai', 'Lao', 'Tibetan', 'Myanmar',
  'Georgian', 'Hangul', 'Ethiopic', 'Khmer', 'Han', 'Hiragana', 'Katakana', 'Bopomofo',
].map((name) => [name, new RegExp(`^\\p{Script=${name}}$`, 'u')] as const);
/** UTS #39 §5.2 Highly Restrictive: the script mixes allowed besides a single script. */
const ALLOWED_MIXES: readonly ReadonlySet<string>[] = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];
/** Cyrillic letters that render like Latin ones (Chromium's cyrillic_letters_latin_alike_, lower case). */
const CYRILLIC_LATIN_ALIKE = new Set([...'асԁеһіјӏорԛѕԝхуъьҽпгѵѡ']);
/** ASCII that may not appear in a login name (address syntax, quoting, and markup). */
const ASCII_REFUSED = new Set(['<', '>', ',', ';', '"', '\\']);

const MESSAGES = {
  invalid: 'Enter a valid email address.',
  invisible: 'Remove spaces and invisible, control or broken characters from the email address.',
  character: 'The email address contains a character that is not allowed (use letters, digits and ordinary punctuation).',
  mixed: 'Do not mix alphabets (such as Latin and Cyrillic) before the @ or within one part of the domain.',
  script: 'The email address uses a writing system that is not accepted in sign-in names.',
  lookalike: 'The email address is written in Cyrillic letters that look like Latin ones; type it in Latin letters.',
  domain: 'The part after @ is not a valid domain name.',
};

/**
 * The normal form stored and looked up (see the policy above), or
 * LatchkeyError('invalid_email') with a field message a person can act on.
 */
export function normaliseEmail(input: string): string {
  const raw = trimAsciiSpace(input);
  if (hasLoneSurrogate(raw) || INVISIBLE.test(raw)) throw invalid(MESSAGES.invisible);
  const email = raw.normalize('NFKC').toLowerCase().normalize('NFKC');
  // compatibility mappings can produce a space (U+00A8 DIAERESIS is a space and a combining mark)
  if (INVISIBLE.test(email)) throw invalid(MESSAGES.invisible);
  for (const ch of email) {
    const c = ch.codePointAt(0)!;
    const ok = c < 0x80 ? c > 0x20 && c < 0x7f && !ASCII_REFUSED.has(ch) : LETTER_MARK_DIGIT.test(ch) && !INHERITED.test(ch);
    if (!ok) throw invalid(MESSAGES.character);
  }
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) throw invalid(MESSAGES.invalid);
  const local = email.slice(0, at);
  // RFC 5321 §4.5.3.1.1 counts octets (UTF-8 under RFC 6531)
  if (local.includes('@') || Buffer.byteLength(local) > 64) throw invalid(MESSAGES.invalid);
  const domain = hostname(email.slice(at + 1));
  checkScripts(local, cyrillicTld(domain));
  const result = `${local}@${domain}`;
  if (Buffer.byteLength(result) > 254) throw invalid(MESSAGES.invalid);
  return result;
}

/**
 * The normal form of earlier versions (trim, NFC, lower case, IDNA domain),
 * used only to find accounts created before the current policy: their stored
 * address is not rewritten, so they keep signing in. Undefined if it never was valid.
 */
export function legacyEmailForm(input: string): string | undefined {
  const email = input.trim().normalize('NFC');
  const at = email.lastIndexOf('@');
  if (email.length > 254 || at < 1 || at === email.length - 1) return undefined;
  const local = email.slice(0, at);
  if (local.length > 64 || local.includes('@')) return undefined;
  for (const ch of email) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c === 0x7f || ASCII_REFUSED.has(ch)) return undefined;
  }
  const domain = domainToASCII(email.slice(at + 1).toLowerCase());
  if (!domain || !domain.includes('.') || domain.startsWith('.') || domain.endsWith('.') || domain.includes('..')) return undefined;
  return `${local.toLowerCase()}@${domain}`;
}

/** IDNA to ASCII, then a strict host name check, and the script rule on each label's Unicode form. */
function hostname(domain: string): string {
  const ascii = domainToASCII(domain);
  if (!ascii || ascii.length > 253) throw invalid(MESSAGES.domain);
  const labels = ascii.split('.');
  if (labels.length < 2) throw invalid(MESSAGES.domain);
  for (const label of labels) {
    if (label.length < 1 || label.length > 63 || label.startsWith('-') || label.endsWith('-')) throw invalid(MESSAGES.domain);
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      const ldh = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
      if (!ldh) throw invalid(MESSAGES.domain);
    }
  }
  // RFC 3696 §2: a top-level label is never all-numeric (that would be an IPv4 address)
  if ([...labels.at(-1)!].every((ch) => ch >= '0' && ch <= '9')) throw invalid(MESSAGES.domain);
  for (const label of domainToUnicode(ascii).split('.')) checkScripts(label, cyrillicTld(ascii));
  return ascii;
}

/** Whether the top-level label of an IDNA-ASCII domain is written in Cyrillic. */
function cyrillicTld(ascii: string): boolean {
  const tld = domainToUnicode(ascii.slice(ascii.lastIndexOf('.') + 1));
  return [...tld].some((ch) => CYRILLIC.test(ch));
}

/**
 * Every letter of `part` must be of one recommended script, or of an allowed
 * CJK mix; Common and Inherited characters (digits, punctuation) do not count.
 * A part whose letters are all Latin look-alike Cyrillic is refused too.
 */
function checkScripts(part: string, cyrillicExpected: boolean): void {
  const seen = new Set<string>();
  let lookalikesOnly = true;
  for (const ch of part) {
    if (ch.charCodeAt(0) < 0x80 && !isAsciiLetter(ch)) continue;
    if (COMMON.test(ch) || INHERITED.test(ch)) continue;
    const script = SCRIPTS.find(([, re]) => re.test(ch))?.[0];
    if (!script) throw invalid(MESSAGES.script);
    seen.add(script);
    if (!CYRILLIC_LATIN_ALIKE.has(ch)) lookalikesOnly = false;
  }
  if (seen.size > 1 && !ALLOWED_MIXES.some((mix) => [...seen].every((s) => mix.has(s)))) throw invalid(MESSAGES.mixed);
  if (seen.size === 1 && seen.has('Cyrillic') && lookalikesOnly && !cyrillicExpected) throw invalid(MESSAGES.lookalike);
}

const isAsciiLetter = (ch: string): boolean => (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');

function trimAsciiSpace(s: string): string {
  const space = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  let start = 0;
  let end = s.length;
  while (start < end && space(s.charCodeAt(start))) start++;
  while (end > start && space(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/** An unpaired UTF-16 surrogate cannot be encoded as UTF-8 (it would be stored as U+FFFD or invalid bytes). */
function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return true;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

const invalid = (message: string) => new LatchkeyError('invalid_email', 'not a valid email address', { fields: { email: message } });
