import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { MirrorStore } from '@airlock/cas';
import { listen } from '@airlock/core';
import { refuseUnauthorized, spiffeAuthorizer } from '@airlock/identity';
import { MirrorError } from '../errors.js';
import { LookupCache, ResponseCache, type MirrorContext } from './context.js';
import { createRequestHandler } from './router.js';
import {
  isMessage,
  type WorkerConnectionMessage,
  type WorkerFailedMessage,
  type WorkerListenMessage,
  type WorkerStoreOpener,
} from './worker-protocol.js';

export interface MirrorTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA bundle for client certificates; with it (and requestClientCert not false) the server requires mTLS. */
  ca?: string | Buffer;
  /** Default true when `ca` is given. */
  requestClientCert?: boolean;
  /**
   * With `ca`: authorize clients by the SPIFFE ID of their X509-SVID (exact IDs or anchored `^…$` patterns); others
   * get 403 naming their ID, a certificate that is not an SVID 401.
   */
  allowSpiffeIds?: readonly string[];
}

export interface MirrorServerOptions {
  store: MirrorStore;
  /**
   * Absolute base URL clients reach this mirror at (npm tarball URLs point there; PyPI file links are relative).
   * Without it, npm tarball URLs are built from each request's own Host, so the mirror works directly and through
   * the runner's bridge alike.
   */
  publicUrl?: string;
  /** `publicUrl` is only the listening address, not the operator's choice (worker processes). */
  publicUrlIsDefault?: boolean;
  tls?: MirrorTlsOptions;
  /** Unexpected (non-HTTP) errors; the client only sees an opaque 500. */
  onError?: (err: unknown, req: IncomingMessage) => void;
}

export interface MirrorServer {
  server: HttpServer | HttpsServer;
  /** Sets the default public URL after the fact (startMirrorServer: the listening address, once known). */
  setPublicUrl(url: string): void;
  /** Request targets remembered as blob routes in this process (observability; bounded). */
  readonly cachedRoutes: number;
}

export interface StartMirrorServerOptions extends MirrorServerOptions {
  host?: string;
  port?: number;
  /**
   * Processes serving the listening socket (default 1 = this process only). With N > 1, N - 1 worker processes
   * open the same store directory; this process accepts every connection and hands them out round-robin (itself
   * included): a single Node process tops out around one core.
   */
  workers?: number;
  /**
   * How worker processes open the store when it is not just `store.dir` (S3 blobs, a database index): without
   * it they open the directory, which for such a store would be the wrong (empty) blob store.
   */
  workerStore?: WorkerStoreOpener;
  /** Worker entry point (default: the compiled `worker-main.js` beside this module). */
  workerScript?: string;
}

export interface RunningMirrorServer {
  /** Where the server listens (connect here). */
  url: string;
  /** The base URL written into documents (= url unless `publicUrl` was given). */
  publicUrl: string;
  server: HttpServer | HttpsServer;
  /** Pids of the live worker processes (empty with `workers: 1`); a crashed worker is replaced. */
  readonly workerPids: number[];
  close(): Promise<void>;
}

/** Normalises and checks a public URL: http(s), no query/fragment/credentials, no trailing slash. */
export function normalizePublicUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MirrorError('MIRROR_CONFIG_INVALID', `publicUrl '${url}' is not a URL`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || u.password) {
    throw new MirrorError(
      'MIRROR_CONFIG_INVALID',
      `publicUrl '${url}' must be a plain http(s) URL without query, fragment or credentials`,
    );
  }
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

