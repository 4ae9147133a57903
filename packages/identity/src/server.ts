import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type http from 'node:http';
import {
  createLimitedServer,
  hasErrorCode,
  HttpLimitError,
  listen,
  type HttpLimits,
  type RequestContext,
  type RequestGate,
} from '@airlock/core';
import { IdentityError } from './errors.js';
import { isLoopbackAddress, sendJson } from './http.js';
import { IdentityIssuer, writeIssuerMetadata, type ExternalJwtSigner, type IssueTokenRequest } from './issuer.js';

export interface StartIdentityIssuerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  trustDomain?: string;
  /** Public issuer URL (`iss`) when the server sits behind a proxy; default `http://<host>:<port>`. Its path is served as the route prefix. */
  issuerUrl?: string;
  /** Enable `POST <prefix>/token` for loopback peers (default off: any local user could then mint tokens). */
  enableTokenEndpoint?: boolean;
  maxTtlSeconds?: number;
  /** The issuer key in a PKCS#11 token (no key file); see `IdentityIssuerOptions.signer`. */
  signer?: ExternalJwtSigner;
  /** Token-request body limit (default 16 KiB). */
  maxBodyBytes?: number;
  /** Concurrency, timeouts and per-request deadline (defaults: `DEFAULT_HTTP_LIMITS` of @airlock/core). */
  limits?: Partial<HttpLimits>;
  /** Serve HTTPS (e.g. mTLS with SPIFFE SVIDs, see `serviceMtls`); the URL becomes https://. */
  tls?: HttpsServerOptions;
  /** Pre-handler check (e.g. SPIFFE ID authorization); true = it answered. */
  gate?: RequestGate;
}

export interface IdentityIssuerServer {
  /** The issuer URL, equal to the tokens' `iss`. */
  url: string;
  jwksUrl: string;
  issuer: IdentityIssuer;
  issueToken(request: IssueTokenRequest): Promise<string>;
  close(): Promise<void>;
}

const DISCOVERY_PATH = '/.well-known/openid-configuration';
const JWKS_PATH = '/.well-known/jwks.json';
const TOKEN_PATH = '/token';
const MAX_TOKEN_REQUEST_BYTES = 16 * 1024;

/**
 * Starts the issuer's HTTP face: OIDC discovery and JWKS (what relying parties such as the CA fetch), and
 * optionally a loopback-only token endpoint. Records issuer URL + trust domain in `<dataDir>/identity/issuer.json`.
 */
