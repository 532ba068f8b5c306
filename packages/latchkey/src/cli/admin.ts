/**
 * `latchkey users`, `latchkey sessions`, `latchkey audit`: the admin API's operations from a
 * shell, against the local store (as `keys` does) or a running server (`--url`). `--json` prints
 * exactly the admin API's JSON.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditPage, AuditQuery } from '../admin/service.js';
import type { SessionView, UserView } from '../admin/views.js';
import { AUDIT_PAGE_MAX, AUDIT_TYPES, type AuditType } from '../audit/log.js';
import type { AuditEvent } from '../store/store.js';
import { adminKeyFrom, asCommandError, localBackend, remoteBackend, serverUrl, type AdminBackend } from './admin-backend.js';
import {
  configFrom,
  EXIT,
  parse,
  printJson,
  showHelp,
  STORE_ENV,
  STORE_OPTIONS,
  takeOperand,
  usageError,
  type AnyEnvName,
  type CommandSpec,
  type OptionSpec,
  type Parsed,
} from './command.js';

const TARGET_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: "print the admin API's JSON" },
  url: { type: 'string', arg: 'URL', help: "a running server's base URL: use its admin API, not the local store", env: 'LATCHKEY_URL' },
  'admin-key-file': { type: 'string', arg: 'FILE', help: 'with --url: read the admin key from FILE instead of LATCHKEY_ADMIN_KEY' },
  ...STORE_OPTIONS,
};

const TARGET_ENV: readonly AnyEnvName[] = ['LATCHKEY_URL', 'LATCHKEY_ADMIN_KEY', ...STORE_ENV];

const TARGET_ABOUT = `Without --url (or LATCHKEY_URL) these commands work on the local store as the server opens it
(the data dir's SQLite file, or LATCHKEY_DATABASE_URL) and never create one; a running server
refuses the sessions they end as it does another node's, once its revocation feed reads the event.
With --url they call that server's admin API with the admin key from LATCHKEY_ADMIN_KEY or
--admin-key-file (never a flag: the command line is visible to every local user). --json prints the
admin API's JSON, the same from both.`;

export const usersCommand: CommandSpec = {
  name: 'users',
  summary: 'find, show, disable or enable a user, or set their roles',
  usage: [
    'latchkey users find <email> [--json]',
    'latchkey users show <user-id> [--json]',
    'latchkey users disable <user-id> [--json]     ends every session of theirs at once',
    'latchkey users enable <user-id> [--json]',
    'latchkey users roles <user-id> <role>... [--json]   replaces their roles',
    'latchkey users roles <user-id> --none [--json]      removes every role',
  ],
  about: TARGET_ABOUT,
  options: { ...TARGET_OPTIONS, none: { type: 'boolean', help: 'roles: set no roles at all' } },
  env: TARGET_ENV,
  run: users,
};

export const sessionsCommand: CommandSpec = {
  name: 'sessions',
  summary: "list a user's sessions, or end one or all of them",
  usage: [
    'latchkey sessions list <user-id> [--json]',
    'latchkey sessions revoke [--] <handle> [--json]      ends one session (its tokens with it)',
    'latchkey sessions revoke --user <user-id> [--json]   ends every session of the user',
  ],
  about: TARGET_ABOUT,
  options: { ...TARGET_OPTIONS, user: { type: 'string', arg: 'ID', help: 'revoke: every session of this user' } },
  env: TARGET_ENV,
  run: sessions,
};

export const auditCommand: CommandSpec = {
  name: 'audit',
  summary: 'read the audit log, or follow it',
  usage: ['latchkey audit [--user ID] [--type TYPE] [--limit N] [--before ID] [--json]', 'latchkey audit --follow [--user ID] [--type TYPE] [--limit N] [--json]'],
  about: `Newest first, a page at a time (--before: the "next" of the previous page). --follow prints the
last --limit events (default 10), oldest first, then each new one as it is written (polled every
second) until interrupted (Ctrl-C: exit 0); with --json, one JSON object per line.
Types: ${AUDIT_TYPES.join(', ')}.

${TARGET_ABOUT}`,
  options: {
    ...TARGET_OPTIONS,
    user: { type: 'string', arg: 'ID', help: "only this user's events" },
    type: { type: 'string', arg: 'TYPE', help: 'only events of this type' },
    limit: { type: 'string', arg: 'N', help: `events per page, 1 to ${AUDIT_PAGE_MAX} (default 100; with --follow, 10 first)` },
    before: { type: 'string', arg: 'ID', help: 'only events older than this id' },
    follow: { type: 'boolean', short: 'f', help: 'keep printing new events until interrupted' },
  },
  env: TARGET_ENV,
  run: audit,
};

// ---- output -------------------------------------------------------------------------------

function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const userText = (u: UserView): string =>
  columns([
    ['id', u.id],
    ['email', u.email],
    ['roles', u.roles.length ? u.roles.join(', ') : '(none)'],
    ['disabled', u.disabled ? 'yes' : 'no'],
    ['created', u.createdAt],
  ]);

const sessionsText = (list: SessionView[]): string =>
  list.length === 0
    ? 'no live sessions\n'
    : columns([['HANDLE', 'DEVICE', 'IP', 'CREATED', 'LAST SEEN', 'EXPIRES'], ...list.map((s) => [s.handle, s.device, s.ip, s.createdAt, s.lastSeenAt, s.expiresAt])]);

const iso = (t: number) => new Date(t * 1000).toISOString();

const eventRow = (e: AuditEvent): string[] => [
  String(e.id),
  iso(e.at),
  e.type,
  e.userId ?? '-',
  e.session ?? '-',
  e.ip ?? '-',
  Object.keys(e.detail).length ? JSON.stringify(e.detail) : '',
];
const EVENT_HEAD = ['ID', 'AT', 'TYPE', 'USER', 'SESSION', 'IP', 'DETAIL'];

// ---- plumbing -------------------------------------------------------------------------------

/** The backend the flags name: --url (or LATCHKEY_URL) for a server, else the local store. */
async function backendFor(spec: CommandSpec, values: Parsed['values']): Promise<AdminBackend | number> {
  const urlFlag = values.url as string | undefined;
  const url = urlFlag ?? (process.env.LATCHKEY_URL || undefined);
  if (url === undefined) {
    if (values['admin-key-file'] !== undefined) return usageError(spec, '--admin-key-file goes with --url');
    return localBackend(await configFrom(values));
  }
  if (values['data-dir'] !== undefined || values.config !== undefined) {
    return usageError(spec, `--url${urlFlag === undefined ? ' (from LATCHKEY_URL)' : ''} sends the command to a server: --data-dir and --config are for the local store`);
  }
  const target = serverUrl(url);
  if ('problem' in target) return usageError(spec, target.problem);
  const key = adminKeyFrom(values['admin-key-file'] as string | undefined);
  if (!key) return usageError(spec, 'the admin API needs the admin key: set LATCHKEY_ADMIN_KEY, or give --admin-key-file');
  return remoteBackend(target.root, key);
}

