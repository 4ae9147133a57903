import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';

/** `host` as it is written in a URL: IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export interface ListenOptions {
  /** Default 127.0.0.1: services bind loopback unless the operator says otherwise. */
  host?: string;
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Only picks the URL's scheme; the server itself is already HTTP or HTTPS. */
  tls?: unknown;
}

export interface Listening {
  host: string;
  port: number;
  /** `http(s)://host:port` with the host as the operator gave it (it may end up in certificates and policies). */
  url: string;
}

/** Binds `server` and resolves once it listens; rejects with the bind error (EADDRINUSE, EACCES, …). */
export async function listen(server: Server, options: ListenOptions): Promise<Listening> {
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return { host, port, url: `${options.tls ? 'https' : 'http'}://${urlHost(host)}:${port}` };
}

/** Stops listening and drops every open connection (in-flight requests included). */
export function closeNow(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

/**
 * A loopback port the kernel has just handed out and released, for a child daemon that takes its port from a
 * config file. Nothing reserves it: another process can take it before the daemon binds it, so callers start the
 * daemon again on a fresh port when it reports the address in use.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
