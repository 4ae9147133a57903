/**
 * A loopback HTTP proxy in front of a real registry that counts every request by method and path, and can be put
 * in two failure modes: `hold` (requests are accepted and never answered, to exercise a caller's deadline) and
 * `stop` (the port closes, the registry is "down"). Callers must `close()` it.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

export interface CountingProxy {
  /** `127.0.0.1:<port>`, as in image references. */
  host: string;
  url: string;
  /** Every request seen, `METHOD /path` (query string dropped), in order. */
  requests: string[];
  /** Requests currently held (hold mode). */
  held(): number;
  /** Resolves when a request has been held; its socket closing (the caller gave up) resolves `closed`. */
  nextHeld(): Promise<{ path: string; closed: Promise<void> }>;
  hold(on: boolean): void;
  reset(): void;
  close(): Promise<void>;
}

export interface CountingProxyOptions {
  /**
   * While it returns true, the proxy answers `GET /v2/<name>/referrers/<digest>` itself, as a registry with the
   * referrers API would: the upstream's `sha256-<hex>` fallback index (or an empty index). Distribution 2.8.2 has
   * no such API; this is a registry that gained one.
   */
  referrersApi?: () => boolean;
}

const REFERRERS_PATH = /^\/v2\/(.+)\/referrers\/sha256:([a-f0-9]{64})$/;
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export async function startCountingProxy(upstream: string, options: CountingProxyOptions = {}): Promise<CountingProxy> {
  const target = new URL(upstream);
  const requests: string[] = [];
  const heldResponses = new Set<ServerResponse>();
  const waiting: ((h: { path: string; closed: Promise<void> }) => void)[] = [];
  let holding = false;
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const referrers = req.method === 'GET' ? REFERRERS_PATH.exec((req.url ?? '').split('?')[0]!) : null;
    if (referrers && options.referrersApi?.()) return answerReferrers(target, referrers[1]!, referrers[2]!, res);
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, rewriteLocation(upRes.headers, target.host, proxy.host));
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push(`${req.method} ${path}`);
    if (!holding) return forward(req, res);
    heldResponses.add(res);
    const closed = new Promise<void>((resolve) => res.on('close', () => (heldResponses.delete(res), resolve())));
    waiting.shift()?.({ path, closed });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const proxy: CountingProxy = {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    held: () => heldResponses.size,
    nextHeld: () => new Promise((resolve) => waiting.push(resolve)),
    hold: (on) => {
      holding = on;
    },
    reset: () => {
      requests.length = 0;
    },
    close: async () => {
      for (const r of heldResponses) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

/** A referrers API answer made from the upstream's fallback index (an empty index when there is none). */
function answerReferrers(target: URL, repo: string, hex: string, res: ServerResponse): void {
  const up = request(
    {
      host: target.hostname,
      port: target.port,
      method: 'GET',
      path: `/v2/${repo}/manifests/sha256-${hex}`,
      headers: { host: target.host, accept: OCI_INDEX },
    },
    (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const body =
          upRes.statusCode === 200
            ? Buffer.concat(chunks)
            : Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
        res.writeHead(200, { 'content-type': OCI_INDEX, 'content-length': body.byteLength });
        res.end(body);
      });
    },
  );
  up.on('error', () => res.destroy());
  up.end();
}

/** Upload and redirect Locations name the registry's host; the caller must keep talking to the proxy. */
function rewriteLocation(headers: IncomingMessage['headers'], from: string, to: string): IncomingMessage['headers'] {
  const loc = headers.location;
  if (typeof loc !== 'string') return headers;
  return { ...headers, location: loc.replace(`//${from}`, `//${to}`) };
}