/** Run `fn` against the backend, report a refusal on stderr (exit 1), always close it. */
async function withBackend(spec: CommandSpec, values: Parsed['values'], fn: (b: AdminBackend) => Promise<number>): Promise<number> {
  let backend: AdminBackend | number;
  try {
    backend = await backendFor(spec, values);
  } catch (err) {
    return failure(spec, err);
  }
  if (typeof backend === 'number') return backend;
  try {
    return await fn(backend);
  } catch (err) {
    return failure(spec, err);
  } finally {
    await backend.close();
  }
}

function failure(spec: CommandSpec, err: unknown): number {
  const e = asCommandError(err);
  if (!e) throw err;
  process.stderr.write(`latchkey ${spec.name}: ${e.message} (${e.code})\n`);
  return EXIT.failed;
}

/** `<sub> <operand>` and the flags after them; the operand taken literally (it may begin with '-'). */
function subcommand(spec: CommandSpec, args: string[]) {
  const [sub, ...rest] = args;
  const operand = takeOperand(spec, rest);
  const parsed = parse(spec, rest);
  const operands = operand === undefined ? parsed.positionals : [operand, ...parsed.positionals];
  return { sub, operands, ...parsed };
}

// ---- users ---------------------------------------------------------------------------------

async function users(args: string[]): Promise<number> {
  const spec = usersCommand;
  const { sub, operands, values, help } = subcommand(spec, args);
  if (help || sub === 'help' || sub === '--help' || sub === '-h') return showHelp(spec);
  const json = values.json === true;
  switch (sub) {
    case 'find':
    case 'show':
    case 'disable':
    case 'enable': {
      if (operands.length !== 1) return usageError(spec, `users ${sub} needs one ${sub === 'find' ? 'email' : 'user id'}`);
      if (values.none) return usageError(spec, '--none goes with users roles');
      const arg = operands[0]!;
      return withBackend(spec, values, async (b) => {
        if (sub === 'disable') {
          const r = await b.disableUser(arg);
          if (json) printJson(r);
          else process.stdout.write(`${userText(r.user)}disabled; ended ${r.revoked} session${r.revoked === 1 ? '' : 's'}\n`);
          return EXIT.ok;
        }
        const r = sub === 'find' ? await b.findUser(arg) : sub === 'show' ? await b.showUser(arg) : await b.enableUser(arg);
        if (json) printJson(r);
        else process.stdout.write(userText(r.user) + (sub === 'enable' ? 'enabled\n' : ''));
        return EXIT.ok;
      });
    }
    case 'roles': {
      const [id, ...roles] = operands;
      if (id === undefined) return usageError(spec, 'users roles needs a user id');
      if (values.none ? roles.length > 0 : roles.length === 0) {
        return usageError(spec, 'users roles needs the new roles, or --none to remove them all (not both)');
      }
      return withBackend(spec, values, async (b) => {
        const r = await b.setRoles(id, { roles });
        if (json) printJson(r);
        else process.stdout.write(userText(r.user));
        return EXIT.ok;
      });
    }
    default:
      return usageError(spec, sub === undefined ? 'which subcommand?' : `unknown subcommand "${sub}"`);
  }
}

