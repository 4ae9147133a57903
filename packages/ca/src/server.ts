import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CertificateAuthority, type CertificateAuthorityOptions } from './authority.js';
import { configurationRoute, errorResult, signingCertRoute, trustBundleRoute, type RouteResult } from './routes.js';

export interface StartCaServerOptions extends CertificateAuthorityOptions {
  host?: string;
  port?: number;
  /** Request body limit for signingCert (default 64 KiB; a token + key + PoP is a few KiB). */
  maxBodyBytes?: number;
}

export interface CaServer {
  url: string;
  rootPem: string;
  intermediatePem: string;
  /** `[intermediate, root]` DER for trusted_root `certificateAuthorities[].certChain`. */
  chainDer: Buffer[];
  /** trusted_root `validFor.start`. */
  validFrom: Date;
  ca: CertificateAuthority;
  close(): Promise<void>;
}

const SIGNING_CERT = '/api/v2/signingCert';
const TRUST_BUNDLE = '/api/v2/trustBundle';
const CONFIGURATION = '/api/v2/configuration';

/** Starts the Fulcio v2-compatible HTTP API in front of a `CertificateAuthority`. */
export async function startCaServer(options: StartCaServerOptions): Promise<CaServer> {
  const ca = await CertificateAuthority.open(options);
  const maxBody = options.maxBodyBytes ?? 64 * 1024;
  const server = http.createServer((req, res) => {
    route(ca, maxBody, req)
      .catch((err: unknown) => errorResult(err))
      .then((result) => send(res, result))
      .catch((err: unknown) => res.destroy(err as Error));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    rootPem: ca.rootPem,
    intermediatePem: ca.intermediatePem,
    chainDer: ca.chainDer,
    validFrom: ca.validFrom,
    ca,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function route(ca: CertificateAuthority, maxBody: number, req: http.IncomingMessage): Promise<RouteResult> {
  const pathname = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  const notAllowed = (allow: string): RouteResult => ({
    status: 405,
    body: { code: 'METHOD_NOT_ALLOWED', message: `use ${allow}` },
  });
  switch (pathname) {
    case SIGNING_CERT: {
      if (method !== 'POST') return notAllowed('POST');
      const raw = await readBody(req, maxBody);
      if (raw === 'too-large') {
        return {
          status: 413,
          body: { code: 'CA_REQUEST_INVALID', message: `request body larger than ${maxBody} bytes` },
        };
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return { status: 400, body: { code: 'CA_REQUEST_INVALID', message: 'request body is not valid JSON' } };
      }
      const auth = req.headers.authorization;
      return signingCertRoute(ca, body, typeof auth === 'string' ? auth : undefined);
    }
    case TRUST_BUNDLE:
      return method === 'GET' ? trustBundleRoute(ca) : notAllowed('GET');
    case CONFIGURATION:
      return method === 'GET' ? configurationRoute(ca) : notAllowed('GET');
    default:
      return { status: 404, body: { code: 'NOT_FOUND', message: `no route for ${method} ${pathname ?? ''}` } };
  }
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drain so the 413 reaches the client
    return 'too-large';
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      req.resume();
      return 'too-large';
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function send(res: http.ServerResponse, result: RouteResult): void {
  const text = JSON.stringify(result.body);
  res.writeHead(result.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}
