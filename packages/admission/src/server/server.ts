import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AdmissionController, AdmissionRequest, AdmissionResponse } from '../types.js';
import { denyResponse, parseEnvelope, review, sanitizeResponse } from './envelope.js';
import { AdmissionServerError } from './errors.js';
import {
  describeError,
  raceDeadline,
  readJsonBody,
  requestSignal,
  seconds,
  sendError,
  sendJson,
  sendRequestError,
  sendText,
} from './http.js';
import { imagesNamedIn, listForMessage } from './images.js';
import { AdmissionMetrics, type Verdict } from './metrics.js';
import { loadTlsPair, TlsReloader, type TlsFiles, type TlsReloadResult } from './tls.js';
import { handleWorkspace } from './workspace.js';

/**
 * The admission HTTPS server: bounds and parses each request, checks the AdmissionReview envelope, gives the
 * controller an AbortSignal at the internal deadline and answers a deny itself when the controller is late or
 * fails, so the API server never times out first and nothing is allowed by accident.
 */

export interface AdmissionServerOptions {
  controller: AdmissionController;
  tls: TlsFiles;
  /** Default 127.0.0.1 (the CLI passes 0.0.0.0 inside a cluster). */
  host?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** The controller's deadline from request arrival (default 8000 ms, below the 10 s webhook timeout). */
  deadlineMs?: number;
  /** Request bodies over this are refused with 413 (default 3 MiB, the API server's own request limit). */
  maxBodyBytes?: number;
  /** Shared with the controller (its AdmissionEvents) so /metrics counts cache and registry events. */
  metrics?: AdmissionMetrics;
  /** Requests handled at once; more get 503 at once (default 256). */
  maxConcurrentRequests?: number;
  /** All request headers must arrive within this time (default 10 s). */
  headersTimeoutMs?: number;
  /**
   * Where POST /workspace may name toolchain files (relative paths below it). Without it, /workspace checks images
   * only: an HTTP client must not make the server hash arbitrary files of its host.
   */
  toolchainDir?: string;
  /** One line per event worth an operator's attention (TLS reloads, controller errors). Default: stderr. */
  log?: (line: string) => void;
  /** Called after each TLS reload attempt (tests and the CLI). */
  onTlsReload?: (result: TlsReloadResult) => void;
  /**
   * Client authentication (mTLS, e.g. SPIFFE X509-SVIDs): the handshake asks for a certificate from `ca`, and `gate`
   * answers a request itself (true) when the client is refused. `tls.clientCa` must hold the same bundle.
   */
  clientAuth?: { gate: (req: IncomingMessage, res: ServerResponse) => boolean };
}

export interface AdmissionServer {
  url: string;
  port: number;
  metrics: AdmissionMetrics;
  /** Reloads the certificate and key now (the watcher does this on file changes). */
  reloadTls(): Promise<TlsReloadResult>;
  /** Stops listening and drops open connections; the controller is the caller's to close. */
  close(): Promise<void>;
}

export const DEFAULT_DEADLINE_MS = 8_000;
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;

interface Ctx {
  controller: AdmissionController;
  metrics: AdmissionMetrics;
  maxBodyBytes: number;
  deadlineMs: number;
  toolchainDir: string | undefined;
  log: (line: string) => void;
}