// ---- sessions ------------------------------------------------------------------------------

async function sessions(args: string[]): Promise<number> {
  const spec = sessionsCommand;
  const { sub, operands, values, help } = subcommand(spec, args);
  if (help || sub === 'help' || sub === '--help' || sub === '-h') return showHelp(spec);
  const json = values.json === true;
  const user = values.user as string | undefined;
  if (sub === 'list') {
    if (operands.length !== 1 || user !== undefined) return usageError(spec, 'sessions list needs one user id');
    return withBackend(spec, values, async (b) => {
      const r = await b.listSessions(operands[0]!);
      if (json) printJson(r);
      else process.stdout.write(sessionsText(r.sessions));
      return EXIT.ok;
    });
  }
  if (sub === 'revoke') {
    if (user !== undefined ? operands.length !== 0 : operands.length !== 1) {
      return usageError(spec, 'sessions revoke needs one session handle, or --user <user-id>');
    }
    return withBackend(spec, values, async (b) => {
      if (user !== undefined) {
        const r = await b.revokeUserSessions(user);
        if (json) printJson(r);
        else process.stdout.write(`ended ${r.revoked} session${r.revoked === 1 ? '' : 's'} of ${user}\n`);
        return EXIT.ok;
      }
      // the admin API answers 204 with no body; scripts get the count --user would give
      await b.revokeSession(operands[0]!);
      if (json) printJson({ revoked: 1 });
      else process.stdout.write(`ended session ${operands[0]!}\n`);
      return EXIT.ok;
    });
  }
  return usageError(spec, sub === undefined ? 'which subcommand?' : `unknown subcommand "${sub}"`);
}

// ---- audit ---------------------------------------------------------------------------------

const isAuditType = (t: string): t is AuditType => (AUDIT_TYPES as readonly string[]).includes(t);

/** A decimal integer from min to max, or undefined: the flags arrive as text. */
function integerFlag(text: string, min: number, max: number): number | undefined {
  if (text.length === 0 || text.length > 15) return undefined;
  for (const ch of text) if (ch < '0' || ch > '9') return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}

