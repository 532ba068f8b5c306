import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PasswordHasher, checkPasswordPolicy } from '../src/accounts/passwords.js';
import { normaliseEmail } from '../src/accounts/email.js';
import { ADMIN_KEY, Client, json, startServer, type TestServer } from './helpers.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({ rateLimit: { loginPerAccount: 5, loginPerIp: 1000, windowSeconds: 60 } });
});
after(() => srv.close());

const ADMIN: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}` };

describe('sign-up and login', () => {
  it('normalises emails so case and spacing do not make a second account', async () => {
    const c = new Client(srv.url);
    assert.equal((await c.signup('  Grace.Hopper@EXAMPLE.com ')).status, 201);
    assert.equal((await new Client(srv.url).login('grace.hopper@example.com')).status, 200);
    assert.equal((await new Client(srv.url).signup('grace.hopper@example.COM')).status, 409);
    assert.equal(normaliseEmail('user@bücher.example'), 'user@xn--bcher-kva.example');
  });

  it('answers unknown email and wrong password identically', async () => {
    const c = new Client(srv.url);
    await c.signup('known@example.com');
    const unknown = await new Client(srv.url).login('unknown@example.com', 'correct horse battery staple');
    const wrong = await new Client(srv.url).login('known@example.com', 'wrong horse battery staple');
    assert.equal(unknown.status, 401);
    assert.equal(wrong.status, unknown.status);
    assert.deepEqual(await unknown.json(), await wrong.json());
    assert.equal(unknown.headers.get('content-type'), wrong.headers.get('content-type'));
    assert.deepEqual(unknown.headers.getSetCookie(), wrong.headers.getSetCookie());
  });

  it('spends a full argon2id verify on unknown emails too (no timing oracle)', async () => {
    // default OWASP parameters: a verify costs milliseconds, a missing one costs nothing
    const hasher = new PasswordHasher({ memoryKiB: 19456, iterations: 2, parallelism: 1 });
    const real = await hasher.hash('correct horse battery staple');
    const time = async (h: string | undefined) => {
      const t = performance.now();
      await hasher.verify(h, 'wrong password here');
      return performance.now() - t;
    };
    await time(real);
    await time(undefined);
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await time(real));
      unknown.push(await time(undefined));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!;
    assert.ok(median(unknown) > 0.5 * median(known), `unknown ${median(unknown)} ms vs known ${median(known)} ms`);
  });

  it('a burst of hashes leaves the thread pool room: a Web Crypto PBKDF2 (what node-postgres runs for a SCRAM handshake) started after 40 hashes finishes before most of them', async () => {
    const hasher = new PasswordHasher({ memoryKiB: 19456, iterations: 2, parallelism: 1 });
    let done = 0;
    const burst = Array.from({ length: 40 }, () => hasher.hash('a burst of sign-ins').then(() => done++));
    const key = await webcrypto.subtle.importKey('raw', Buffer.from('not a password'), 'PBKDF2', false, ['deriveBits']);
    await webcrypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: Buffer.from('salt'), iterations: 4096 }, key, 256);
    const doneBefore = done;
    await Promise.all(burst);
    assert.equal(done, 40);
    assert.ok(doneBefore < 20, `the handshake's PBKDF2 finished after ${doneBefore} of 40 hashes`);
  });

  it('stores argon2id hashes with the configured parameters', async () => {
    const c = new Client(srv.url);
    await c.signup('hash@example.com');
    const u = await srv.lk.store.getUserByEmail('hash@example.com');
    assert.match(u!.passwordHash, /^\$argon2id\$v=19\$m=8192,t=1,p=1\$/);
    const def = new PasswordHasher({ memoryKiB: 19456, iterations: 2, parallelism: 1 });
    assert.match(await def.hash('x'), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it('applies the password policy: length, common passwords, no email; no composition rules', async () => {
    const policy = { minLength: 8, maxLength: 64 };
    await assert.rejects(checkPasswordPolicy('short', policy), { code: 'weak_password' });
    await assert.rejects(checkPasswordPolicy('x'.repeat(65), policy), { code: 'weak_password' });
    await assert.rejects(checkPasswordPolicy('password1', policy), /too common/);
    await assert.rejects(checkPasswordPolicy('Iloveyou', policy), /too common/);
    await assert.rejects(checkPasswordPolicy('aaaaaaaaaaaa', policy), { code: 'weak_password' });
    await assert.rejects(checkPasswordPolicy('marie.curie99', policy, 'marie.curie@example.com'), /email/);
    // all lower-case, no digits or symbols: fine by NIST
    await checkPasswordPolicy('purple elephants dance', policy);
    // length counts characters, not bytes
    await checkPasswordPolicy('🔑🔑🔒🔑🔒🔑🔒🔑', policy);
    const res = await new Client(srv.url).signup('weak@example.com', '12345678');
    assert.equal(res.status, 400);
    assert.equal((await json(res)).code, 'weak_password');
    assert.equal(await srv.lk.store.getUserByEmail('weak@example.com'), undefined);
  });

  it('throttles repeated failures for one account with 429 and Retry-After, even for the right password', async () => {
    await new Client(srv.url).signup('target@example.com');
    for (let i = 0; i < 5; i++) assert.equal((await new Client(srv.url).login('target@example.com', 'guess number ' + i)).status, 401);
    const blocked = await new Client(srv.url).login('target@example.com');
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    assert.equal((await json(blocked)).code, 'rate_limited');
    // an unknown account is throttled the same way (no enumeration through the limiter)
    for (let i = 0; i < 5; i++) await new Client(srv.url).login('ghost@example.com', 'guess ' + i);
    assert.equal((await new Client(srv.url).login('ghost@example.com')).status, 429);
  });

  it('throttles wrong current passwords at password change per user: a stolen session cannot guess the password', async () => {
    const thief = new Client(srv.url);
    await thief.signup('victim@example.com');
    const other = new Client(srv.url);
    await other.signup('bystander@example.com');
    for (let i = 0; i < 5; i++) {
      const res = await thief.post('/v1/password', { currentPassword: 'guess number ' + i, newPassword: 'a brand new secret' });
      assert.equal(res.status, 401);
      assert.equal((await json(res)).code, 'invalid_credentials');
    }
    // past the limit even the right current password is refused, and nothing changes
    const blocked = await thief.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'a brand new secret' });
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    assert.equal((await json(blocked)).code, 'rate_limited');
    assert.equal((await new Client(srv.url).login('victim@example.com')).status, 200, 'the password is unchanged');
    // another user's password change is not affected
    assert.equal((await other.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'a brand new secret' })).status, 200);
  });

  it('concurrent guesses cannot slip past the limits: login and password change count every attempt at once', async () => {
    await new Client(srv.url).signup('raced@example.com');
    const logins = await Promise.all(Array.from({ length: 20 }, (_, i) => new Client(srv.url).login('raced@example.com', `parallel guess ${i}`)));
    const loginStatuses = logins.map((r) => r.status);
    assert.equal(loginStatuses.filter((s) => s === 401).length, 5, loginStatuses.join(' '));
    assert.equal(loginStatuses.filter((s) => s === 429).length, 15);

    const thief = new Client(srv.url);
    await thief.signup('raced.change@example.com');
    const changes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => thief.post('/v1/password', { currentPassword: `parallel guess ${i}`, newPassword: 'a brand new secret' })),
    );
    const changeStatuses = changes.map((r) => r.status);
    assert.equal(changeStatuses.filter((s) => s === 401).length, 5, changeStatuses.join(' '));
    assert.equal(changeStatuses.filter((s) => s === 429).length, 15);
  });

  it('a right password gives its point back: successful logins from one IP never add up to a block', async () => {
    const s2 = await startServer({ rateLimit: { loginPerAccount: 2, loginPerIp: 3, windowSeconds: 60 } });
    try {
      await new Client(s2.url).signup('regular@example.com');
      for (let i = 0; i < 10; i++) assert.equal((await new Client(s2.url).login('regular@example.com')).status, 200);
      // a wrong password then the right one: the account's failures are forgiven
      assert.equal((await new Client(s2.url).login('regular@example.com', 'one wrong guess')).status, 401);
      assert.equal((await new Client(s2.url).login('regular@example.com')).status, 200);
      assert.equal((await new Client(s2.url).login('regular@example.com', 'one wrong guess')).status, 401);
      assert.equal((await new Client(s2.url).login('regular@example.com')).status, 200);
    } finally {
      await s2.close();
    }
  });

  it('throttles sign-up attempts per IP, failed ones included, without creating the refused account', async () => {
    const s2 = await startServer({ rateLimit: { signupPerIp: 3, windowSeconds: 60 } });
    try {
      assert.equal((await new Client(s2.url).signup('one@example.com')).status, 201);
      assert.equal((await new Client(s2.url).signup('one@example.com')).status, 409);
      assert.equal((await new Client(s2.url).signup('weak@example.com', '12345678')).status, 400);
      const blocked = await new Client(s2.url).signup('four@example.com');
      assert.equal(blocked.status, 429);
      assert.ok(Number(blocked.headers.get('retry-after')) > 0);
      assert.equal((await json(blocked)).code, 'rate_limited');
      assert.equal(await s2.lk.store.getUserByEmail('four@example.com'), undefined);
      // signing in is a separate limit
      assert.equal((await new Client(s2.url).login('one@example.com')).status, 200);
    } finally {
      await s2.close();
    }
  });
});

