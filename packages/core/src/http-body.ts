import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import { performance } from 'node:perf_hooks';
import { AirlockError } from './errors.js';

/**
 * The request-body reader and load limits shared by the trust-plane services (log, CA, issuer): every body has a
 * size limit and a deadline, every server a cap on concurrent requests, header/request timeouts and a per-request
 * deadline, so a slow or greedy client cannot hold a service.
 */

export type HttpLimitErrorCode =
  | 'HTTP_BODY_TOO_LARGE' // 413
  | 'HTTP_BODY_TIMEOUT' // 408
  | 'HTTP_BODY_INVALID_JSON' // 400
  | 'HTTP_REQUEST_ABORTED' // 400 (the client went away)
  | 'HTTP_OVERLOADED' // 503 + Retry-After
  | 'HTTP_DEADLINE_EXCEEDED' // 503 + Retry-After
  | 'HTTP_LIMITS_INVALID';

const STATUS: Record<HttpLimitErrorCode, number> = {
  HTTP_BODY_TOO_LARGE: 413,
  HTTP_BODY_TIMEOUT: 408,
  HTTP_BODY_INVALID_JSON: 400,
  HTTP_REQUEST_ABORTED: 400,
  HTTP_OVERLOADED: 503,
  HTTP_DEADLINE_EXCEEDED: 503,
  HTTP_LIMITS_INVALID: 500,
};

export class HttpLimitError extends AirlockError<HttpLimitErrorCode> {
  /** The HTTP status a server answers with. */
  get status(): number {
    return STATUS[this.code];
  }
}

export interface ReadBodyOptions {
  maxBytes: number;
  /** The whole body must arrive within this time (a trickle of bytes does not extend it). */
  timeoutMs: number;
  /** Aborts the read (the request deadline passed or the client left). */
  signal?: AbortSignal;
}

/**
 * Reads a request body of at most `maxBytes` within `timeoutMs`. A declared Content-Length over the limit is
 * refused before reading; a chunked body is cut off as soon as it passes the limit. Errors are `HttpLimitError`s.
 */
export function readRequestBody(req: IncomingMessage, options: ReadBodyOptions): Promise<Buffer> {
  const { maxBytes, timeoutMs, signal } = options;
  return readBody(req, maxBytes, timeoutMs, (onTimeout, onAbort) => {
    if (signal?.aborted) {
      onAbort(signal.reason);
      return () => {};
    }
    const timer = setTimeout(onTimeout, timeoutMs);
    const aborted = (): void => onAbort(signal?.reason);
    signal?.addEventListener('abort', aborted, { once: true });
    return () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
    };
  });
}

/**
 * Arms the body's deadline and abort: `onTimeout` when the body is late, `onAbort(reason)` when the request is
 * abandoned (at once if it already is). Returns the disarm function.
 */
type BodyWatch = (onTimeout: () => void, onAbort: (reason: unknown) => void) => () => void;

function readBody(req: IncomingMessage, maxBytes: number, timeoutMs: number, watch: BodyWatch): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBytes) {
      reject(tooLarge(maxBytes, `of ${declared} bytes `));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let disarm = (): void => {};
    let settled = false; // finish may run inside watch(), before disarm is assigned
    const finish = (err: Error | undefined, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      disarm();
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onClientGone);
      if (err) {
        chunks.length = 0;
        reject(err);
      } else resolve(body!);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) finish(tooLarge(maxBytes));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    const onClientGone = (): void =>
      finish(new HttpLimitError('HTTP_REQUEST_ABORTED', 'the client aborted the request'));
    const onError = onClientGone;
    const onAbort = (reason: unknown): void =>
      finish(reason instanceof Error ? reason : new HttpLimitError('HTTP_REQUEST_ABORTED', 'request aborted'));
    const onTimeout = (): void =>
      finish(new HttpLimitError('HTTP_BODY_TIMEOUT', `request body not received within ${timeoutMs} ms`));
    disarm = watch(onTimeout, onAbort);
    if (settled) return;
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onClientGone);
  });
}

function tooLarge(maxBytes: number, size = ''): HttpLimitError {
  return new HttpLimitError('HTTP_BODY_TOO_LARGE', `request body ${size}exceeds the limit of ${maxBytes} bytes`);
}

/** `readRequestBody` + JSON.parse. The message never quotes the body: it may carry a token. */
export async function readJsonRequestBody(req: IncomingMessage, options: ReadBodyOptions): Promise<unknown> {
  return parseJsonBody(await readRequestBody(req, options));
}

function parseJsonBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  if (text.trim() === '') throw new HttpLimitError('HTTP_BODY_INVALID_JSON', 'request body is empty; expected JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpLimitError('HTTP_BODY_INVALID_JSON', 'request body is not valid JSON');
  }
}

/** Load limits of one service; every field has a default (`DEFAULT_HTTP_LIMITS`). */
export interface HttpLimits {
  /** Requests handled at once; more are answered 503 with Retry-After at once, never queued. */
  maxConcurrentRequests: number;
  /** Open connections (idle keep-alive ones included); more are dropped by the kernel accept path. */
  maxConnections: number;
  /** All request headers must arrive within this time (slowloris); Node answers 408. */
  headersTimeoutMs: number;
  /** The body must arrive within this time once the handler reads it; 408. */
  bodyTimeoutMs: number;
  /** A request unanswered after this time gets 503 and its work is abandoned. */
  requestDeadlineMs: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxConcurrentRequests: 256,
  maxConnections: 1024,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 20_000,
  requestDeadlineMs: 30_000,
});

/** Fills defaults and checks every limit is a positive integer (fail at start-up, not under load). */
export function resolveHttpLimits(partial: Partial<HttpLimits> = {}): HttpLimits {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...stripUndefined(partial) };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new HttpLimitError('HTTP_LIMITS_INVALID', `${name} must be a positive integer, got ${String(value)}`);
  }
  return limits;
}

function stripUndefined(o: Partial<HttpLimits>): Partial<HttpLimits> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<HttpLimits>;
}

/** What a handler gets besides req/res: the deadline's signal and body readers bound to it. */
export interface RequestContext {
  /** Aborted when the deadline passes or the client disconnects: stop working, the answer was already sent. */
  signal: AbortSignal;
  readBody(maxBytes: number): Promise<Buffer>;
  readJson(maxBytes: number): Promise<unknown>;
}

export type LimitedHandler = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => Promise<void>;

/** Writes a service's own error body (each API has its error shape). */
export type ErrorWriter = (
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string>,
) => void;

export interface LimitedServerOptions {
  limits?: Partial<HttpLimits>;
  writeError: ErrorWriter;
  /** A handler rejected (services catch their own errors; this is the last resort). */
  onHandlerError?: (err: unknown) => void;
  /** Serve HTTPS (optionally requesting client certificates) with the same limits. */
  tls?: HttpsServerOptions;
  /** Runs before the handler (e.g. mTLS authorization); returns true when it answered the request itself. */
  gate?: RequestGate;
}

/** A service's HTTPS options and optional request gate (mTLS with SPIFFE SVIDs: `serviceMtls` of @airlock/identity). */
export interface ServiceTls {
  tls: HttpsServerOptions;
  gate?: RequestGate;
}

/** A pre-handler check that may answer (refuse) the request itself; true = answered. */
export type RequestGate = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * An `http.Server` that applies `HttpLimits` around `handler`: concurrency cap (503 + Retry-After), Node's header
 * and request timeouts, and a per-request deadline after which the client gets 503 and the handler's signal aborts.
 * A late answer from an abandoned handler is dropped (services write only while `!res.headersSent`).
 */
export function createLimitedServer(handler: LimitedHandler, options: LimitedServerOptions): Server {
  const limits = resolveHttpLimits(options.limits);
  // Node checks header/request timeouts on this interval (default 30 s, which would make short limits moot).
  const checkEvery = Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)));
  // Every request has the same deadline and body timeout: one timer each for all of them (see DeadlineQueue).
  const queues = {
    deadline: new DeadlineQueue(limits.requestDeadlineMs),
    body: new DeadlineQueue(limits.bodyTimeoutMs),
  };
  let active = 0;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (options.gate?.(req, res)) return;
    if (active >= limits.maxConcurrentRequests) {
      const busy = `server busy: more than ${limits.maxConcurrentRequests} concurrent requests; retry shortly`;
      writeLimitError(options.writeError, res, new HttpLimitError('HTTP_OVERLOADED', busy));
      return;
    }
    active++;
    const done = serveOne(handler, req, res, limits, options.writeError, queues);
    done.catch((err: unknown) => options.onHandlerError?.(err)).finally(() => active--);
  };
  // node:https.Server has node:http.Server's whole API (it extends tls.Server and mixes in http's).
  const server = options.tls
    ? (createHttpsServer({ ...options.tls, connectionsCheckingInterval: checkEvery }, listener) as unknown as Server)
    : createServer({ connectionsCheckingInterval: checkEvery }, listener);
  server.headersTimeout = limits.headersTimeoutMs;
  // Node's whole-request limit backs up the body reader's own deadline; 0 would disable it.
  server.requestTimeout = limits.headersTimeoutMs + limits.bodyTimeoutMs;
  server.maxConnections = limits.maxConnections;
  return server;
}