/** The read-only mirror as a node:http(s) server, not yet listening. */
export function createMirrorServer(options: MirrorServerOptions): MirrorServer {
  let publicUrl = options.publicUrl !== undefined ? normalizePublicUrl(options.publicUrl) : undefined;
  const publicUrlConfigured = options.publicUrl !== undefined && options.publicUrlIsDefault !== true;
  const tls = options.tls;
  const fallbackUrl = (req: IncomingMessage): string => {
    // Without a configured URL: the address this connection reached (never the client-controlled Host header).
    const socket = req.socket;
    let addr = socket.localAddress ?? '127.0.0.1';
    if (addr.startsWith('::ffff:')) addr = addr.slice('::ffff:'.length);
    const host = addr.includes(':') ? `[${addr}]` : addr;
    const scheme = (socket as TLSSocket).encrypted ? 'https' : 'http';
    return `${scheme}://${host}:${socket.localPort ?? 80}`;
  };
  const ctx: MirrorContext = {
    store: options.store,
    publicUrl: (req) => publicUrl ?? fallbackUrl(req),
    publicPath: (req) => new URL(publicUrl ?? fallbackUrl(req)).pathname.replace(/\/+$/, ''),
    publicUrlConfigured,
    cache: new ResponseCache(),
    files: new LookupCache(),
    routes: new LookupCache(),
  };
  const handler = withSpiffeAuthorization(createRequestHandler(ctx, options.onError), tls);
  let server: HttpServer | HttpsServer;
  if (tls) {
    const requireClient = tls.ca !== undefined && (tls.requestClientCert ?? true);
    server = createHttpsServer(
      {
        cert: tls.cert,
        key: tls.key,
        ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
        requestCert: requireClient,
        rejectUnauthorized: requireClient,
        minVersion: 'TLSv1.2',
      },
      handler,
    );
  } else {
    server = createHttpServer(handler);
  }
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  return {
    server,
    setPublicUrl(url: string) {
      publicUrl = normalizePublicUrl(url);
    },
    get cachedRoutes() {
      return ctx.routes.size;
    },
  };
}

/** Wraps the handler with the operator's SPIFFE ID allow list (only when client certificates are required). */
function withSpiffeAuthorization(
  handler: ReturnType<typeof createRequestHandler>,
  tls: MirrorTlsOptions | undefined,
): ReturnType<typeof createRequestHandler> {
  if (tls?.ca === undefined || tls.allowSpiffeIds === undefined) return handler;
  if (tls.requestClientCert === false)
    throw new MirrorError('MIRROR_CONFIG_INVALID', 'allowSpiffeIds needs client certificates (requestClientCert)');
  let authorize: ReturnType<typeof spiffeAuthorizer>;
  try {
    authorize = spiffeAuthorizer({ trustBundle: tls.ca, allow: tls.allowSpiffeIds });
  } catch (err) {
    throw new MirrorError('MIRROR_CONFIG_INVALID', (err as Error).message, { cause: err });
  }
  return (req, res) => {
    if (!refuseUnauthorized(authorize(req), res)) handler(req, res);
  };
}

/** Creates and starts the mirror (default 127.0.0.1, ephemeral port); `url` is its base URL. */
export async function startMirrorServer(options: StartMirrorServerOptions): Promise<RunningMirrorServer> {
  const mirror = createMirrorServer(options);
  const { server } = mirror;
  const host = options.host ?? '127.0.0.1';
  await listen(server as HttpServer, { ...options, host });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${options.tls ? 'https' : 'http'}://${shownHost}:${address.port}`;
  if (options.publicUrl === undefined) mirror.setPublicUrl(url);
  const publicUrl = options.publicUrl !== undefined ? normalizePublicUrl(options.publicUrl) : url;
  const closeServer = () =>
    new Promise<void>((resolve, reject) => {
      server.close((err) =>
        err && (err as { code?: string }).code !== 'ERR_SERVER_NOT_RUNNING' ? reject(err) : resolve(),
      );
      server.closeAllConnections();
      // Sockets handed to workers are counted by Node against this server until a worker reports them closed; a
      // worker that died (and left Node's list) never does, and the callback would never come. The listening
      // socket is closed by now and the workers have exited (closed first), so nothing is left to wait for.
      if (workers) resolve();
    });
  let workers: WorkerPool | undefined;
  try {
    if ((options.workers ?? 1) > 1) {
      workers = await WorkerPool.start(
        server,
        (options.workers ?? 1) - 1,
        {
          type: 'airlock-mirror-listen',
          storeDir: options.store.dir,
          ...(options.workerStore ? { store: options.workerStore } : {}),
          publicUrl,
          publicUrlConfigured: options.publicUrl !== undefined,
          ...(options.tls ? { tls: pemOptions(options.tls) } : {}),
        },
        options.workerScript,
      );
    }
  } catch (err) {
    await closeServer();
    throw err;
  }
  return {
    url,
    publicUrl,
    server,
    get workerPids() {
      return workers?.pids ?? [];
    },
    close: async () => {
      await workers?.close();
      await closeServer();
    },
  };
}

