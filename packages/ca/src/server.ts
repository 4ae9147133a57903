import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type http from 'node:http';
import {
  closeNow,
  createLimitedServer,
  listen,
  type HttpLimits,
  type RequestContext,
  type RequestGate,
} from '@airlock/core';
import { CertificateAuthority, type CertificateAuthorityOptions } from './authority.js';
import { configurationRoute, errorResult, signingCertRoute, trustBundleRoute, type RouteResult } from './routes.js';

export interface StartCaServerOptions extends CertificateAuthorityOptions {
  host?: string;
  port?: number;
  /** Request body limit for signingCert (default 64 KiB; a token + key + PoP is a few KiB). */
  maxBodyBytes?: number;
  /** Concurrency, timeouts and per-request deadline (defaults: `DEFAULT_HTTP_LIMITS` of @airlock/core). */
  limits?: Partial<HttpLimits>;
  /** Serve HTTPS (e.g. mTLS with SPIFFE SVIDs, see `serviceMtls`); the URL becomes https://. */
  tls?: HttpsServerOptions;
  /** Pre-handler check (e.g. SPIFFE ID authorization); true = it answered. */
  gate?: RequestGate;
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
  const server = createLimitedServer(
    (req, res, ctx) =>
      route(ca, maxBody, req, ctx)
        .catch((err: unknown) => errorResult(err))
        .then((result) => send(res, result)),
    {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.gate ? { gate: options.gate } : {}),
      writeError: (res, status, code, message, headers) => send(res, { status, body: { code, message } }, headers),
    },
  );
  const { url } = await listen(server, options);
  return {
    url,
    rootPem: ca.rootPem,
    intermediatePem: ca.intermediatePem,
    chainDer: ca.chainDer,
    validFrom: ca.validFrom,
    ca,
    close: () => closeNow(server),
  };
}

async function route(
  ca: CertificateAuthority,
  maxBody: number,
  req: http.IncomingMessage,
  ctx: RequestContext,
): Promise<RouteResult> {
  const pathname = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  const notAllowed = (allow: string): RouteResult => ({
    status: 405,
    body: { code: 'METHOD_NOT_ALLOWED', message: `use ${allow}` },
  });
  switch (pathname) {
    case SIGNING_CERT: {
      if (method !== 'POST') return notAllowed('POST');
      const body = await ctx.readJson(maxBody);
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

function send(res: http.ServerResponse, result: RouteResult, headers: Record<string, string> = {}): void {
  // After a deadline answer the handler's late result is dropped.
  if (res.headersSent || res.writableEnded) return;
  const text = JSON.stringify(result.body);
  res.writeHead(result.status, {
    ...result.headers,
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}
