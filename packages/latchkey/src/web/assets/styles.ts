/**
 * The account pages' one stylesheet. A TS string module rather than a .css
 * file so `tsc` ships it in dist/ with no copy step and `latchkey serve` runs
 * the same from src/ (tsx) and dist/. Served from a content-hashed URL (see
 * web/assets.ts); the CSP allows styles from 'self' only, so no inline style
 * attributes anywhere in the markup.
 */
export const styles = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f4f5f7;
  --surface: #ffffff;
  --text: #1b1f24;
  --muted: #57606a;
  --border: #d8dee4;
  --accent: #3b4fd8;
  --accent-hover: #2f40b5;
  --accent-text: #ffffff;
  --accent-soft: #eef0fd;
  --danger: #b42318;
  --danger-soft: #fef3f2;
  --danger-border: #f4c7c3;
  --ok: #146c43;
  --ok-soft: #ecfdf3;
  --ok-border: #b7e4c7;
  --focus: #3b4fd8;
  --radius: 12px;
  --shadow: 0 1px 2px rgb(16 24 40 / 6%), 0 1px 3px rgb(16 24 40 / 10%);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "Liberation Sans", Arial, sans-serif;
  font-size: 100%;
  line-height: 1.5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216;
    --surface: #181c22;
    --text: #e6e9ee;
    --muted: #a0a8b4;
    --border: #2e3540;
    --accent: #8d9bff;
    --accent-hover: #a9b3ff;
    --accent-text: #0f1216;
    --accent-soft: #23284a;
    --danger: #ff8a80;
    --danger-soft: #3a1d1b;
    --danger-border: #6b2d28;
    --ok: #7ad6a3;
    --ok-soft: #15301f;
    --ok-border: #2c5a3d;
    --focus: #a9b3ff;
    --shadow: none;
  }
}
*, *::before, *::after { box-sizing: border-box; }
/* author display rules would otherwise beat the UA's [hidden] rule */
[hidden] { display: none !important; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  min-height: 100vh;
  display: flex;
  flex-direction: column;
  background: var(--bg);
  color: var(--text);
}
a { color: var(--accent); text-underline-offset: 0.15em; }
a:hover { color: var(--accent-hover); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
h1, h2 { line-height: 1.25; margin: 0 0 0.25rem; }
h1 { font-size: 1.5rem; font-weight: 650; }
h2 { font-size: 1.125rem; font-weight: 650; }
p { margin: 0 0 1rem; }

.vh {
  position: absolute !important;
  width: 1px; height: 1px;
  padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%);
  white-space: nowrap; border: 0;
}
.skip {
  position: absolute; left: 0.5rem; top: -3rem;
  background: var(--surface); color: var(--accent);
  padding: 0.5rem 0.75rem; border-radius: 8px; z-index: 10;
}
.skip:focus { top: 0.5rem; }

