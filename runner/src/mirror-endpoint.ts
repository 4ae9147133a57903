import { statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { RunnerError } from './errors.js';

/**
 * The host side of the mirror bridge. The sandbox can only reach a UNIX socket bound into it (sockets in the
 * filesystem cross network namespaces; TCP ports do not), so the mirror is always handed over as a socket:
 * either the mirror already listens on one (`mirrorUnixSocket`, `unix:/path`), or the runner opens a socket in
 * its run directory that forwards each connection to the mirror's TCP address (`http://host:port`).
 */
export interface MirrorEndpoint {
  /** Host path of the UNIX socket bound into the sandbox. */
  socketPath: string;
  /** Path prefix of the mirror URL ('' or '/something'), kept in AIRLOCK_MIRROR_URL. */
  pathPrefix: string;
  /** What the mirror was given as (for provenance). */
  described: string;
  /** Connections forwarded so far (runner-opened sockets only). */
  connections(): number;
  close(): Promise<void>;
}

const MAX_SOCKET_PATH = 107; // sockaddr_un.sun_path (108 bytes with its NUL)

export interface MirrorEndpointOptions {
  unixSocket?: string;
  url?: string;
  /** Where to create the forwarding socket when the mirror is a TCP URL. */
  socketPath: string;
}

export async function openMirrorEndpoint(opts: MirrorEndpointOptions): Promise<MirrorEndpoint | undefined> {
  if (opts.unixSocket) return existingSocket(opts.unixSocket, opts.url ? httpPathPrefix(opts.url) : '', opts.unixSocket);
  if (!opts.url) return undefined;
  if (opts.url.startsWith('unix:')) return existingSocket(opts.url.slice('unix:'.length), '', opts.url);
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch (cause) {
    throw new RunnerError('RUNNER_SPEC_INVALID', `mirror.url: '${opts.url}' is not a URL`, { cause });
  }
  if (u.protocol !== 'http:') {
    throw new RunnerError('RUNNER_SPEC_INVALID', `mirror.url: only http:// and unix: mirrors can be bridged into the sandbox, not ${u.protocol}`);
  }
  if (u.username || u.password) throw new RunnerError('RUNNER_SPEC_INVALID', 'mirror.url: credentials in the URL are not allowed');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 80);
  await probeTcp(host, port, opts.url);
  return forwardingSocket(opts.socketPath, host, port, httpPathPrefix(opts.url), opts.url);
}

function httpPathPrefix(url: string): string {
  if (!/^https?:/.test(url)) return '';
  try {
    return new URL(url).pathname.replace(/\/+$/, '');
  } catch {
    return '';
  }
}

function existingSocket(path: string, pathPrefix: string, described: string): MirrorEndpoint {
  let isSocket = false;
  try {
    isSocket = statSync(path).isSocket();
  } catch {
    // missing
  }
  if (!isSocket) throw new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror socket ${path} does not exist or is not a UNIX socket`);
  return { socketPath: path, pathPrefix, described, connections: () => 0, close: async () => undefined };
}

function probeTcp(host: string, port: number, url: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const s = connect({ host, port });
    const done = (err?: Error) => {
      s.destroy();
      if (err) reject(new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror ${url} is not reachable: ${err.message}`, { cause: err }));
      else resolvePromise();
    };
    s.setTimeout(10_000, () => done(new Error('timed out')));
    s.once('connect', () => done());
    s.once('error', done);
  });
}

async function forwardingSocket(socketPath: string, host: string, port: number, pathPrefix: string, described: string): Promise<MirrorEndpoint> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new RunnerError('RUNNER_INTERNAL', `UNIX socket path too long (${Buffer.byteLength(socketPath)} > ${MAX_SOCKET_PATH} bytes): ${socketPath}; use a shorter workRoot`);
  }
  let count = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    count++;
    const upstream = connect({ host, port });
    open.add(client).add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = (s: Socket) => () => {
      open.delete(s);
    };
    client.on('close', drop(client));
    upstream.on('close', drop(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (e) => reject(new RunnerError('RUNNER_INTERNAL', `cannot listen on ${socketPath}: ${e.message}`, { cause: e })));
    server.listen(socketPath, resolvePromise);
  });
  return {
    socketPath,
    pathPrefix,
    described,
    connections: () => count,
    close: () =>
      new Promise<void>((resolvePromise) => {
        for (const s of open) s.destroy();
        server.close(() => resolvePromise());
      }),
  };
}
