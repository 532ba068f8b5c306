import { field, focusField, formAlert, notice, type FormErrors } from '../forms.js';
import { html } from '../html.js';
import { csrfField, layout } from '../layout.js';

export interface SigninView {
  csrf: string;
  email?: string | undefined;
  /** A local path to return to after signing in (from the gateway's redirect). */
  next?: string | undefined;
  /** Why the person is here: their session ended, or they just signed out. */
  notice?: string | undefined;
  errors?: FormErrors;
}

export function signinPage(v: SigninView): string {
  const errors = v.errors ?? {};
  const focus = focusField(['email', 'password'], errors);
  return layout({
    title: 'Sign in',
    body: html`<div class="card">
<h1>Sign in</h1>
<p class="lede">Welcome back. Sign in to manage your account and devices.</p>
${notice(v.notice, 'info')}
${formAlert(errors)}
<form method="post" action="/signin">
${csrfField(v.csrf)}
${v.next && html`<input type="hidden" name="next" value="${v.next}">`}
${field({ name: 'email', label: 'Email', type: 'email', autocomplete: 'email', value: v.email, autofocus: focus === 'email' }, errors)}
${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password', autofocus: focus === 'password' }, errors)}
<button class="btn btn-primary btn-block" type="submit">Sign in</button>
</form>
<p class="alt">New to latchkey? <a href="/signup">Create an account</a></p>
</div>`,
  });
}
