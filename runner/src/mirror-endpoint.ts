import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import {
  Agent,
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestOptions,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { RunnerError } from './errors.js';

/**
 * The host side of the mirror bridge. The sandbox can only reach a UNIX socket bound into it (sockets in the
 * filesystem cross network namespaces; TCP ports do not), so the mirror is always handed over as a socket:
 * the runner opens one in its run directory and proxies it to the mirror, whether the mirror listens on a UNIX
 * socket itself (`mirrorUnixSocket`, `unix:/path`) or on TCP (`http://host:port`).
 */
export interface MirrorEndpoint {
  /** Host path of the UNIX socket bound into the sandbox. */
  socketPath: string;
  /** Path prefix of the mirror URL ('' or '/something'), kept in AIRLOCK_MIRROR_URL. */
  pathPrefix: string;
  /** What the mirror was given as (for provenance). */
  described: string;
  /** Connections accepted from the sandbox so far. */
  connections(): number;
  /** Every complete 200 response to a GET the build received through the bridge, with the sha256 of its body. */
  fetched(): readonly MirrorFetch[];
  /** Requests the bridge refused (a body, another method): hermeticity events, the run fails on any. */
  refused(): readonly RefusedRequest[];
  /** A GET to the mirror from the runner itself (not recorded), e.g. the blob lookup API. */
  get(path: string): Promise<{ status: number; body: Buffer }>;
  close(): Promise<void>;
}

/** One response the build got from the mirror, as relayed (and hashed) by the bridge. */
export interface MirrorFetch {
  path: string;
  sha256: string;
  size: number;
}

/** A request the bridge refused without contacting the mirror. */
export interface RefusedRequest {
  method: string;
  path: string;
  reason: string;
}

const MAX_SOCKET_PATH = 107; // sockaddr_un.sun_path (108 bytes with its NUL)

export interface MirrorEndpointOptions {
  unixSocket?: string;
  url?: string;
  /** Where to create the bridge socket bound into the sandbox. */
  socketPath: string;
  /** Operator's client certificate (the runner's X509-SVID) for an https:// mirror requiring mTLS. */
  clientTls?: MirrorClientTls;
}

/** PEM material the bridge presents to (and trusts from) an https:// mirror. */
export interface MirrorClientTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** Trust bundle for the mirror's server certificate (default: Node's CAs). */
  ca?: string | Buffer;
}

type Upstream = { socketPath: string } | { host: string; port: number; tls?: MirrorClientTls };

export async function openMirrorEndpoint(opts: MirrorEndpointOptions): Promise<MirrorEndpoint | undefined> {
  if (opts.unixSocket)
    return recordingProxy(
      opts.socketPath,
      existingSocket(opts.unixSocket),
      opts.url ? httpPathPrefix(opts.url) : '',
      opts.unixSocket,
    );
  if (!opts.url) return undefined;
  if (opts.url.startsWith('unix:'))
    return recordingProxy(opts.socketPath, existingSocket(opts.url.slice('unix:'.length)), '', opts.url);
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch (cause) {
    throw new RunnerError('RUNNER_SPEC_INVALID', `mirror.url: '${opts.url}' is not a URL`, { cause });
  }
  if (u.protocol !== 'http:' && !(u.protocol === 'https:' && opts.clientTls)) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `mirror.url: only http://, unix: and (with a client certificate) https:// mirrors can be bridged into the sandbox, not ${u.protocol}`,
    );
  }
  if (u.username || u.password)
    throw new RunnerError('RUNNER_SPEC_INVALID', 'mirror.url: credentials in the URL are not allowed');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const tls = u.protocol === 'https:' ? opts.clientTls : undefined;
  const port = Number(u.port || (tls ? 443 : 80));
  await probeTcp(host, port, opts.url);
  return recordingProxy(opts.socketPath, { host, port, ...(tls ? { tls } : {}) }, httpPathPrefix(opts.url), opts.url);
}

function httpPathPrefix(url: string): string {
  if (!/^https?:/.test(url)) return '';
  try {
    return new URL(url).pathname.replace(/\/+$/, '');
  } catch {
    return '';
  }
}

function existingSocket(path: string): Upstream {
  let isSocket = false;
  try {
    isSocket = statSync(path).isSocket();
  } catch {
    // missing
  }
  if (!isSocket)
    throw new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror socket ${path} does not exist or is not a UNIX socket`);
  return { socketPath: path };
}

function probeTcp(host: string, port: number, url: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const s = connect({ host, port });
    const done = (err?: Error) => {
      s.destroy();
      if (err)
        reject(
          new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror ${url} is not reachable: ${err.message}`, {
            cause: err,
          }),
        );
      else resolvePromise();
    };
    s.setTimeout(10_000, () => done(new Error('timed out')));
    s.once('connect', () => done());
    s.once('error', done);
  });
}

// Request headers the bridge passes on; everything else (hop-by-hop, Range and conditionals, credentials, bodies'
// framing) is dropped, so each upstream request is a fresh, bodiless HTTP/1.1 GET/HEAD in the bridge's own framing.
const FORWARDED_REQUEST_HEADERS = ['host', 'accept', 'user-agent'] as const;

// Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business, never relayed back either.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function requestHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const k of FORWARDED_REQUEST_HEADERS) {
    const v = headers[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** Why the bridge refuses a request without contacting the mirror, or undefined when it may pass. */
function refusal(req: IncomingMessage): { status: 400 | 405; reason: string } | undefined {
  const method = req.method ?? '';
  if (method !== 'GET' && method !== 'HEAD')
    return { status: 405, reason: `method ${method.slice(0, 20)} (the mirror is read-only: GET and HEAD only)` };
  if (!(req.url ?? '').startsWith('/'))
    return { status: 400, reason: 'a request target that is not a path (absolute-form or authority-form)' };
  if (req.headers['transfer-encoding'] !== undefined)
    return { status: 400, reason: 'a request body (Transfer-Encoding) on a GET/HEAD' };
  const length = req.headers['content-length'];
  if (length !== undefined && length !== '0')
    return { status: 400, reason: `a request body (Content-Length: ${length.slice(0, 20)}) on a GET/HEAD` };
  return undefined;
}

/**
 * A mirror serving an X509-SVID is identified by its SPIFFE ID, not a host name (the chain was already checked
 * against the operator's bundle); any other certificate gets Node's host-name check.
 */
function spiffeOrHostname(host: string, cert: PeerCertificate): Error | undefined {
  if (/^URI:spiffe:\/\/[^,"]+$/.test(cert.subjectaltname ?? '')) return undefined;
  return checkServerIdentity(host, cert);
}

/**
 * The bridge: an HTTP/1.1 reverse proxy on a UNIX socket in the run directory (bound into the sandbox), forwarding
 * to the mirror. Being HTTP-aware rather than a byte pipe lets the runner record exactly which bytes the build
 * received — the sha256 of every complete 200 GET body — which is what provenance's resolvedDependencies must
 * name (not what the caller believes the build used). The mirror is read-only, so only bodiless GET and HEAD pass;
 * each becomes a fresh HTTP/1.1 request with an allow-list of headers (no Range or conditionals, so no partial or
 * 304 answer can hide a body from the record). Anything else is refused and counted as a hermeticity event.
 */
async function recordingProxy(
  socketPath: string,
  upstream: Upstream,
  pathPrefix: string,
  described: string,
): Promise<MirrorEndpoint> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new RunnerError(
      'RUNNER_INTERNAL',
      `UNIX socket path too long (${Buffer.byteLength(socketPath)} > ${MAX_SOCKET_PATH} bytes): ${socketPath}; use a shorter workRoot`,
    );
  }
  const tls = 'tls' in upstream ? upstream.tls : undefined;
  const agent = tls
    ? new HttpsAgent({ keepAlive: true, maxSockets: 64, ...tls, checkServerIdentity: spiffeOrHostname })
    : new Agent({ keepAlive: true, maxSockets: 64 });
  const request = tls ? httpsRequest : httpRequest;
  const target = (): RequestOptions =>
    'socketPath' in upstream
      ? { socketPath: upstream.socketPath, agent }
      : { host: upstream.host, port: upstream.port, agent };
  const fetches: MirrorFetch[] = [];
  const refusals: RefusedRequest[] = [];
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createHttpServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? '/').slice(0, 4096);
    const refused = refusal(req);
    if (refused) {
      refusals.push({ method: (req.method ?? '').slice(0, 20), path, reason: refused.reason });
      // Close the connection: whatever body follows must never be parsed as another request.
      res.writeHead(refused.status, {
        'Content-Type': 'text/plain',
        Connection: 'close',
        ...(refused.status === 405 ? { Allow: 'GET, HEAD' } : {}),
      });
      res.end(`airlock bridge: refused ${refused.reason}\n`, () => req.socket.destroy());
      return;
    }
    relay(req, res, path);
  });
  const relay = (req: IncomingMessage, res: ServerResponse, path: string) => {
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const upstreamReq = request({ ...target(), method, path, headers: requestHeaders(req.headers) }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, responseHeaders(upRes.headers));
      // Range and conditionals are stripped, so a body the build gets is a full 200: hash and record it.
      const record = method === 'GET' && upRes.statusCode === 200;
      const hash = record ? createHash('sha256') : undefined;
      let size = 0;
      upRes.on('data', (chunk: Buffer) => {
        hash?.update(chunk);
        size += chunk.length;
      });
      upRes.on('end', () => {
        if (hash && upRes.complete) fetches.push({ path, sha256: hash.digest('hex'), size });
      });
      upRes.on('error', () => res.destroy());
      upRes.pipe(res);
    });
    upstreamReq.on('error', (err) => {
      if (!res.headersSent)
        res
          .writeHead(502, { 'Content-Type': 'text/plain' })
          .end(`airlock bridge: mirror unreachable: ${err.message}\n`);
      else res.destroy();
    });
    // No request body is ever sent: the request ends right after its headers.
    upstreamReq.end();
  };
  server.on('connection', (s: Socket) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (e) =>
      reject(new RunnerError('RUNNER_INTERNAL', `cannot listen on ${socketPath}: ${e.message}`, { cause: e })),
    );
    server.listen(socketPath, resolvePromise);
  });
  return {
    socketPath,
    pathPrefix,
    described,
    connections: () => count,
    fetched: () => fetches,
    refused: () => refusals,
    get: (path) =>
      new Promise((resolvePromise, reject) => {
        const r = request({ ...target(), method: 'GET', path: `${pathPrefix}${path}` }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        });
        r.on('error', (err) =>
          reject(new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror ${described}: ${err.message}`, { cause: err })),
        );
        r.end();
      }),
    close: () =>
      new Promise<void>((resolvePromise) => {
        for (const s of sockets) s.destroy();
        agent.destroy();
        server.close(() => resolvePromise());
      }),
  };
}
