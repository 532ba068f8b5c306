export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The server's process id while it runs. */
  readonly pid: number | undefined;
  /** SIGTERM; resolves when the server has exited. */
  stop(): Promise<void>;
  /** Start it again on the same port; resolves when it answers PING. */
  start(): Promise<void>;
}
export function startRedis(dir: string, stops?: (() => Promise<void>)[], options?: { detached?: boolean }): Promise<RedisServer>;
export function redisPing(port: number): Promise<boolean>;
