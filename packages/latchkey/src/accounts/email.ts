import { domainToASCII } from 'node:url';
import { LatchkeyError } from '../errors.js';

/**
 * Normalise an email for use as a unique login name: trim, NFC, lower-case,
 * IDN domain to ASCII. Linear checks only (no backtracking regex on user input).
 */
export function normaliseEmail(input: string): string {
  const email = input.trim().normalize('NFC');
  const at = email.lastIndexOf('@');
  if (email.length > 254 || at < 1 || at === email.length - 1) throw invalid();
  const local = email.slice(0, at);
  if (local.length > 64) throw invalid();
  for (const ch of email) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c === 0x7f || ch === '<' || ch === '>' || ch === ',' || ch === ';' || ch === '"' || ch === '\\') {
      throw invalid();
    }
  }
  if (local.includes('@')) throw invalid();
  const domain = domainToASCII(email.slice(at + 1).toLowerCase());
  if (!domain || !domain.includes('.') || domain.startsWith('.') || domain.endsWith('.') || domain.includes('..')) {
    throw invalid();
  }
  return `${local.toLowerCase()}@${domain}`;
}

const invalid = () =>
  new LatchkeyError('invalid_email', 'not a valid email address', { fields: { email: 'Enter a valid email address.' } });