/** A pending deadline; `fire` is cleared when it is cancelled. */
interface Due {
  at: number;
  fire: (() => void) | undefined;
}

/**
 * Deadlines of one fixed duration, in the order they were set, so the oldest is always due first: one timer for
 * all of them, armed for the oldest live one. Setting and cancelling are O(1) (no timer and no AbortController per
 * request); cancelled ones are dropped from the front as newer ones arrive. The timer is unref'd: the open request
 * sockets keep the process alive, a cancelled deadline must not.
 */
export class DeadlineQueue {
  private due: Due[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  /** Calls `fire` after the duration unless the returned function is called first. */
  add(fire: () => void): () => void {
    this.dropCancelled();
    const item: Due = { at: performance.now() + this.ms, fire };
    this.due.push(item);
    if (this.timer === undefined) this.arm();
    return () => {
      item.fire = undefined;
    };
  }

  private dropCancelled(): void {
    while (this.head < this.due.length && this.due[this.head]!.fire === undefined) this.head++;
    if (this.head > 64 && this.head * 2 > this.due.length) {
      this.due = this.due.slice(this.head);
      this.head = 0;
    }
  }

  private arm(): void {
    this.dropCancelled();
    const next = this.due[this.head];
    if (next === undefined) {
      this.due = [];
      this.head = 0;
      return;
    }
    this.timer = setTimeout(() => this.expire(), Math.max(0, next.at - performance.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.due.length && this.due[this.head]!.at <= now) {
      const item = this.due[this.head++]!;
      const fire = item.fire;
      item.fire = undefined;
      fire?.();
    }
    this.arm();
  }
}

interface ServerQueues {
  deadline: DeadlineQueue;
  body: DeadlineQueue;
}

async function serveOne(
  handler: LimitedHandler,
  req: IncomingMessage,
  res: ServerResponse,
  limits: HttpLimits,
  writeError: ErrorWriter,
  queues: ServerQueues,
): Promise<void> {
  // The AbortController is made only if the handler asks for the signal or the request is abandoned.
  let controller: AbortController | undefined;
  let abandonedWith: HttpLimitError | undefined;
  let onAbandon: ((reason: unknown) => void) | undefined; // the body read in progress
  const abandon = (err: HttpLimitError): void => {
    if (abandonedWith) return;
    abandonedWith = err;
    onAbandon?.(err);
    controller?.abort(err);
  };
  const cancelDeadline = queues.deadline.add(() => {
    const err = new HttpLimitError(
      'HTTP_DEADLINE_EXCEEDED',
      `request not answered within ${limits.requestDeadlineMs} ms; abandoned`,
    );
    writeLimitError(writeError, res, err);
    abandon(err);
  });
  const onGone = (): void => {
    if (!res.writableFinished) abandon(new HttpLimitError('HTTP_REQUEST_ABORTED', 'the client went away'));
  };
  res.once('close', onGone);
  const watch: BodyWatch = (onTimeout, onAbort) => {
    if (abandonedWith) {
      onAbort(abandonedWith);
      return () => {};
    }
    const cancel = queues.body.add(onTimeout);
    onAbandon = onAbort;
    return () => {
      cancel();
      onAbandon = undefined;
    };
  };
  const readBodyOf = (maxBytes: number): Promise<Buffer> => readBody(req, maxBytes, limits.bodyTimeoutMs, watch);
  try {
    await handler(req, res, {
      get signal(): AbortSignal {
        if (!controller) {
          controller = new AbortController();
          if (abandonedWith) controller.abort(abandonedWith);
        }
        return controller.signal;
      },
      readBody: readBodyOf,
      readJson: async (maxBytes) => parseJsonBody(await readBodyOf(maxBytes)),
    });
  } finally {
    cancelDeadline();
    res.off('close', onGone);
  }
}

/** Answers a limit error and closes the connection (an unread or half-read body cannot be reused). */
export function writeLimitError(writeError: ErrorWriter, res: ServerResponse, err: HttpLimitError): void {
  if (res.headersSent || res.writableEnded) return;
  const headers: Record<string, string> = { connection: 'close' };
  if (err.status === 503) headers['retry-after'] = '1';
  writeError(res, err.status, err.code, err.message, headers);
}
