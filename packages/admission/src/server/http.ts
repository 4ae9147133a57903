import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpLimitError, readRequestBody } from '@airlock/core';
import { AdmissionServerError, type AdmissionServerErrorCode } from './errors.js';
import type { AdmissionMetrics } from './metrics.js';
import { sharedSignal } from '../abort.js';

/** Request plumbing shared by the review and workspace handlers: deadline signal, body, answers. */

/** A per-request AbortSignal that fires at the deadline or when the client goes away. */
export function requestSignal(res: ServerResponse, deadlineMs: number): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(new AdmissionServerError('ADMISSION_DEADLINE_EXCEEDED', `no decision within ${deadlineMs} ms`)),
    deadlineMs,
  );
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new AdmissionServerError('ADMISSION_INTERNAL', 'client went away'));
  };
  res.once('close', onClose);
  return {
    signal: sharedSignal(controller.signal),
    done: () => {
      clearTimeout(timer);
      res.off('close', onClose);
    },
  };
}

/** Reads the body within the deadline and parses it as JSON; limit errors become AdmissionServerErrors. */
export async function readJsonBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<unknown> {
  let body: Buffer;
  try {
    body = await readRequestBody(req, { maxBytes, timeoutMs, signal });
  } catch (err) {
    throw bodyError(err);
  }
  const text = body.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Only a failed parse pays for telling an empty body from a malformed one.
    if (text.trim() === '') throw new AdmissionServerError('ADMISSION_BAD_REQUEST', 'the request body is empty');
    throw new AdmissionServerError('ADMISSION_BAD_REQUEST', 'the request body is not valid JSON');
  }
}

function bodyError(err: unknown): AdmissionServerError {
  if (err instanceof AdmissionServerError) {
    // The deadline fired while the body was still arriving.
    return err.code === 'ADMISSION_DEADLINE_EXCEEDED'
      ? new AdmissionServerError('ADMISSION_BODY_TIMEOUT', `request body not received in time: ${err.message}`)
      : err;
  }
  if (err instanceof HttpLimitError) {
    const code: AdmissionServerErrorCode =
      err.code === 'HTTP_BODY_TOO_LARGE'
        ? 'ADMISSION_BODY_TOO_LARGE'
        : err.code === 'HTTP_BODY_TIMEOUT'
          ? 'ADMISSION_BODY_TIMEOUT'
          : 'ADMISSION_BAD_REQUEST';
    return new AdmissionServerError(code, err.message);
  }
  return new AdmissionServerError('ADMISSION_BAD_REQUEST', `cannot read the request body: ${(err as Error).message}`);
}

const STATUS: Partial<Record<AdmissionServerErrorCode, number>> = {
  ADMISSION_BAD_REQUEST: 400,
  ADMISSION_BODY_TOO_LARGE: 413,
  ADMISSION_BODY_TIMEOUT: 408,
};

/**
 * Answers a request-level error (no usable uid) with its status. A body left unread (413, 408) is drained first,
 * within bounds, so the answer reaches the client (see `drainBounded`).
 */
export function sendRequestError(ctx: { metrics: AdmissionMetrics }, res: ServerResponse, err: unknown): void {
  const e =
    err instanceof AdmissionServerError
      ? err
      : new AdmissionServerError('ADMISSION_INTERNAL', `internal error: ${(err as Error).message}`);
  ctx.metrics.rejectedRequest(e.code);
  const status = STATUS[e.code] ?? 500;
  drainBounded(res.req);
  sendError(res, status, e.code, e.message);
}

/** What a refused request may still send before its connection is cut. */
export const DRAIN_LIMITS = { maxBytes: 16 * 1024 * 1024, maxMs: 5_000 };

/**
 * Reads and discards the rest of a refused request's body, up to DRAIN_LIMITS, then leaves the connection usable;
 * past either limit it is destroyed. Closing a socket with unread data makes the kernel send a TCP RST, and a client
 * still writing its body would lose the answer to EPIPE/ECONNRESET. Counted on the socket, so Node's own dump of an
 * unread body is bounded too.
 */
export function drainBounded(req: IncomingMessage, limits = DRAIN_LIMITS): void {
  if (req.complete || req.destroyed) return;
  const socket = req.socket;
  let seen = 0;
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', cleanup);
    req.off('end', cleanup);
  };
  const cut = (): void => {
    cleanup();
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > limits.maxBytes) cut();
  };
  const timer = setTimeout(cut, limits.maxMs);
  socket.on('data', onData);
  socket.once('close', cleanup);
  req.once('end', cleanup);
  req.resume();
}

/** Runs `work` until it settles or `signal` aborts, whichever is first; a late result or rejection is dropped. */
export async function raceDeadline<T>(
  work: () => Promise<T>,
  signal: AbortSignal,
): Promise<{ kind: 'answer'; value: T } | { kind: 'error'; error: unknown } | { kind: 'deadline' }> {
  const settled = Promise.resolve()
    .then(work)
    .then(
      (value) => ({ kind: 'answer' as const, value }),
      (error: unknown) => ({ kind: 'error' as const, error }),
    );
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<{ kind: 'deadline' }>((resolve) => {
    onAbort = () => resolve({ kind: 'deadline' });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([settled, deadline]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** `CODE: message`, bounded; AirlockErrors keep their code so operators can grep for it. */
export function describeError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const text = typeof code === 'string' ? `${code}: ${message}` : message;
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}

export function seconds(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendText(res, status, JSON.stringify(body), 'application/json', headers);
}

export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