export async function startIdentityIssuer(options: StartIdentityIssuerOptions): Promise<IdentityIssuerServer> {
  const host = options.host ?? '127.0.0.1';
  let issuer: IdentityIssuer | undefined;

  const routes: Omit<Routes, 'issuer'> = {
    prefix: '',
    jwksUrl: '',
    tokenEndpoint: options.enableTokenEndpoint === true,
    maxBodyBytes: options.maxBodyBytes ?? MAX_TOKEN_REQUEST_BYTES,
  };
  const server = createLimitedServer(
    async (req, res, ctx) => {
      if (!issuer) return sendJson(res, 503, { code: 'STARTING', message: 'issuer is starting' });
      await handle({ ...routes, issuer }, req, res, ctx).catch((err: unknown) => {
        sendJson(res, 500, { code: 'INTERNAL', message: 'internal error' });
        if (res.headersSent && !res.writableEnded) res.destroy(err as Error);
      });
    },
    {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.gate ? { gate: options.gate } : {}),
      writeError: (res, status, code, message, headers) => sendJson(res, status, { code, message }, headers),
    },
  );
  const listening = await listen(server, { ...options, host });
  try {
    const url = options.issuerUrl ?? listening.url;
    issuer = await IdentityIssuer.open({
      dataDir: options.dataDir,
      issuerUrl: url,
      trustDomain: options.trustDomain ?? 'airlock.internal',
      ...(options.maxTtlSeconds !== undefined ? { maxTtlSeconds: options.maxTtlSeconds } : {}),
      ...(options.signer ? { signer: options.signer } : {}),
    });
    routes.prefix = new URL(issuer.issuerUrl).pathname.replace(/\/+$/, '');
    routes.jwksUrl = `${issuer.issuerUrl}${JWKS_PATH}`;
    writeIssuerMetadata(options.dataDir, {
      issuerUrl: issuer.issuerUrl,
      trustDomain: issuer.trustDomain,
      jwksUrl: routes.jwksUrl,
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const ready = issuer;
  return {
    url: ready.issuerUrl,
    jwksUrl: routes.jwksUrl,
    issuer: ready,
    issueToken: (request) => ready.issueToken(request),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

interface Routes {
  issuer: IdentityIssuer;
  prefix: string;
  jwksUrl: string;
  tokenEndpoint: boolean;
  maxBodyBytes: number;
}

async function handle(
  { issuer, prefix, jwksUrl, tokenEndpoint, maxBodyBytes }: Routes,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: RequestContext,
): Promise<void> {
  const pathname = (req.url ?? '/').split('?')[0] ?? '/';
  const route = pathname.startsWith(`${prefix}/`) ? pathname.slice(prefix.length) : undefined;
  if (route === DISCOVERY_PATH || route === JWKS_PATH) {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendJson(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'use GET' }, { allow: 'GET, HEAD' });
    const body = route === JWKS_PATH ? issuer.jwks() : issuer.discoveryDocument(jwksUrl);
    return sendJson(res, 200, body, { 'cache-control': 'public, max-age=300' });
  }
  if (route === TOKEN_PATH && tokenEndpoint) {
    if (req.method !== 'POST')
      return sendJson(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'use POST' }, { allow: 'POST' });
    if (!isLoopbackAddress(req.socket.remoteAddress)) {
      return sendJson(res, 403, { code: 'FORBIDDEN', message: 'the token endpoint only serves loopback clients' });
    }
    return issueFromRequest(issuer, res, () => ctx.readJson(maxBodyBytes));
  }
  return sendJson(res, 404, { code: 'NOT_FOUND', message: `no route for ${req.method ?? ''} ${pathname}` });
}

async function issueFromRequest(
  issuer: IdentityIssuer,
  res: http.ServerResponse,
  readJson: () => Promise<unknown>,
): Promise<void> {
  let body: unknown;
  try {
    body = await readJson();
  } catch (err) {
    if (!(err instanceof HttpLimitError)) throw err;
    return sendJson(res, err.status, { code: err.code, message: err.message }, { connection: 'close' });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return sendJson(res, 400, { code: 'TOKEN_REQUEST_INVALID', message: 'request body must be a JSON object' });
  }
  const b = body as Record<string, unknown>;
  try {
    if (typeof b.subject !== 'string')
      throw new IdentityError('TOKEN_REQUEST_INVALID', 'subject (a SPIFFE ID) is required');
    if (b.audience !== undefined && typeof b.audience !== 'string')
      throw new IdentityError('TOKEN_REQUEST_INVALID', 'audience must be a string');
    if (b.ttlSeconds !== undefined && typeof b.ttlSeconds !== 'number')
      throw new IdentityError('TOKEN_REQUEST_INVALID', 'ttlSeconds must be a number');
    const ttlSeconds = (b.ttlSeconds as number | undefined) ?? 600;
    const token = await issuer.issueToken({
      subject: b.subject,
      ttlSeconds,
      ...(typeof b.audience === 'string' ? { audience: b.audience } : {}),
      ...(b.claims !== undefined ? { claims: b.claims as IssueTokenRequest['claims'] } : {}),
    });
    return sendJson(res, 200, { token, expiresIn: ttlSeconds });
  } catch (err) {
    if (err instanceof IdentityError || hasErrorCode(err, 'SPIFFE_ID_INVALID')) {
      const e = err as IdentityError;
      return sendJson(res, 400, { code: e.code, message: e.message });
    }
    throw err;
  }
}
