export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  /** The redis-server process. */
  pid: number;
  /** SIGTERM; resolves when the server has exited. */
  stop(): Promise<void>;
}
export function startRedis(dir: string, stops?: (() => Promise<void>)[]): Promise<RedisServer>;
