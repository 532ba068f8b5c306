/** Inline SVG icons. Markup, not script: inline SVG needs no CSP exception. */
import { html } from '../html.js';

/** The latchkey mark: a keyhole. Also served as the favicon (web/assets.ts). */
export const MARK_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#3b4fd8"/>' +
  '<circle cx="16" cy="13" r="5" fill="#fff"/><path d="M13.4 16h5.2l1.6 9h-8.4z" fill="#fff"/></svg>';

export const markIcon = html`<svg aria-hidden="true" focusable="false" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#3b4fd8"/><circle cx="16" cy="13" r="5" fill="#fff"/><path d="M13.4 16h5.2l1.6 9h-8.4z" fill="#fff"/></svg>`;

export const desktopIcon = html`<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/></svg>`;

export const phoneIcon = html`<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><rect x="6.5" y="2.5" width="11" height="19" rx="2.5"/><path d="M11 18.5h2"/></svg>`;