describe('the password policy judges the password that is hashed (NFKC)', () => {
  it('refuses a full-width common password, length and email rules also on the NFKC form', async () => {
    const policy = { minLength: 8, maxLength: 64 };
    // ｐａｓｓｗｏｒｄ１ hashes as password1
    await assert.rejects(checkPasswordPolicy('\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11', policy), /too common/);
    await assert.rejects(checkPasswordPolicy('\uff4d\uff41\uff52\uff49\uff45.\uff43\uff55\uff52\uff49\uff45\uff19\uff19', policy, 'marie.curie@example.com'), /email/);
    // three ligatures are nine characters once normalised: long enough
    await checkPasswordPolicy('\ufb03\ufb03\ufb03', policy);
    // the full-width form of a single repeated character is still one character
    await assert.rejects(checkPasswordPolicy('\uff41'.repeat(12), policy), /single character/);
  });

  it('sign-up refuses ｐａｓｓｗｏｒｄ１ with weak_password and creates no account', async () => {
    const res = await new Client(srv.url).signup('fullwidth@example.com', '\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11');
    assert.equal(res.status, 400);
    assert.equal((await json(res)).code, 'weak_password');
    assert.equal(await srv.lk.store.getUserByEmail('fullwidth@example.com'), undefined);
  });

  it('a new password equal to the current one (or its full-width form) is refused with password_unchanged; nothing changes', async () => {
    const c = new Client(srv.url);
    await c.signup('unchanged@example.com');
    const other = new Client(srv.url);
    assert.equal((await other.login('unchanged@example.com')).status, 200);
    const before = await srv.lk.store.getUserByEmail('unchanged@example.com');
    const fullWidth = [...'correct horse battery staple'].map((ch) => (ch === ' ' ? '\u3000' : String.fromCodePoint(ch.codePointAt(0)! + 0xfee0))).join('');
    for (const newPassword of ['correct horse battery staple', fullWidth]) {
      const res = await c.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword });
      assert.equal(res.status, 400);
      const body = await json<{ code: string; errors: { pointer: string }[] }>(res);
      assert.equal(body.code, 'password_unchanged');
      assert.deepEqual(body.errors.map((e) => e.pointer), ['/newPassword']);
    }
    // the hash is untouched and the other session was not ended
    assert.equal((await srv.lk.store.getUserByEmail('unchanged@example.com'))!.passwordHash, before!.passwordHash);
    assert.equal((await other.get('/v1/session')).status, 200);
  });
});

