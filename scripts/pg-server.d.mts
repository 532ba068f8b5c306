export interface PostgresServer {
  /** postgres://latchkey:<password>@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The postmaster's process id while it runs. */
  readonly pid: number | undefined;
  /** Fast shutdown; resolves when the server has exited. */
  stop(): Promise<void>;
  /** Start it again on the same port and data; resolves when it accepts connections. */
  start(): Promise<void>;
}
export function postgresBin(): string | undefined;
export function freePort(): Promise<number>;
export function startPostgres(dir: string, stops?: (() => Promise<void>)[], options?: { detached?: boolean }): Promise<PostgresServer>;
