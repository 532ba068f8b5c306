/**
 * A TCP load balancer in front of the cluster's nodes: the one address the shared issuer URL
 * names, as an operator's balancer would be. Each new connection goes to the node `target`
 * names at that moment; `cut` ends every connection to a node (what a client sees when the
 * balancer drains it), so a client's next request opens a connection to whichever node is
 * the target then. It records what each client sent, so a test can read the request heads
 * (a reconnecting feed subscriber's Last-Event-ID) without a proxy that parses HTTP.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the client sent on one proxied connection, and to which node. */
export interface Connection {
  node: number;
  /** The bytes the client sent, as latin1 text (request heads are ASCII), capped at 64 KiB. */
  sent: string;
}

const MAX_RECORDED = 64 * 1024;

export interface Balancer {
  readonly port: number;
  /** Index (into the backend ports) of the node new connections go to. */
  target: number;
  /** Every connection proxied so far, oldest first. */
  readonly connections: readonly Connection[];
  /** End every open connection to `node` (both sides). */
  cut(node: number): void;
  close(): Promise<void>;
}

/** Listen on 127.0.0.1:`port` and forward to 127.0.0.1:`backends[target]`. */
export async function startBalancer(port: number, backends: () => readonly number[]): Promise<Balancer> {
  const open = new Set<{ node: number; client: Socket; upstream: Socket }>();
  const connections: Connection[] = [];
  const balancer = {
    port,
    target: 0,
    connections,
    cut(node: number) {
      for (const c of open) {
        if (c.node !== node) continue;
        c.client.destroy();
        c.upstream.destroy();
        open.delete(c);
      }
    },
    close: () => closeServer(server, open),
  };
  const server: Server = createServer((client) => {
    const node = balancer.target;
    const port = backends()[node];
    if (port === undefined) {
      // no such node (yet): refused, as a balancer with no backend would
      client.destroy();
      return;
    }
    const record: Connection = { node, sent: '' };
    connections.push(record);
    const upstream = connect(port, '127.0.0.1');
    const entry = { node, client, upstream };
    open.add(entry);
    const end = () => {
      open.delete(entry);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d: Buffer) => {
      if (record.sent.length < MAX_RECORDED) record.sent += d.toString('latin1');
    });
    client.pipe(upstream);
    upstream.pipe(client);
    // a node that is down or was killed: the client sees its connection end, as behind a real balancer
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return balancer;
}

function closeServer(server: Server, open: Set<{ client: Socket; upstream: Socket }>): Promise<void> {
  for (const c of open) {
    c.client.destroy();
    c.upstream.destroy();
  }
  open.clear();
  return new Promise((resolve) => server.close(() => resolve()));
}