describe('emails that render alike are one account, or refused', () => {
  const refused = (input: string, reason: RegExp) => {
    assert.throws(() => normaliseEmail(input), (err: { code: string; fields: { email: string } }) => {
      assert.equal(err.code, 'invalid_email', input);
      assert.match(err.fields.email, reason, JSON.stringify(input));
      return true;
    });
  };

  it('refuses invisible, control and format characters and unpaired surrogates', () => {
    for (const ch of ['\u200b', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u0085', '\u2028', '\u2029', '\u202e', '\u200f', '\u061c', '\u3164', '\u0000', '\u007f', '\u00a0', '\ue000', '\ud800', '\udc00']) {
      refused(`pay${ch}pal@example.com`, /invisible, control or broken/);
      refused(`paypal@exam${ch}ple.com`, /invisible, control or broken/);
    }
    // a lone surrogate at the very end, and a space inside the address
    refused('paypal@example.com\ud83d', /invisible, control or broken/);
    refused('pay pal@example.com', /invisible/);
    // a well-formed pair is not "unpaired" (then refused as a symbol, not as broken)
    refused('pay\u{1f511}pal@example.com', /not allowed/);
  });

  it('folds width and case (NFKC + lower case), so full-width forms are the same address', () => {
    assert.equal(normaliseEmail('\uff30\uff41\uff59\uff30\uff41\uff4c@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d'), 'paypal@example.com');
    assert.equal(normaliseEmail('PayPal\uff20Example.COM'), 'paypal@example.com');
    assert.equal(normaliseEmail('jose\u0301@example.com'), 'jos\u00e9@example.com');
    assert.equal(normaliseEmail('\u5c71\u7530\u305f\u308d\u3046@example.jp'), '\u5c71\u7530\u305f\u308d\u3046@example.jp');
    assert.equal(normaliseEmail('\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444'), '\u0438\u0432\u0430\u043d@xn--e1afmkfd.xn--p1ai');
  });

  it('refuses mixed scripts, Latin look-alike Cyrillic, scripts outside UTS #31, and stray marks', () => {
    refused('p\u0430ypal@example.com', /mix alphabets/); // Cyrillic а in a Latin name
    refused('paypal@\u0430pple.com', /mix alphabets/);
    refused('\u0430\u0440\u0440\u04cf\u0435@example.com', /look like Latin/); // аррӏе
    refused('paypal@xn--80ak6aa92e.com', /look like Latin/); // the punycode of аррӏе
    refused('\u13da\u13a2\u13b5@example.com', /writing system/); // Cherokee
    refused('o\u0338@example.com', /not allowed/); // a combining overlay NFKC cannot compose
  });

  it('requires the domain to be a host name after IDNA: LDH labels of 1..63, at most 253, not numeric', () => {
    for (const domain of ['localhost', 'exa_mple.com', '-example.com', 'example-.com', 'a..com', '1.2.3.4', '[127.0.0.1]', `${'x'.repeat(64)}.com`, `${'abcdefghi.'.repeat(25)}info`]) {
      refused(`user@${domain}`, /domain/);
    }
    assert.equal(normaliseEmail(`user@${'x'.repeat(63)}.com`), `user@${'x'.repeat(63)}.com`);
    assert.equal(normaliseEmail('user@B\u00fccher.example'), 'user@xn--bcher-kva.example');
  });

  it('over HTTP: a look-alike of an existing account collides (409) or is refused (400, /email), and creates nothing', async () => {
    const before = await countUsers();
    assert.equal((await new Client(srv.url).signup('lookalike@example.com')).status, 201);
    const fullWidth = await new Client(srv.url).signup('\uff4c\uff4f\uff4f\uff4b\uff41\uff4c\uff49\uff4b\uff45@example.com');
    assert.equal(fullWidth.status, 409);
    assert.equal((await json(fullWidth)).code, 'email_taken');
    for (const email of ['lookalike\u200b@example.com', 'l\u043eokalike@example.com', 'lookalike@example.com\u2028', 'look\ud800alike@example.com', 'lookalike@exam\u00adple.com']) {
      const res = await new Client(srv.url).signup(email);
      assert.equal(res.status, 400, JSON.stringify(email));
      const body = await json<{ code: string; errors: { pointer: string }[] }>(res);
      assert.equal(body.code, 'invalid_email');
      assert.deepEqual(body.errors.map((e) => e.pointer), ['/email']);
    }
    assert.equal(await countUsers(), before + 1);
    // the full-width form signs in to the one account
    assert.equal((await new Client(srv.url).login('\uff4c\uff4f\uff4f\uff4b\uff41\uff4c\uff49\uff4b\uff45@example.com')).status, 200);
  });

  it('accounts stored under the earlier normal form keep signing in', async () => {
    const hash = (await srv.lk.store.getUserByEmail('lookalike@example.com'))!.passwordHash;
    // stored before this policy: NFC and lower case only, so compatibility forms and a zero-width space survived
    for (const [id, email] of [['u_legacy_fullwidth', '\uff4c\uff45\uff47\uff41\uff43\uff59@example.com'], ['u_legacy_zwsp', 'leg\u200bacy@example.com']] as const) {
      await srv.lk.store.createUser({ id, email, passwordHash: hash, createdAt: 1 });
      const res = await new Client(srv.url).login(email);
      assert.equal(res.status, 200, JSON.stringify(email));
      assert.equal((await json<{ user: { id: string } }>(res)).user.id, id);
    }
  });
});

/** Rows in the users table, read from the real SQLite file. */
async function countUsers(): Promise<number> {
  const db = (srv.lk.store as unknown as { db: { prepare(q: string): { get(): { n: number } } } }).db;
  return db.prepare('SELECT count(*) AS n FROM users').get().n;
}

describe('admin API', () => {
  it('needs the admin key, compared in constant time', async () => {
    const c = new Client(srv.url);
    assert.equal((await c.get('/v1/admin/users?email=a@example.com')).status, 401);
    assert.equal((await c.get('/v1/admin/users?email=a@example.com', { authorization: `Bearer ${ADMIN_KEY}x` })).status, 401);
    assert.equal((await c.get('/v1/admin/users?email=a@example.com', { authorization: `Bearer ${ADMIN_KEY.slice(0, -1)}` })).status, 401);
    assert.equal((await c.get('/v1/admin/users?email=a@example.com', { authorization: 'Bearer ' })).status, 401);
  });

  it('is off when no admin key is configured', async () => {
    const s2 = await startServer({ adminKey: undefined });
    try {
      assert.equal((await new Client(s2.url).get('/v1/admin/users?email=a@example.com', { authorization: `Bearer ${ADMIN_KEY}` })).status, 404);
    } finally {
      await s2.close();
    }
  });

  it('lists and revokes any user’s sessions', async () => {
    const user = new Client(srv.url);
    await user.signup('managed@example.com');
    const other = new Client(srv.url);
    await other.login('managed@example.com');
    const op = new Client(srv.url);
    const found = await json<{ user: { id: string } }>(await op.get('/v1/admin/users?email=Managed@example.com', ADMIN));
    const list = await json<{ sessions: { handle: string }[] }>(await op.get(`/v1/admin/users/${found.user.id}/sessions`, ADMIN));
    assert.equal(list.sessions.length, 2);
    assert.equal((await op.delete(`/v1/admin/sessions/${list.sessions[0]!.handle}`, ADMIN)).status, 204);
    const statuses = [(await user.get('/v1/session')).status, (await other.get('/v1/session')).status].sort();
    assert.deepEqual(statuses, [200, 401]);
    const all = await json<{ revoked: number }>(await op.delete(`/v1/admin/users/${found.user.id}/sessions`, ADMIN));
    assert.equal(all.revoked, 1);
    assert.equal((await user.get('/v1/session')).status, 401);
    assert.equal((await other.get('/v1/session')).status, 401);
    assert.equal((await op.get('/v1/admin/users/u_nobody/sessions', ADMIN)).status, 404);
  });

  it('disabling a user ends everything at once and locks them out', async () => {
    const user = new Client(srv.url);
    await user.signup('disabled@example.com');
    const id = (await json<{ user: { id: string } }>(await user.get('/v1/session'))).user.id;
    const op = new Client(srv.url);
    const res = await json<{ revoked: number; user: { disabled: boolean } }>(
      await op.post(`/v1/admin/users/${id}/disable`, undefined, ADMIN),
    );
    assert.equal(res.revoked, 1);
    assert.equal(res.user.disabled, true);
    assert.equal((await user.get('/v1/session')).status, 401);
    const again = await new Client(srv.url).login('disabled@example.com');
    assert.equal(again.status, 403);
    assert.equal((await json(again)).code, 'user_disabled');
    // a wrong password for a disabled account still says only "incorrect"
    assert.equal((await new Client(srv.url).login('disabled@example.com', 'not the password')).status, 401);
    await op.post(`/v1/admin/users/${id}/enable`, undefined, ADMIN);
    assert.equal((await new Client(srv.url).login('disabled@example.com')).status, 200);
  });

  it('sets roles and validates them', async () => {
    const user = new Client(srv.url);
    await user.signup('roles@example.com');
    const id = (await json<{ user: { id: string } }>(await user.get('/v1/session'))).user.id;
    const op = new Client(srv.url);
    const put = (body: unknown) => op.request('PUT', `/v1/admin/users/${id}/roles`, body, ADMIN);
    assert.equal((await put({ roles: ['billing', 'ops'] })).status, 200);
    assert.deepEqual((await json<{ user: { roles: string[] } }>(await user.get('/v1/session'))).user.roles, ['billing', 'ops']);
    assert.equal((await put({ roles: ['has space'] })).status, 400);
    assert.equal((await put({ roles: 'admin' })).status, 400);
  });

  it('the audit log: operators’ actions and password changes, filtered, a page at a time', async () => {
    const s2 = await startServer();
    try {
      const user = new Client(s2.url);
      await user.signup('audited@example.com');
      const id = (await json<{ user: { id: string } }>(await user.get('/v1/session'))).user.id;
      const op = new Client(s2.url);
      assert.equal((await user.post('/v1/password', { currentPassword: 'correct horse battery staple', newPassword: 'a brand new secret' })).status, 200);
      await op.request('PUT', `/v1/admin/users/${id}/roles`, { roles: ['ops'] }, ADMIN);
      await op.post(`/v1/admin/users/${id}/disable`, undefined, ADMIN);
      await op.post(`/v1/admin/users/${id}/enable`, undefined, ADMIN);
      await op.delete(`/v1/admin/users/${id}/sessions`, ADMIN);
      // an action on a user who does not exist records nothing
      assert.equal((await op.post('/v1/admin/users/u_nobody/enable', undefined, ADMIN)).status, 404);

      type Page = { events: { id: number; type: string; userId: string | null; ip: string | null; detail: Record<string, unknown> }[]; next: number | null };
      const mine = await json<Page>(await op.get(`/v1/admin/audit?userId=${id}`, ADMIN));
      assert.deepEqual(
        mine.events.map((e) => e.type),
        ['admin_sessions_revoked', 'admin_user_enabled', 'admin_user_disabled', 'admin_roles_changed', 'password_changed'],
      );
      assert.equal(mine.next, null);
      assert.deepEqual(mine.events[3]!.detail, { roles: ['ops'] });
      assert.equal(mine.events[4]!.ip, '127.0.0.1');
      const everyone = await json<Page>(await op.get('/v1/admin/audit', ADMIN));
      assert.ok(everyone.events.some((e) => e.type === 'key_created'), 'the first signing key is in the log');
      assert.ok(!everyone.events.some((e) => e.userId === 'u_nobody'));

      // pages of two, newest first, until next is null: every event once, in order
      const seen: number[] = [];
      let before: number | null | undefined;
      do {
        const page = await json<Page>(await op.get(`/v1/admin/audit?limit=2${before ? `&before=${before}` : ''}`, ADMIN));
        assert.ok(page.events.length <= 2);
        seen.push(...page.events.map((e) => e.id));
        before = page.next;
      } while (before !== null);
      assert.deepEqual(seen, everyone.events.map((e) => e.id));

      const byType = await json<Page>(await op.get('/v1/admin/audit?type=admin_user_disabled', ADMIN));
      assert.deepEqual(byType.events.map((e) => e.userId), [id]);
      // bad queries: problem+json 400, never a 500
      for (const q of ['type=nonsense', 'limit=0', 'limit=1001', 'before=x', 'before=0', 'colour=red']) {
        const res = await op.get(`/v1/admin/audit?${q}`, ADMIN);
        assert.equal(res.status, 400, q);
        assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/, q);
      }
      assert.equal((await new Client(s2.url).get('/v1/admin/audit')).status, 401);
    } finally {
      await s2.close();
    }
  });
});
