/** Database URLs as they may be shown: never with the password. */

/** A postgres:// or postgresql:// URL that parses; says nothing of its contents when not. */
export function isPostgresUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const u = new URL(url);
  return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '';
}

/** The URL for logs and messages: user, host, port and database; no password, no parameters (they may hold one too). */
export function redactUrl(url: string): string {
  if (!URL.canParse(url)) return '(invalid URL)';
  const u = new URL(url);
  const user = u.username ? `${u.username}@` : '';
  return `${u.protocol}//${user}${u.host}${u.pathname}`;
}
