/**
 * The account pages: sign up, sign in, sign out, devices and sessions, change
 * password. Server-rendered HTML with no JavaScript at all, so no token can
 * reach page script and the CSP can forbid every script. Form posts are
 * application/x-www-form-urlencoded, each guarded three ways (see
 * web/form-tokens.ts), and every success answers 303 to a page (POST, then
 * redirect, then GET: reload never re-submits).
 *
 * Domain work goes through the same services and the same session start as
 * the JSON API (http/signin.ts); this file only translates forms to calls and
 * errors to words.
 */
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLatchkeyError, LatchkeyError } from '../errors.js';
import type { Context } from '../http/context.js';
import { clearSessionCookie, sessionCookie } from '../http/cookies.js';
import { isStoreUnavailable, toProblem } from '../http/problem.js';
import { deviceCookie, endSession, startSession } from '../http/signin.js';
import type { AuthenticatedSession } from '../sessions/service.js';
import { handleOf } from '../sessions/ids.js';
import { assets } from './assets.js';
import { presessionToken, presessionTokenValid } from './form-tokens.js';
import type { FormErrors } from './forms.js';
import type { Viewer } from './layout.js';
import { accountPage } from './pages/account.js';
import { messagePage } from './pages/message.js';
import { passwordPage } from './pages/password.js';
import { signinPage } from './pages/signin.js';
import { signupPage } from './pages/signup.js';

/**
 * No script, no frames, no plugins; styles and images from this origin only;
 * forms may post only here. Nothing on these pages needs more.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  // a window these pages open, or that opens them, gets no handle on them
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()',
};

/** Notices shown on arrival, chosen by a fixed key: query text is never echoed. */
const ACCOUNT_NOTICES: Record<string, string> = {
  welcome: 'Your account is ready. You are signed in on this device.',
  device: 'That device was signed out.',
  gone: 'That session had already ended.',
  others: 'All other devices were signed out.',
  password: 'Password changed. Every other device was signed out.',
};
const SIGNIN_NOTICES: Record<string, string> = {
  ended: 'You were signed out. Sign in again.',
  signedout: 'You signed out.',
};

const MESSAGES = {
  badCredentials: 'Email or password is incorrect.',
  disabled: 'This account is disabled. Contact the person who runs this service.',
  expiredForm: 'This form had expired. Please try again.',
  required: (what: string) => `Enter your ${what}.`,
  emailTaken: 'An account with this email already exists. Sign in instead.',
};

type FormBody = Record<string, unknown>;

/** A single string field of a form body; a repeated or missing field is undefined. */
const str = (body: unknown, name: string): string | undefined => {
  const v = (body as FormBody | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
};

/**
 * A `next` target a sign-in may return to: a path on this origin only.
 * `//evil.example` and `/\evil.example` are other hosts to a browser.
 * The result goes into a Location header, which must be ASCII: other
 * characters come back percent-encoded (UTF-8), and what cannot be encoded
 * (controls, unpaired surrogates) refuses the whole value, so a redirect
 * can never fail after the sign-in it follows has been written.
 */
export function safeNext(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 2048 || !value.startsWith('/')) return undefined;
  if (value.startsWith('//') || value.includes('\\')) return undefined;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || (c >= 0x7f && c <= 0x9f)) return undefined;
    if (c < 0x80) {
      out += value[i];
      continue;
    }
    const cp = value.codePointAt(i)!;
    if (cp >= 0xd800 && cp <= 0xdfff) return undefined;
    const ch = String.fromCodePoint(cp);
    out += encodeURIComponent(ch);
    i += ch.length - 1;
  }
  return out;
}

function retryText(seconds: number | undefined): string {
  const s = seconds ?? 60;
  if (s < 90) return `${s} seconds`;
  const m = Math.ceil(s / 60);
  return m < 90 ? `${m} minutes` : `${Math.ceil(m / 60)} hours`;
}

/** Register the pages; called from app.ts through buildHttp's `plugins`. */
export async function webRoutes(app: FastifyInstance, ctx: Context) {
  await app.register(async (web) => pages(web, ctx));
}

