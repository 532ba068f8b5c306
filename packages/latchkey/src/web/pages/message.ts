import { html } from '../html.js';
import { layout, type Viewer } from '../layout.js';

export interface MessageView {
  title: string;
  text: string;
  link: { href: string; label: string };
  viewer?: Viewer | undefined;
}

/** A page that only explains: a refused request, an error, a missing page. */
export function messagePage(v: MessageView): string {
  return layout({
    title: v.title,
    viewer: v.viewer,
    body: html`<div class="card">
<h1>${v.title}</h1>
<p class="lede">${v.text}</p>
<a class="btn btn-primary" href="${v.link.href}">${v.link.label}</a>
</div>`,
  });
}