async function audit(args: string[]): Promise<number> {
  const spec = auditCommand;
  const { values, positionals, help } = parse(spec, args);
  if (help) return showHelp(spec);
  if (positionals.length) return usageError(spec, `unexpected argument "${positionals[0]}"`);
  const query: AuditQuery = {};
  if (values.user !== undefined) query.userId = values.user as string;
  if (values.type !== undefined) {
    const t = values.type as string;
    if (!isAuditType(t)) return usageError(spec, `--type must be one of ${AUDIT_TYPES.join(', ')}`);
    query.type = t;
  }
  if (values.limit !== undefined) {
    const n = integerFlag(values.limit as string, 1, AUDIT_PAGE_MAX);
    if (n === undefined) return usageError(spec, `--limit must be a whole number from 1 to ${AUDIT_PAGE_MAX}`);
    query.limit = n;
  }
  if (values.before !== undefined) {
    const n = integerFlag(values.before as string, 1, Number.MAX_SAFE_INTEGER);
    if (n === undefined) return usageError(spec, '--before must be an event id (a positive whole number)');
    query.before = n;
  }
  const json = values.json === true;
  if (values.follow === true) {
    if (query.before !== undefined) return usageError(spec, '--follow starts from the newest events: no --before');
    return withBackend(spec, values, (b) => follow(b, query, json));
  }
  return withBackend(spec, values, async (b) => {
    const page = await b.auditPage(query);
    if (json) printJson(page);
    else if (page.events.length === 0) process.stdout.write('no events\n');
    else {
      process.stdout.write(columns([EVENT_HEAD, ...page.events.map(eventRow)]));
      if (page.next !== null) process.stdout.write(`older: latchkey audit --before ${page.next}\n`);
    }
    return EXIT.ok;
  });
}

const FOLLOW_INTERVAL_MS = 1000;
/** Events read per poll; more since the last poll are read page by page. */
const FOLLOW_PAGE = 200;

/**
 * Print the last events, then every new one, oldest first, until SIGINT. Reads the newest page
 * each second and prints what it has not printed: ids are handed out in order but on PostgreSQL
 * a transaction may commit after a later one, so an event is judged new by its id not having
 * been seen, not by being above the last id printed.
 */
async function follow(b: AdminBackend, query: AuditQuery, json: boolean): Promise<number> {
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once('SIGINT', onSigint);
  const print = (events: AuditEvent[]) => {
    for (const e of events) process.stdout.write(json ? JSON.stringify(e) + '\n' : columns([eventRow(e)]));
  };
  try {
    const first = await b.auditPage({ ...query, limit: query.limit ?? 10 });
    const seen = new Set(first.events.map((e) => e.id));
    // nothing older than what the first page showed is printed later
    let floor = first.events.length ? first.events[first.events.length - 1]!.id : 0;
    if (!json) process.stdout.write(columns([EVENT_HEAD]));
    print([...first.events].reverse());
    while (!stop.signal.aborted) {
      try {
        await sleep(FOLLOW_INTERVAL_MS, undefined, { signal: stop.signal });
      } catch {
        break;
      }
      const fresh: AuditEvent[] = [];
      let page: AuditPage = await b.auditPage({ ...query, limit: FOLLOW_PAGE });
      for (;;) {
        let reachedSeen = false;
        for (const e of page.events) {
          if (e.id <= floor) {
            reachedSeen = true;
            break;
          }
          if (seen.has(e.id)) reachedSeen = true;
          else fresh.push(e);
        }
        if (reachedSeen || page.next === null) break;
        page = await b.auditPage({ ...query, limit: FOLLOW_PAGE, before: page.next });
      }
      fresh.sort((x, y) => x.id - y.id);
      print(fresh);
      for (const e of fresh) seen.add(e.id);
      // forget ids far below the newest: an event commits late by moments, not thousands of events
      if (seen.size > 4 * FOLLOW_PAGE) {
        const ids = [...seen].sort((x, y) => y - x);
        floor = Math.max(floor, ids[2 * FOLLOW_PAGE]!);
        for (const id of ids.slice(2 * FOLLOW_PAGE)) seen.delete(id);
      }
    }
    return EXIT.ok;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

