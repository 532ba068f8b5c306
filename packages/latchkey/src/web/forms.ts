/**
 * Form building blocks. Accessibility is built in rather than remembered:
 * every input has a <label>, and its hint and error are tied to it with
 * aria-describedby, with aria-invalid set when it is in error.
 */
import { html, type SafeHtml } from './html.js';

/** What went wrong with a submitted form, in words a person can act on. */
export interface FormErrors {
  /** About the form as a whole (wrong password, too many attempts). */
  form?: string | undefined;
  /** Names of the fields the form-level error concerns (marked invalid, described by it). */
  formFields?: string[];
  /** Per field. */
  fields?: Record<string, string>;
}

export const FORM_ERROR_ID = 'form-error';

export interface FieldSpec {
  name: string;
  label: string;
  type: 'email' | 'password' | 'text';
  autocomplete: string;
  value?: string | undefined;
  hint?: string;
  minlength?: number;
  autofocus?: boolean;
}

export function field(spec: FieldSpec, errors: FormErrors = {}): SafeHtml {
  const error = errors.fields?.[spec.name];
  const concernsForm = errors.form !== undefined && (errors.formFields ?? []).includes(spec.name);
  const hintId = `${spec.name}-hint`;
  const errorId = `${spec.name}-error`;
  const describedBy = [spec.hint && hintId, error && errorId, concernsForm && FORM_ERROR_ID].filter(Boolean).join(' ');
  const invalid = error !== undefined || concernsForm;
  return html`<div class="field">
<label for="${spec.name}">${spec.label}</label>
${spec.hint && html`<p class="hint" id="${hintId}">${spec.hint}</p>`}
${error && html`<p class="field-error" id="${errorId}"><span class="vh">Error: </span>${error}</p>`}
<input id="${spec.name}" name="${spec.name}" type="${spec.type}" autocomplete="${spec.autocomplete}" required${
    spec.value !== undefined && html` value="${spec.value}"`}${spec.minlength !== undefined && html` minlength="${spec.minlength}"`}${
    describedBy && html` aria-describedby="${describedBy}"`}${invalid && html` aria-invalid="true"`}${spec.autofocus && html` autofocus`}>
</div>`;
}

/** The form-level error, announced as soon as the page loads. */
export const formAlert = (errors: FormErrors): SafeHtml | undefined =>
  errors.form === undefined
    ? undefined
    : html`<div class="alert alert-error" role="alert" id="${FORM_ERROR_ID}"><p>${errors.form}</p></div>`;

export type NoticeKind = 'ok' | 'info';

/** A status message (signed out, password changed). */
export const notice = (text: string | undefined, kind: NoticeKind = 'ok'): SafeHtml | undefined =>
  text === undefined ? undefined : html`<div class="alert alert-${kind}" role="status"><p>${text}</p></div>`;

/** The field to focus on load: the first one in error, else the first one. */
export function focusField(order: string[], errors: FormErrors): string | undefined {
  const bad = order.find((n) => errors.fields?.[n] !== undefined || (errors.form !== undefined && errors.formFields?.includes(n)));
  return bad ?? order[0];
}
