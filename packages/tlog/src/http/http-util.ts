import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusFor, TlogError } from '../errors.js';

/** What a route returns; the server writes it. */
export interface HttpResponse {
  status: number;
  /** Serialised as JSON unless a string (sent as is with `contentType`). */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

// A DSSE entry carries its whole envelope: a transfer-bundle statement names every blob (~230 bytes each), so
// 1 MiB capped signed syncs at ~4,400 blobs. 32 MiB allows ~140k while still bounding memory per request.
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/**
 * Reads and parses a JSON request body of at most `maxBytes`. A declared Content-Length over the limit is refused
 * before reading anything; a chunked body is cut off as soon as it passes the limit.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBytes) {
      reject(
        new TlogError(
          'TLOG_PAYLOAD_TOO_LARGE',
          `request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`,
        ),
      );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > maxBytes) {
        done = true;
        chunks.length = 0;
        reject(new TlogError('TLOG_PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        reject(new TlogError('TLOG_BAD_REQUEST', 'request body is empty; expected JSON'));
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new TlogError('TLOG_BAD_REQUEST', 'request body is not valid JSON'));
      }
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

export function send(res: ServerResponse, response: HttpResponse): void {
  if (res.headersSent) return;
  const isText = typeof response.body === 'string';
  const payload = isText ? (response.body as string) : JSON.stringify(response.body);
  res.writeHead(response.status, {
    'Content-Type': response.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json'),
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
