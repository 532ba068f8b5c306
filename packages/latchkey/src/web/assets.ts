/**
 * Static assets of the account pages, held in memory and served from
 * content-hashed URLs: a new build gets new URLs, so browsers may cache each
 * one forever (immutable) and never see a stale stylesheet.
 */
import { createHash } from 'node:crypto';
import { MARK_SVG } from './assets/icons.js';
import { styles } from './assets/styles.js';

export interface Asset {
  path: string;
  type: string;
  body: Buffer;
  etag: string;
}

function asset(name: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 16);
  return { path: `/assets/${name}.${hash}.${ext}`, type, body, etag: `"${hash}"` };
}

export const stylesheet = asset('latchkey', 'css', 'text/css; charset=utf-8', styles);
export const favicon = asset('icon', 'svg', 'image/svg+xml', MARK_SVG);
export const assets: readonly Asset[] = [stylesheet, favicon];
