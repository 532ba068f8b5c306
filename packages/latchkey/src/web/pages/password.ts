import { field, focusField, formAlert, type FormErrors } from '../forms.js';
import { html } from '../html.js';
import { csrfField, layout, type Viewer } from '../layout.js';

export interface PasswordView {
  viewer: Viewer;
  minLength: number;
  errors?: FormErrors;
}

export function passwordPage(v: PasswordView): string {
  const errors = v.errors ?? {};
  const focus = focusField(['currentPassword', 'newPassword'], errors);
  return layout({
    title: 'Change password',
    viewer: v.viewer,
    body: html`<div class="card">
<h1>Change password</h1>
<p class="lede">This signs you out on every other device. You stay signed in here.</p>
${formAlert(errors)}
<form method="post" action="/account/password">
${csrfField(v.viewer.csrf)}
<input type="text" autocomplete="username" value="${v.viewer.email}" hidden>
${field({ name: 'currentPassword', label: 'Current password', type: 'password', autocomplete: 'current-password', autofocus: focus === 'currentPassword' }, errors)}
${field(
  {
    name: 'newPassword',
    label: 'New password',
    type: 'password',
    autocomplete: 'new-password',
    minlength: v.minLength,
    hint: `At least ${v.minLength} characters. Not one you use anywhere else.`,
    autofocus: focus === 'newPassword',
  },
  errors,
)}
<div class="actions">
<button class="btn btn-primary" type="submit">Change password</button>
<a href="/account">Cancel</a>
</div>
</form>
</div>`,
  });
}
