import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
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
  for (let hop = 0; ; hop++) {
    const res = await once(spec, url, options, sendAuth);
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

function once(spec: RequestSpec, url: URL, options: HttpOptions, sendAuth: boolean): Promise<HttpResponse> {
  const maxBytes = spec.maxBytes ?? 4 << 20;
  const headers: Record<string, string> = { 'User-Agent': options.userAgent ?? 'airlock-oci/0.1', ...spec.headers };
  if (options.auth && sendAuth) {
    headers['Authorization'] =
      `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`, 'utf8').toString('base64')}`;
  }
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
    const req = (isHttps ? httpsRequest : httpRequest)(
      url,
      {
        method: spec.method,
        headers,
        agent: false,
        ...(isHttps && options.ca !== undefined ? { ca: options.ca } : {}),
      },
      onResponse,
    );
    req.setTimeout(options.timeoutMs ?? 60_000, () =>
      req.destroy(new Error(`no activity for ${options.timeoutMs ?? 60_000} ms`)),
    );
    req.on('error', (err) => reject(new OciError('OCI_HTTP', `${what}: ${err.message}`, { cause: err })));
    if (spec.body === undefined) req.end();
    else if (Buffer.isBuffer(spec.body)) req.end(spec.body);
    else {
      const src = spec.body();
      src.on('error', (err) => req.destroy(err));
      src.pipe(req);
    }
  });
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
