/** The page shell every account page shares: head, top bar, main, footer. */
import { favicon, stylesheet } from './assets.js';
import { markIcon } from './assets/icons.js';
import { html, type SafeHtml } from './html.js';

/** Who is signed in, for the top bar's sign-out button. */
export interface Viewer {
  email: string;
  /** The session-bound form token (see web/form-tokens.ts). */
  csrf: string;
}

export interface PageOptions {
  title: string;
  /** narrow: a single form; wide: the account page. */
  width?: 'narrow' | 'wide';
  viewer?: Viewer | undefined;
  body: SafeHtml;
}

export function layout({ title, width = 'narrow', viewer, body }: PageOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>${title} · latchkey</title>
<link rel="stylesheet" href="${stylesheet.path}">
<link rel="icon" type="image/svg+xml" href="${favicon.path}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
<div class="topbar-inner">
<a class="brand" href="/">${markIcon}<span>latchkey</span></a>
${viewer &&
  html`<nav class="usernav" aria-label="Account">
<span class="who">${viewer.email}</span>
<form method="post" action="/signout">${csrfField(viewer.csrf)}<button class="btn btn-secondary btn-small" type="submit">Sign out</button></form>
</nav>`}
</div>
</header>
<main id="main" class="page-${width}">
${body}
</main>
<footer class="footer">Secured by latchkey</footer>
</body>
</html>
`.value;
}

/** The hidden token every POST form carries. */
export const csrfField = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;