export async function startAdmissionServer(options: AdmissionServerOptions): Promise<AdmissionServer> {
  const deadlineMs = positive('deadlineMs', options.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const maxConcurrent = positive('maxConcurrentRequests', options.maxConcurrentRequests ?? 256);
  const headersTimeoutMs = positive('headersTimeoutMs', options.headersTimeoutMs ?? 10_000);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const ctx: Ctx = {
    controller: options.controller,
    metrics: options.metrics ?? new AdmissionMetrics(),
    maxBodyBytes: positive('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES),
    deadlineMs,
    toolchainDir: options.toolchainDir,
    log,
  };
  const initial = await loadTlsPair(options.tls);
  let active = 0;
  const server: Server = createServer(
    {
      ...initial,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeoutMs / 4))),
      // The gate, not the handshake, refuses: a JSON 401/403 naming the reason beats a bare TLS alert.
      ...(options.clientAuth ? { requestCert: true, rejectUnauthorized: false } : {}),
    },
    (req, res) => {
      if (options.clientAuth?.gate(req, res)) return;
      if (active >= maxConcurrent) {
        ctx.metrics.rejectedRequest('ADMISSION_OVERLOADED');
        sendError(res, 503, 'ADMISSION_OVERLOADED', `more than ${maxConcurrent} requests at once; retry`, {
          'retry-after': '1',
        });
        return;
      }
      active++;
      handle(ctx, req, res)
        .catch((err: unknown) => {
          log(`admission: request handler failed: ${(err as Error).message}`);
          sendError(res, 500, 'ADMISSION_INTERNAL', 'internal error');
        })
        .finally(() => active--);
    },
  );
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = headersTimeoutMs + deadlineMs;
  const reloader = new TlsReloader(server, options.tls, (result) => {
    ctx.metrics.tlsReload(result.ok);
    log(
      result.ok
        ? `admission: TLS certificate reloaded from ${options.tls.certFile}`
        : `admission: TLS reload refused, still serving the previous certificate: ${result.error ?? 'unknown error'}`,
    );
    options.onTlsReload?.(result);
  });
  await listen(server, options.host ?? '127.0.0.1', options.port ?? 0);
  reloader.start();
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `https://${urlHost}:${port}`,
    port,
    metrics: ctx.metrics,
    reloadTls: () => reloader.reload(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        reloader.close();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new AdmissionServerError('ADMISSION_SERVER_OPTIONS_INVALID', `${name} must be a positive integer`);
  return value;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const [pathname = '/', query = ''] = (req.url ?? '/').split('?', 2);
  const method = req.method ?? 'GET';
  const post = (run: () => Promise<void>): Promise<void> => (method === 'POST' ? run() : notAllowed(ctx, res, 'POST'));
  const get = (run: () => void): Promise<void> => {
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, res, 'GET');
    run();
    return Promise.resolve();
  };
  switch (pathname) {
    case '/validate':
      return post(() => handleReview(ctx, req, res, false, deadlineFor(ctx, query)));
    case '/mutate':
      return post(() => handleReview(ctx, req, res, true, deadlineFor(ctx, query)));
    case '/workspace':
      return post(() => handleWorkspace(ctx, req, res, deadlineFor(ctx, query)));
    case '/healthz':
      return get(() => sendJson(res, 200, { status: 'ok' }));
    case '/readyz':
      return get(() => readyz(ctx, res));
    case '/metrics':
      return get(() => sendText(res, 200, ctx.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8'));
    default:
      ctx.metrics.rejectedRequest('ADMISSION_NOT_FOUND');
      sendError(res, 404, 'ADMISSION_NOT_FOUND', `no route for ${method} ${pathname.slice(0, 100)}`);
      return Promise.resolve();
  }
}

function notAllowed(ctx: Ctx, res: ServerResponse, allow: string): Promise<void> {
  ctx.metrics.rejectedRequest('ADMISSION_METHOD_NOT_ALLOWED');
  sendError(res, 405, 'ADMISSION_METHOD_NOT_ALLOWED', `use ${allow}`, { allow });
  return Promise.resolve();
}

function readyz(ctx: Ctx, res: ServerResponse): void {
  let state: { ok: boolean; reason?: string };
  try {
    state = ctx.controller.ready();
  } catch (err) {
    state = { ok: false, reason: `readiness check failed: ${(err as Error).message}` };
  }
  sendJson(res, state.ok ? 200 : 503, { ready: state.ok, ...(state.reason ? { reason: state.reason } : {}) });
}

/**
 * The API server appends `?timeout=10s` (the webhook's timeoutSeconds): never plan to answer after it. The
 * deadline is the smaller of the configured one and 80% of what the API server allows.
 */
export function deadlineFor(ctx: { deadlineMs: number }, query: string): number {
  const m = /(?:^|&)timeout=(\d{1,6})(ms|s|m)(?:&|$)/.exec(query);
  if (!m) return ctx.deadlineMs;
  const ms = Number(m[1]) * ({ ms: 1, s: 1_000, m: 60_000 } as const)[m[2] as 'ms' | 's' | 'm'];
  return Math.max(1, Math.min(ctx.deadlineMs, Math.floor(ms * 0.8)));
}

async function handleReview(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  mutate: boolean,
  deadlineMs: number,
): Promise<void> {
  const started = performance.now();
  const endpoint = mutate ? 'mutate' : 'validate';
  const { signal, done } = requestSignal(res, deadlineMs);
  try {
    let envelope;
    try {
      envelope = parseEnvelope(await readJsonBody(req, ctx.maxBodyBytes, deadlineMs, signal));
    } catch (err) {
      sendRequestError(ctx, res, err);
      return;
    }
    if (!envelope.ok) {
      const message = `airlock: malformed AdmissionReview request: ${envelope.reason}`;
      sendJson(res, 200, review(denyResponse(envelope.uid, message, 'malformed-request')));
      ctx.metrics.request(endpoint, undefined, 'error', seconds(started));
      return;
    }
    const request = envelope.request;
    const { response, verdict } = await decide(ctx, request, mutate, signal, deadlineMs);
    sendJson(res, 200, review(response));
    ctx.metrics.request(endpoint, request.kind.kind, verdict, seconds(started));
  } finally {
    done();
  }
}

/** Races the controller against the deadline; the server's deny wins every tie, error and malformed answer. */
async function decide(
  ctx: Ctx,
  request: AdmissionRequest,
  mutate: boolean,
  signal: AbortSignal,
  deadlineMs: number,
): Promise<{ response: AdmissionResponse; verdict: Verdict }> {
  const outcome = await raceDeadline(() => ctx.controller.decide(request, { mutate, signal }), signal);
  if (outcome.kind === 'answer') {
    const { response, internalError } = sanitizeResponse(request, outcome.value, mutate);
    if (internalError) return { response, verdict: 'error' };
    const verdict: Verdict = !response.allowed ? 'deny' : response.warnings?.length ? 'warn' : 'allow';
    return { response, verdict };
  }
  // Only the server's own denials name the images (the walk over the object is not paid on every answer).
  const images = listForMessage(imagesNamedIn(request.object));
  const checking = images ? ` while checking ${images}` : '';
  const extra: Record<string, string> = images ? { images: images.slice(0, 1000) } : {};
  if (outcome.kind === 'deadline') {
    const message = `airlock: no verdict within ${deadlineMs} ms${checking}; denied (fail closed)`;
    return { response: denyResponse(request.uid, message, 'deadline-exceeded', extra), verdict: 'error' };
  }
  const reason = describeError(outcome.error);
  ctx.log(`admission: controller failed on request ${request.uid}: ${reason}`);
  const message = `airlock: internal error${checking}: ${reason}; denied (fail closed)`;
  return { response: denyResponse(request.uid, message, 'internal-error', extra), verdict: 'error' };
}
