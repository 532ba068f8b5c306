import { field, focusField, formAlert, type FormErrors } from '../forms.js';
import { html } from '../html.js';
import { csrfField, layout } from '../layout.js';

export interface SignupView {
  csrf: string;
  email?: string | undefined;
  minLength: number;
  errors?: FormErrors;
}

export function signupPage(v: SignupView): string {
  const errors = v.errors ?? {};
  const focus = focusField(['email', 'password'], errors);
  return layout({
    title: 'Create an account',
    body: html`<div class="card">
<h1>Create an account</h1>
<p class="lede">One account, signed in on all your devices, each of which you can sign out from here.</p>
${formAlert(errors)}
<form method="post" action="/signup">
${csrfField(v.csrf)}
${field({ name: 'email', label: 'Email', type: 'email', autocomplete: 'email', value: v.email, autofocus: focus === 'email' }, errors)}
${field(
  {
    name: 'password',
    label: 'Password',
    type: 'password',
    autocomplete: 'new-password',
    minlength: v.minLength,
    hint: `At least ${v.minLength} characters. A few unrelated words make a strong one.`,
    autofocus: focus === 'password',
  },
  errors,
)}
<button class="btn btn-primary btn-block" type="submit">Create account</button>
</form>
<p class="alt">Already have an account? <a href="/signin">Sign in</a></p>
</div>`,
  });
}
