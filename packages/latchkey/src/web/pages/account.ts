import { html, type SafeHtml } from '../html.js';
import { desktopIcon, phoneIcon } from '../assets/icons.js';
import { notice } from '../forms.js';
import { csrfField, layout, type Viewer } from '../layout.js';

/** One row of "Devices and sessions"; times in Unix seconds. */
export interface DeviceRow {
  handle: string;
  device: string;
  ip: string;
  createdAt: number;
  lastSeenAt: number;
  current: boolean;
}

export interface AccountView {
  viewer: Viewer;
  memberSince: number;
  sessions: DeviceRow[];
  notice?: string | undefined;
  /** Unix seconds, for "Active now" / "5 minutes ago". */
  now: number;
}

// the server cannot know the reader's time zone without script; UTC, said so, beats a silent guess
const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
const dateOnly = new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeZone: 'UTC' });

const iso = (t: number) => new Date(t * 1000).toISOString();
const absolute = (t: number) => `${dateTime.format(t * 1000)} UTC`;

function ago(t: number, now: number): string {
  const s = Math.max(0, now - t);
  if (s < 120) return 'Active now';
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'} ago`;
  if (s < 3600) return plural(Math.floor(s / 60), 'minute');
  if (s < 86400) return plural(Math.floor(s / 3600), 'hour');
  return absolute(t);
}

const MOBILE = /iPhone|iPad|Android|Mobile|Phone/i;

function row(r: DeviceRow, csrf: string, now: number): SafeHtml {
  // the current device's button is a plain sign-out: it ends this session and clears the cookie
  const action = r.current ? '/signout' : `/account/sessions/${encodeURIComponent(r.handle)}/signout`;
  return html`<li class="session${r.current && ' session-current'}">
<div class="session-icon">${MOBILE.test(r.device) ? phoneIcon : desktopIcon}</div>
<div class="session-body">
<p class="session-device">${r.device}${r.current && html` <span class="badge">This device</span>`}</p>
<dl class="session-meta">
<div><dt>IP</dt><dd>${r.ip}</dd></div>
<div><dt>Signed in</dt><dd><time datetime="${iso(r.createdAt)}">${absolute(r.createdAt)}</time></dd></div>
<div><dt>Last active</dt><dd><time datetime="${iso(r.lastSeenAt)}">${ago(r.lastSeenAt, now)}</time></dd></div>
</dl>
</div>
<form method="post" action="${action}">${csrfField(csrf)}<button class="btn btn-secondary btn-small" type="submit">Sign out<span class="vh"> ${
    r.current ? 'of this device' : `of ${r.device}, signed in ${absolute(r.createdAt)}`
  }</span></button></form>
</li>`;
}

export function accountPage(v: AccountView): string {
  const others = v.sessions.filter((s) => !s.current).length;
  const count = v.sessions.length;
  return layout({
    title: 'Your account',
    width: 'wide',
    viewer: v.viewer,
    body: html`<div class="stack">
${notice(v.notice)}
<section class="card summary" aria-labelledby="account-h">
<div>
<h1 id="account-h">Your account</h1>
<p>${v.viewer.email} · member since ${dateOnly.format(v.memberSince * 1000)}</p>
</div>
<a class="btn btn-secondary" href="/account/password">Change password</a>
</section>
<section class="card" aria-labelledby="devices-h">
<div class="card-head">
<h2 id="devices-h">Devices and sessions</h2>
<p class="lede">Signed in on ${count} ${count === 1 ? 'device' : 'devices'}. If you do not recognise one, sign it out and change your password.</p>
</div>
<ul class="sessions">
${v.sessions.map((s) => row(s, v.viewer.csrf, v.now))}
</ul>
${others > 0
  ? html`<div class="sessions-foot">
<p>Lost a device, or signed in on a shared computer?</p>
<form method="post" action="/account/sessions/signout-others">${csrfField(v.viewer.csrf)}<button class="btn btn-danger" type="submit">Sign out of all other devices</button></form>
</div>`
  : html`<div class="sessions-foot"><p>No other devices are signed in.</p></div>`}
</section>
</div>`,
  });
}