function pemOptions(tls: MirrorTlsOptions): NonNullable<WorkerListenMessage['tls']> {
  const text = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('utf8'));
  return {
    cert: text(tls.cert),
    key: text(tls.key),
    ...(tls.ca !== undefined ? { ca: text(tls.ca) } : {}),
    ...(tls.requestClientCert !== undefined ? { requestClientCert: tls.requestClientCert } : {}),
    ...(tls.allowSpiffeIds !== undefined ? { allowSpiffeIds: [...tls.allowSpiffeIds] } : {}),
  };
}

/**
 * Worker processes serving connections the primary accepted. The primary hands each new connection to the next
 * process in turn (itself included) with Node's documented `send(message, socket)`; the socket is accepted paused
 * (`pauseOnConnect`), so nothing is read before it moves. Workers sharing the listening socket instead would each
 * accept as they wake: measured with 16 wrk connections, 13 went to one process and 3 to the other.
 */
class WorkerPool {
  private closing = false;
  private restarts = 0;
  private turn = 0;
  private readonly children = new Set<ChildProcess>();
  /** Children that said they are ready: only these are handed connections (a respawning one would drop them). */
  private readonly ready = new Set<ChildProcess>();

  private constructor(
    private readonly server: HttpServer | HttpsServer,
    private readonly message: WorkerListenMessage,
    private readonly script: string,
  ) {}

  static async start(
    server: HttpServer | HttpsServer,
    count: number,
    message: WorkerListenMessage,
    script?: string,
  ): Promise<WorkerPool> {
    const entry = script ?? fileURLToPath(new URL('./worker-main.js', import.meta.url));
    if (!existsSync(entry))
      throw new MirrorError(
        'MIRROR_CONFIG_INVALID',
        `mirror worker entry point ${entry} does not exist (build the package)`,
      );
    const pool = new WorkerPool(server, message, entry);
    try {
      await Promise.all(Array.from({ length: count }, () => pool.spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    pool.distribute();
    return pool;
  }

  /** From now on this process accepts without reading and deals connections out round-robin. */
  private distribute(): void {
    const server = this.server;
    const own = server.listeners('connection') as ((socket: Socket) => void)[];
    const serveHere = (socket: Socket): void => {
      for (const listener of own) listener.call(server, socket);
      socket.resume();
    };
    (server as unknown as { pauseOnConnect: boolean }).pauseOnConnect = true;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      const live = [...this.ready].filter((c) => c.connected);
      const pick = this.turn++ % (live.length + 1);
      const child = live[pick - 1];
      if (this.closing || child === undefined) return serveHere(socket);
      const message: WorkerConnectionMessage = { type: 'airlock-mirror-connection' };
      child.send(message, socket, { keepOpen: false }, (err) => {
        // Not handed over (the worker is going away): serve it here rather than drop it.
        if (err && !socket.destroyed) serveHere(socket);
      });
    });
  }

  get pids(): number[] {
    return [...this.children].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  private spawn(): Promise<void> {
    const child = fork(this.script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.children.add(child);
    // IPC errors (EPIPE to a worker that just died) are not fatal here: its 'exit' handler below takes over.
    child.on('error', () => undefined);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new MirrorError('MIRROR_CONFIG_INVALID', 'mirror worker did not start within 30 s')),
        30_000,
      );
      child.on('message', (m: unknown) => {
        if (isMessage(m, 'airlock-mirror-ready')) {
          clearTimeout(timer);
          this.ready.add(child);
          resolve();
        } else if (isMessage<WorkerFailedMessage>(m, 'airlock-mirror-failed')) {
          clearTimeout(timer);
          reject(new MirrorError('MIRROR_CONFIG_INVALID', `mirror worker failed to start: ${m.message}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        this.children.delete(child);
        this.ready.delete(child);
        reject(new MirrorError('MIRROR_INTERNAL', `mirror worker exited during start (${signal ?? code})`));
        // A worker that dies while serving is replaced (the socket stays open in this process), within reason.
        if (!this.closing && this.restarts++ < 20)
          setTimeout(() => {
            if (!this.closing) void this.spawn().catch(() => undefined);
          }, 1_000).unref();
      });
      child.send(this.message);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (child.connected) child.send({ type: 'airlock-mirror-close' });
            else child.kill('SIGTERM');
          }),
      ),
    );
  }
}