async function pages(web: FastifyInstance, ctx: Context) {
  const cookie = ctx.config.sessions;
  const { minLength } = ctx.config.passwords;

  // forms only in this scope: JSON or text/plain bodies to these routes get 415
  web.removeAllContentTypeParsers();
  await web.register(formbody, { bodyLimit: 8192 });

  web.addHook('onSend', async (_request, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    // pages carry user data and form tokens: never stored by a browser or proxy
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  web.setErrorHandler((err, request, reply) => {
    const p = toProblem(err);
    if (p.status >= 500 && !isStoreUnavailable(err)) request.log.error({ err }, 'request failed');
    if (isLatchkeyError(err) && err.retryAfter) reply.header('retry-after', String(err.retryAfter));
    const page =
      p.code === 'csrf_failed'
        ? {
            title: 'This request was refused',
            text: 'It came from another site, or its form had expired. Nothing was changed. Go back, reload the page and try again.',
          }
        : p.status >= 500
          ? { title: 'Something went wrong', text: 'Something went wrong on our side. Please try again in a moment.' }
          : { title: 'That did not work', text: 'The request could not be processed. Go back and try again.' };
    return reply
      .code(p.status)
      .type('text/html; charset=utf-8')
      .send(messagePage({ ...page, link: { href: '/account', label: 'Go to your account' } }));
  });

  for (const a of assets) {
    web.get(a.path, async (request, reply) => {
      reply.headers({ 'cache-control': 'public, max-age=31536000, immutable', etag: a.etag });
      if (request.headers['if-none-match'] === a.etag) return reply.code(304).send();
      return reply.type(a.type).send(a.body);
    });
  }

  const html = (reply: FastifyReply, page: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(page);

  /** The live session behind the cookie; a dead cookie is cleared. */
  async function current(request: FastifyRequest, reply: FastifyReply): Promise<{ auth?: AuthenticatedSession; stale: boolean }> {
    const secret = sessionCookie(request, cookie);
    const auth = await ctx.sessions.authenticate(secret, request.ip);
    if (auth) return { auth, stale: false };
    if (secret !== undefined) clearSessionCookie(reply, cookie);
    return { stale: secret !== undefined };
  }

  /** Where a signed-out visitor to a signed-in page goes: sign-in, told why, and back here after. */
  function toSignin(reply: FastifyReply, stale: boolean, next?: string) {
    const q = new URLSearchParams();
    if (stale) q.set('ended', '1');
    if (next && next !== '/account') q.set('next', next);
    const qs = q.toString();
    return reply.redirect(qs ? `/signin?${qs}` : '/signin', 303);
  }

  const viewer = (auth: AuthenticatedSession): Viewer => ({ email: auth.user.email, csrf: ctx.csrf.tokenFor(auth.session.idHash) });

  /**
   * A signed-in page. Unsafe methods pass the Origin / fetch-metadata check
   * before anything else, then the session, then the session-bound token.
   */
  function signedIn(handler: (auth: AuthenticatedSession, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const post = request.method === 'POST';
      if (post) ctx.csrf.check(request);
      const { auth, stale } = await current(request, reply);
      if (!auth) return toSignin(reply, stale, post ? undefined : safeNext(request.url));
      if (post && !ctx.csrf.verifyToken(auth.session.idHash, str(request.body, '_csrf'))) {
        throw new LatchkeyError('csrf_failed', 'form token missing or wrong');
      }
      return handler(auth, request, reply);
    };
  }

  // a gateway route may own "/"; then the pages keep out of its way
  if (!ctx.config.gateway.routes.some((r) => r.prefix === '/')) {
    web.get('/', async (request, reply) => {
      const { auth, stale } = await current(request, reply);
      return auth ? reply.redirect('/account', 303) : toSignin(reply, stale);
    });
  }

  // --- signed out: sign in, sign up ------------------------------------------

  web.get<{ Querystring: Record<string, string | undefined> }>('/signin', async (request, reply) => {
    const next = safeNext(request.query.next);
    const { auth } = await current(request, reply);
    if (auth) return reply.redirect(next ?? '/account', 303);
    const notice = request.query.ended ? SIGNIN_NOTICES.ended : request.query.signedout ? SIGNIN_NOTICES.signedout : undefined;
    return html(reply, signinPage({ csrf: presessionToken(request, reply), next, notice }));
  });

  web.post('/signin', async (request, reply) => {
    ctx.csrf.check(request);
    const email = str(request.body, 'email') ?? '';
    const password = str(request.body, 'password') ?? '';
    const next = safeNext(str(request.body, 'next'));
    const again = (status: number, errors: FormErrors) =>
      html(reply, signinPage({ csrf: presessionToken(request, reply), email, next, errors }), status);
    if (!presessionTokenValid(request, str(request.body, '_csrf'))) return again(403, { form: MESSAGES.expiredForm });
    const missing: Record<string, string> = {};
    if (!email.trim()) missing.email = MESSAGES.required('email address');
    if (!password) missing.password = MESSAGES.required('password');
    if (Object.keys(missing).length) return again(400, { fields: missing });
    try {
      const user = await ctx.accounts.login(email, password, request.ip, deviceCookie(request));
      await startSession(ctx, request, reply, user);
      return reply.redirect(next ?? '/account', 303);
    } catch (err) {
      if (!isLatchkeyError(err)) throw err;
      switch (err.code) {
        case 'invalid_credentials':
          return again(401, { form: MESSAGES.badCredentials, formFields: ['email', 'password'] });
        case 'rate_limited':
          reply.header('retry-after', String(err.retryAfter ?? 60));
          return again(429, { form: `Too many attempts. Try again in ${retryText(err.retryAfter)}.` });
        case 'user_disabled':
          return again(403, { form: MESSAGES.disabled });
        default:
          throw err;
      }
    }
  });

  web.get('/signup', async (request, reply) => {
    const { auth } = await current(request, reply);
    if (auth) return reply.redirect('/account', 303);
    return html(reply, signupPage({ csrf: presessionToken(request, reply), minLength }));
  });

  web.post('/signup', async (request, reply) => {
    ctx.csrf.check(request);
    const email = str(request.body, 'email') ?? '';
    const password = str(request.body, 'password') ?? '';
    const again = (status: number, errors: FormErrors) =>
      html(reply, signupPage({ csrf: presessionToken(request, reply), email, minLength, errors }), status);
    if (!presessionTokenValid(request, str(request.body, '_csrf'))) return again(403, { form: MESSAGES.expiredForm });
    const missing: Record<string, string> = {};
    if (!email.trim()) missing.email = MESSAGES.required('email address');
    if (!password) missing.password = 'Choose a password.';
    if (Object.keys(missing).length) return again(400, { fields: missing });
    try {
      const user = await ctx.accounts.signup(email, password, request.ip);
      await startSession(ctx, request, reply, user);
      return reply.redirect('/account?notice=welcome', 303);
    } catch (err) {
      if (!isLatchkeyError(err)) throw err;
      switch (err.code) {
        case 'invalid_email':
        case 'weak_password':
          return again(400, { fields: err.fields ?? {} });
        case 'email_taken':
          return again(409, { fields: { email: MESSAGES.emailTaken } });
        case 'rate_limited':
          reply.header('retry-after', String(err.retryAfter ?? 60));
          return again(429, { form: `Too many sign-ups from this network. Try again in ${retryText(err.retryAfter)}.` });
        default:
          throw err;
      }
    }
  });

  // --- sign out ----------------------------------------------------------------

  web.post('/signout', async (request, reply) => {
    ctx.csrf.check(request);
    const { auth } = await current(request, reply);
    // already signed out (ended elsewhere): nothing to protect, just land on sign-in
    if (!auth) return reply.redirect('/signin?signedout=1', 303);
    if (!ctx.csrf.verifyToken(auth.session.idHash, str(request.body, '_csrf'))) {
      throw new LatchkeyError('csrf_failed', 'form token missing or wrong');
    }
    await endSession(ctx, request, reply);
    return reply.redirect('/signin?signedout=1', 303);
  });

  // --- signed in: account, devices, password -----------------------------------

  web.get(
    '/account',
    signedIn(async (auth, request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      const sessions = await ctx.sessions.list(auth.user.id);
      const rows = sessions
        .map((s) => {
          const handle = handleOf(s.idHash);
          return { handle, device: s.device, ip: s.ip, createdAt: s.createdAt, lastSeenAt: s.lastSeenAt, current: handle === auth.handle };
        })
        // this device first, then the most recently active
        .sort((a, b) => Number(b.current) - Number(a.current) || b.lastSeenAt - a.lastSeenAt);
      const notice = q.notice !== undefined && Object.hasOwn(ACCOUNT_NOTICES, q.notice) ? ACCOUNT_NOTICES[q.notice] : undefined;
      return html(
        reply,
        accountPage({
          viewer: viewer(auth),
          memberSince: auth.user.createdAt,
          sessions: rows,
          notice,
          now: Math.floor(Date.now() / 1000),
        }),
      );
    }),
  );

  web.post(
    '/account/sessions/:handle/signout',
    signedIn(async (auth, request, reply) => {
      const { handle } = request.params as { handle: string };
      if (handle === auth.handle) {
        await endSession(ctx, request, reply);
        return reply.redirect('/signin?signedout=1', 303);
      }
      // scoped to this user: a handle of someone else's session ends nothing
      const ended = await ctx.sessions.endByHandle(handle, 'revoked', auth.user.id);
      return reply.redirect(`/account?notice=${ended ? 'device' : 'gone'}`, 303);
    }),
  );

  web.post(
    '/account/sessions/signout-others',
    signedIn(async (auth, _request, reply) => {
      await ctx.sessions.endAllForUser(auth.user.id, 'signed_out_everywhere', auth.session.idHash);
      return reply.redirect('/account?notice=others', 303);
    }),
  );

  web.get(
    '/account/password',
    signedIn(async (auth, _request, reply) => html(reply, passwordPage({ viewer: viewer(auth), minLength }))),
  );

  web.post(
    '/account/password',
    signedIn(async (auth, request, reply) => {
      const currentPassword = str(request.body, 'currentPassword') ?? '';
      const newPassword = str(request.body, 'newPassword') ?? '';
      const again = (status: number, errors: FormErrors) => html(reply, passwordPage({ viewer: viewer(auth), minLength, errors }), status);
      const missing: Record<string, string> = {};
      if (!currentPassword) missing.currentPassword = MESSAGES.required('current password');
      if (!newPassword) missing.newPassword = 'Choose a new password.';
      if (Object.keys(missing).length) return again(400, { fields: missing });
      let ended;
      try {
        ended = await ctx.accounts.changePassword(auth.user.id, currentPassword, newPassword, request.ip, auth.session.idHash);
      } catch (err) {
        if (!isLatchkeyError(err)) throw err;
        switch (err.code) {
          case 'invalid_credentials':
            return again(400, { fields: { currentPassword: err.fields?.currentPassword ?? 'Your current password is incorrect.' } });
          case 'weak_password':
            return again(400, { fields: { newPassword: err.fields?.password ?? err.message } });
          case 'password_unchanged':
            return again(400, { fields: { newPassword: err.fields?.newPassword ?? err.message } });
          case 'rate_limited':
            reply.header('retry-after', String(err.retryAfter ?? 60));
            return again(429, { form: `Too many wrong passwords. Try again in ${retryText(err.retryAfter)}.` });
          case 'unauthenticated':
            return toSignin(reply, true);
          default:
            throw err;
        }
      }
      ctx.sessions.ended(ended, 'password_changed');
      // a privilege-level change: this session gets a new ID as well
      await startSession(ctx, request, reply, auth.user, 'password_changed');
      return reply.redirect('/account?notice=password', 303);
    }),
  );
}
