import type { ServerResponse } from 'node:http';
import { HttpLimitError } from '@airlock/core';
import { httpStatusFor, TlogError } from '../errors.js';

/** What a route returns; the server writes it. */
export interface HttpResponse {
  status: number;
  /** Serialised as JSON unless a string or Buffer (sent as is with `contentType`). */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

// A DSSE entry carries its whole envelope: a transfer-bundle statement names every blob (~230 bytes each), so
// 1 MiB capped signed syncs at ~4,400 blobs. 32 MiB allows ~140k while still bounding memory per request.
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

export function send(res: ServerResponse, response: HttpResponse): void {
  // After a deadline answer the handler's late result is dropped.
  if (res.headersSent || res.writableEnded) return;
  const isText = typeof response.body === 'string';
  const isBytes = Buffer.isBuffer(response.body);
  const payload = isText || isBytes ? (response.body as string | Buffer) : JSON.stringify(response.body);
  res.writeHead(response.status, {
    'Content-Type':
      response.contentType ??
      (isText ? 'text/plain; charset=utf-8' : isBytes ? 'application/octet-stream' : 'application/json'),
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
    ...response.headers,
  });
  res.end(payload);
}

/** Rekor-style error body `{code, message}`; code is the HTTP status. */
export function errorResponse(status: number, message: string, headers?: Record<string, string>): HttpResponse {
  return { status, body: { code: status, message }, ...(headers ? { headers } : {}) };
}

/** Maps a thrown error to a response: typed errors keep their message; anything else is an opaque 500. */
export function responseForError(err: unknown): HttpResponse {
  if (err instanceof HttpLimitError) return errorResponse(err.status, err.message, { Connection: 'close' });
  if (err instanceof TlogError) {
    const e = err;
    const status = httpStatusFor(e.code);
    if (status === 500) return errorResponse(500, 'internal error');
    if (e.code === 'TLOG_ENTRY_EXISTS') {
      const uuid = String(e.details?.uuid ?? '');
      return errorResponse(409, e.message, { Location: `/api/v1/log/entries/${uuid}` });
    }
    return errorResponse(status, e.message, status === 413 ? { Connection: 'close' } : undefined);
  }
  return errorResponse(500, 'internal error');
}
