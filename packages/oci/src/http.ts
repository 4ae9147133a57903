import {
  request as httpRequest,
  type Agent as HttpAgent,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { OciError } from './errors.js';

export interface HttpOptions {
  /** PEM CA certificate(s) trusted for https, replacing the system store. */
  ca?: string | Buffer | (string | Buffer)[];
  /** HTTP Basic credentials, sent preemptively (Distribution's htpasswd auth). */
  auth?: { username: string; password: string };
  /** Idle socket timeout; default 60 s. */
  timeoutMs?: number;
  userAgent?: string;
  /** Aborts every exchange (a caller's deadline): in-flight requests are destroyed, none is started after it. */
  signal?: AbortSignal;
  /**
   * Bearer tokens per scope for registries using Distribution token auth (401 + `WWW-Authenticate: Bearer`): the
   * token is fetched from the challenge's realm (with `auth` as Basic credentials, if any) and reused until a 401.
   */
  tokens?: Map<string, string>;
  /**
   * A keep-alive agent (http or https, matching the registry's scheme) whose sockets are reused across requests;
   * without one every exchange opens and closes its own connection. Used only for URLs of the agent's protocol.
   */
  agent?: HttpAgent;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  /** Refuse bodies larger than this; default 4 MiB. */
  maxBytes?: number;
}

const MAX_REDIRECTS = 5;

/** One HTTP exchange with the registry, following redirects for GET and HEAD (blob stores may redirect). */
export async function httpExchange(spec: RequestSpec, options: HttpOptions): Promise<HttpResponse> {
  let url = spec.url;
  let sendAuth = true;
  let retried = false;
  for (let hop = 0; ; hop++) {
    const res = await once(spec, url, options, sendAuth);
    const challenge = bearerChallenge(res);
    if (challenge && options.tokens && sendAuth && !retried && typeof spec.body !== 'function') {
      // Token auth: fetch a token for the challenged scope, then repeat the request once with it.
      retried = true;
      options.tokens.set(tokenKey(spec.url), await fetchToken(challenge, spec.url, options));
      hop--;
      continue;
    }
    const location = res.headers.location;
    if (
      (spec.method === 'GET' || spec.method === 'HEAD') &&
      [301, 302, 303, 307, 308].includes(res.status) &&
      location
    ) {
      if (hop >= MAX_REDIRECTS) throw new OciError('OCI_HTTP', `${spec.method} ${spec.url.href}: too many redirects`);
      const next = new URL(location, url);
      // Credentials are for the registry only, never for a storage backend it redirects to.
      if (next.origin !== spec.url.origin) sendAuth = false;
      url = next;
      continue;
    }
    return res;
  }
}

/**
 * One request. A GET/HEAD that fails with ECONNRESET on a reused keep-alive socket is repeated once on a new
 * connection: the server closed the idle socket as we picked it (the request never reached it).
 */
async function once(spec: RequestSpec, url: URL, options: HttpOptions, sendAuth: boolean): Promise<HttpResponse> {
  try {
    return await onceOn(spec, url, options, sendAuth);
  } catch (err) {
    if (!(err instanceof StaleSocketError)) throw err;
    // Not through the pool: it may hold more sockets the server closed (concurrent reads leave several).
    return onceOn(spec, url, options, sendAuth, true);
  }
}

/** ECONNRESET on a reused keep-alive socket before any response (see `once`). */
class StaleSocketError extends Error {}

function onceOn(
  spec: RequestSpec,
  url: URL,
  options: HttpOptions,
  sendAuth: boolean,
  freshConnection = false,
): Promise<HttpResponse> {
  const maxBytes = spec.maxBytes ?? 4 << 20;
  const headers: Record<string, string> = { 'User-Agent': options.userAgent ?? 'airlock-oci/0.1', ...spec.headers };
  const token = sendAuth ? options.tokens?.get(tokenKey(spec.url)) : undefined;
  if (token !== undefined) headers['Authorization'] = `Bearer ${token}`;
  else if (options.auth && sendAuth) {
    headers['Authorization'] =
      `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`, 'utf8').toString('base64')}`;
  }
  if (options.signal?.aborted)
    return Promise.reject(new OciError('OCI_ABORTED', `${spec.method} ${url.href}: aborted (deadline)`));
  if (Buffer.isBuffer(spec.body)) headers['Content-Length'] = String(spec.body.byteLength);
  else if (spec.body === undefined && (spec.method === 'PUT' || spec.method === 'POST'))
    headers['Content-Length'] = '0';
  const isHttps = url.protocol === 'https:';
  if (!isHttps && url.protocol !== 'http:')
    return Promise.reject(new OciError('OCI_INPUT_INVALID', `unsupported URL scheme ${url.protocol}`));
  const what = `${spec.method} ${url.href}`;
  return new Promise<HttpResponse>((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const declared = Number(res.headers['content-length'] ?? '0');
      if (spec.method !== 'HEAD' && declared > maxBytes) {
        res.destroy();
        reject(new OciError('OCI_SIZE_LIMIT', `${what}: response is ${declared} bytes, limit ${maxBytes}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.byteLength;
        if (size > maxBytes) {
          res.destroy(new OciError('OCI_SIZE_LIMIT', `${what}: response exceeds ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) =>
        reject(err instanceof OciError ? err : new OciError('OCI_HTTP', `${what}: ${err.message}`, { cause: err })),
      );
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), url }),
      );
    };
    const agent =
      !freshConnection && options.agent !== undefined && agentProtocol(options.agent) === url.protocol
        ? options.agent
        : false;
    const req: ClientRequest = (isHttps ? httpsRequest : httpRequest)(
      url,
      {
        method: spec.method,
        headers,
        agent,
        ...(isHttps && options.ca !== undefined ? { ca: options.ca } : {}),
      },
      onResponse,
    );
    if (options.signal) abortOn(options.signal, req, what, reject);
    req.setTimeout(options.timeoutMs ?? 60_000, () =>
      req.destroy(new Error(`no activity for ${options.timeoutMs ?? 60_000} ms`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        req.reusedSocket && err.code === 'ECONNRESET' && (spec.method === 'GET' || spec.method === 'HEAD')
          ? new StaleSocketError(err.message)
          : options.signal?.aborted
            ? new OciError('OCI_ABORTED', `${what}: aborted (deadline)`, { cause: err })
            : new OciError('OCI_HTTP', `${what}: ${err.message}`, { cause: err }),
      ),
    );
    if (spec.body === undefined) req.end();
    else if (Buffer.isBuffer(spec.body)) req.end(spec.body);
    else {
      const src = spec.body();
      src.on('error', (err) => req.destroy(err));
      src.pipe(req);
    }
  });
}

/**
 * Destroys `req` and rejects with OCI_ABORTED when `signal` fires. Not http.request's `signal` option: on Node 20 the
 * abort of a request still queued in the agent (every socket busy) was reported only once a socket freed up, so the
 * caller's deadline left the call lingering. Destroyed while queued, the request is never sent.
 */
function abortOn(signal: AbortSignal, req: ClientRequest, what: string, reject: (e: OciError) => void): void {
  const onAbort = (): void => {
    const err = new OciError('OCI_ABORTED', `${what}: aborted (deadline)`);
    req.destroy(err);
    reject(err);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  req.once('close', () => signal.removeEventListener('abort', onAbort));
}

function agentProtocol(agent: HttpAgent): string | undefined {
  return (agent as HttpAgent & { protocol?: string }).protocol;
}

/** The `errors[]` of a Distribution error body, as one line, for messages. */
export function registryErrorText(res: HttpResponse): string {
  try {
    const parsed = JSON.parse(res.body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      return parsed.errors.map((e) => `${e.code ?? '?'}: ${e.message ?? ''}`).join('; ');
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return res.body.toString('utf8').slice(0, 200).trim();
}

/** Raises the right typed error for an unexpected status. */
export function failStatus(res: HttpResponse, what: string): never {
  const text = registryErrorText(res);
  const detail = `${what}: HTTP ${res.status}${text ? ` (${text})` : ''}`;
  if (res.status === 401 || res.status === 403)
    throw new OciError('OCI_UNAUTHORIZED', detail, { details: { status: res.status } });
  if (res.status === 404) throw new OciError('OCI_NOT_FOUND', detail, { details: { status: res.status } });
  throw new OciError('OCI_HTTP', detail, { details: { status: res.status } });
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

interface BearerChallenge {
  realm: string;
  service?: string;
  scope?: string;
}

/** `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` of a 401, if any. */
function bearerChallenge(res: HttpResponse): BearerChallenge | undefined {
  if (res.status !== 401) return undefined;
  const h = header(res, 'www-authenticate');
  if (!h || !/^bearer\s/i.test(h)) return undefined;
  const params: Record<string, string> = {};
  for (const m of h.slice(7).matchAll(/([a-zA-Z]+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  if (!params['realm']) return undefined;
  return {
    realm: params['realm'],
    ...(params['service'] !== undefined ? { service: params['service'] } : {}),
    ...(params['scope'] !== undefined ? { scope: params['scope'] } : {}),
  };
}

/** Tokens are scoped per repository (`/v2/<name>/…`); the `/v2/` ping has a scope of its own. */
function tokenKey(url: URL): string {
  const m = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//.exec(url.pathname);
  return `${url.origin} ${m ? m[1] : ''}`;
}

/**
 * Distribution token auth (distribution/distribution:docs/spec/auth/token.md): GET realm?service&scope with the
 * Basic credentials. Credentials go only to an https realm, or an http one on the registry's own host.
 */
async function fetchToken(c: BearerChallenge, registryUrl: URL, options: HttpOptions): Promise<string> {
  let realm: URL;
  try {
    realm = new URL(c.realm);
  } catch (cause) {
    throw new OciError('OCI_UNAUTHORIZED', `token realm ${JSON.stringify(c.realm)} is not a URL`, { cause });
  }
  if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && realm.hostname === registryUrl.hostname))
    throw new OciError('OCI_UNAUTHORIZED', `token realm ${realm.origin} is neither https nor the registry's own host`);
  if (c.service !== undefined) realm.searchParams.set('service', c.service);
  if (c.scope !== undefined) realm.searchParams.set('scope', c.scope);
  const res = await once(
    { method: 'GET', url: realm, maxBytes: 1 << 20 },
    realm,
    { ...options, tokens: undefined },
    true,
  );
  if (res.status !== 200) failStatus(res, `token from ${realm.origin}${realm.pathname}`);
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = JSON.parse(res.body.toString('utf8')) as typeof body;
  } catch (cause) {
    throw new OciError('OCI_UNAUTHORIZED', `token from ${realm.origin}: not JSON`, { cause });
  }
  const token = typeof body.token === 'string' ? body.token : body.access_token;
  if (typeof token !== 'string' || token === '')
    throw new OciError('OCI_UNAUTHORIZED', `token from ${realm.origin}: no token in the answer`);
  return token;
}