/* top bar */
.topbar { background: var(--surface); border-bottom: 1px solid var(--border); }
.topbar-inner {
  max-width: 52rem; margin: 0 auto; padding: 0.75rem 1.25rem;
  display: flex; align-items: center; justify-content: space-between; gap: 1rem;
}
.brand {
  display: inline-flex; align-items: center; gap: 0.5rem;
  color: var(--text); text-decoration: none; font-weight: 700; font-size: 1.0625rem; letter-spacing: -0.01em;
}
.brand:hover { color: var(--text); }
.brand svg { width: 1.75rem; height: 1.75rem; flex: none; }
.usernav { display: flex; align-items: center; gap: 0.75rem; min-width: 0; font-size: 0.9375rem; }
.usernav .who { color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
.usernav form { margin: 0; flex: none; }

/* page */
main { flex: 1; width: 100%; margin: 0 auto; padding: 2rem 1.25rem 3rem; }
.page-narrow { max-width: 27rem; }
.page-wide { max-width: 52rem; }
.stack > * + * { margin-top: 1.5rem; }
.footer { text-align: center; color: var(--muted); font-size: 0.8125rem; padding: 1.5rem 1rem 2rem; }

.card {
  background: var(--surface);
  border: 1px solid var(--border);
  border-radius: var(--radius);
  box-shadow: var(--shadow);
  padding: 1.75rem;
}
.card-head { margin-bottom: 1.25rem; }
.lede { color: var(--muted); margin-bottom: 1.5rem; }
.card-head .lede { margin-bottom: 0; }
.alt { margin: 1.5rem 0 0; text-align: center; color: var(--muted); font-size: 0.9375rem; }

/* alerts */
.alert {
  border: 1px solid; border-radius: 8px;
  padding: 0.75rem 1rem; margin: 0 0 1.25rem; font-size: 0.9375rem;
}
.alert-error { background: var(--danger-soft); border-color: var(--danger-border); color: var(--danger); }
.alert-ok { background: var(--ok-soft); border-color: var(--ok-border); color: var(--ok); }
.alert-info { background: var(--accent-soft); border-color: transparent; color: var(--text); }
.alert p { margin: 0; }

/* forms */
.field { margin-bottom: 1.125rem; }
.field label { display: block; font-weight: 600; font-size: 0.9375rem; margin-bottom: 0.375rem; }
.hint { color: var(--muted); font-size: 0.875rem; margin: -0.125rem 0 0.5rem; }
.field-error { color: var(--danger); font-size: 0.875rem; font-weight: 600; margin: -0.125rem 0 0.5rem; }
input[type="email"], input[type="password"], input[type="text"] {
  display: block; width: 100%;
  font: inherit; font-size: 1rem; color: var(--text);
  background: var(--surface);
  border: 1px solid #8c959f; border-radius: 8px;
  padding: 0.625rem 0.75rem; min-height: 2.75rem;
}
input:focus-visible { outline: 3px solid var(--focus); outline-offset: 1px; border-color: var(--focus); }
input[aria-invalid="true"] { border-color: var(--danger); border-width: 2px; }
.actions { display: flex; flex-wrap: wrap; align-items: center; gap: 0.75rem 1rem; margin-top: 1.5rem; }

/* buttons */
.btn {
  display: inline-flex; align-items: center; justify-content: center; gap: 0.375rem;
  font: inherit; font-weight: 600; font-size: 0.9375rem; line-height: 1.25;
  min-height: 2.75rem; padding: 0.625rem 1.125rem;
  border-radius: 8px; border: 1px solid transparent;
  cursor: pointer; text-decoration: none;
}
.btn-primary { background: var(--accent); color: var(--accent-text); }
.btn-primary:hover { background: var(--accent-hover); color: var(--accent-text); }
.btn-block { width: 100%; }
.btn-secondary { background: var(--surface); color: var(--text); border-color: var(--border); }
.btn-secondary:hover { background: var(--bg); color: var(--text); }
.btn-danger { background: var(--surface); color: var(--danger); border-color: var(--danger-border); }
.btn-danger:hover { background: var(--danger-soft); }
.btn-small { min-height: 2.25rem; padding: 0.375rem 0.875rem; font-size: 0.875rem; }
.btn-link {
  background: none; border: 0; padding: 0.25rem 0; min-height: 0;
  color: var(--accent); font: inherit; font-weight: 600; cursor: pointer;
  text-decoration: underline; text-underline-offset: 0.15em;
}
.btn-link:hover { color: var(--accent-hover); }

/* account summary */
.summary { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 1rem; }
.summary p { margin: 0; color: var(--muted); overflow-wrap: anywhere; }

/* devices and sessions */
.sessions { list-style: none; margin: 0; padding: 0; border-top: 1px solid var(--border); }
.session {
  display: grid; grid-template-columns: auto 1fr auto; align-items: center; gap: 1rem;
  padding: 1rem 0; border-bottom: 1px solid var(--border);
}
.session-icon {
  width: 2.75rem; height: 2.75rem; border-radius: 10px;
  display: grid; place-items: center;
  background: var(--bg); color: var(--muted);
}
.session-current .session-icon { background: var(--accent-soft); color: var(--accent); }
.session-icon svg { width: 1.5rem; height: 1.5rem; }
.session-device { margin: 0 0 0.25rem; font-weight: 650; display: flex; flex-wrap: wrap; align-items: center; gap: 0.25rem 0.5rem; }
.badge {
  display: inline-block; font-size: 0.75rem; font-weight: 650;
  padding: 0.125rem 0.5rem; border-radius: 999px;
  background: var(--ok-soft); color: var(--ok); border: 1px solid var(--ok-border);
}
.session-meta { margin: 0; display: flex; flex-wrap: wrap; gap: 0.125rem 1.25rem; font-size: 0.875rem; color: var(--muted); }
.session-meta div { display: flex; gap: 0.3rem; }
.session-meta dt::after { content: ":"; }
.session-meta dd { margin: 0; color: var(--text); }
.session form { margin: 0; }
.sessions-foot { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 0.75rem 1rem; margin-top: 1.25rem; }
.sessions-foot p { margin: 0; color: var(--muted); font-size: 0.875rem; }
.sessions-foot form { margin: 0; }

@media (max-width: 34rem) {
  main { padding: 1.25rem 0.75rem 2rem; }
  .card { padding: 1.25rem; }
  .topbar-inner { padding: 0.625rem 0.875rem; }
  .usernav .who { display: none; }
  .session { grid-template-columns: auto 1fr; align-items: start; }
  .session form { grid-column: 2; }
  .session-meta { flex-direction: column; }
  .sessions-foot form, .sessions-foot .btn { width: 100%; }
}
@media (prefers-reduced-motion: no-preference) {
  .btn, input { transition: background-color 120ms ease, border-color 120ms ease; }
}
`;
