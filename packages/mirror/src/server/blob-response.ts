import { CasError } from '@airlock/cas';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../errors.js';
import type { BlobRoute, MirrorContext } from './context.js';
import { etagMatches, parseRange } from './http-utils.js';

const IMMUTABLE = 'public, max-age=31536000, immutable';

export interface BlobResponseOptions {
  contentType?: string;
}

/**
 * Streams one blob (sha256 + its indexed size) with verify-on-read: ETag `"sha256:<hex>"`, single Range
 * (206/416), HEAD, immutable caching. A blob that fails verification is never sent: 500 the first time
 * (it is quarantined then), 410 afterwards.
 */
export async function sendBlob(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  blob: { sha256: string; size: number },
  options: BlobResponseOptions = {},
): Promise<void> {
  rememberRoute(ctx, req, blob, options);
  const plain = req.headers['if-none-match'] === undefined && req.headers.range === undefined;
  if (plain) return sendWhole(ctx, req, res, blob, options);
  const etag = `"sha256:${blob.sha256}"`;
  const common = {
    ETag: etag,
    'Cache-Control': IMMUTABLE,
    'Accept-Ranges': 'bytes',
    'X-Content-Type-Options': 'nosniff',
  };
  if (etagMatches(header(req, 'if-none-match'), etag)) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  const ifRange = header(req, 'if-range');
  const range =
    ifRange !== undefined && ifRange !== etag
      ? ({ kind: 'none' } as const)
      : parseRange(header(req, 'range'), blob.size);
  if (range.kind === 'unsatisfiable') {
    throw new HttpError(416, 'MIRROR_RANGE_NOT_SATISFIABLE', `range not satisfiable for ${blob.size} bytes`, {
      'Content-Range': `bytes */${blob.size}`,
    });
  }
  let read;
  try {
    read = await ctx.store.openBlob(
      blob.sha256,
      range.kind === 'single' ? { start: range.start, end: range.end } : undefined,
    );
  } catch (err) {
    throw blobError(err, blob.sha256, blob.size);
  }
  const headers: Record<string, string> = {
    ...common,
    'Content-Type': options.contentType ?? 'application/octet-stream',
  };
  let status = 200;
  if (read.range) {
    status = 206;
    headers['Content-Range'] = `bytes ${read.range.start}-${read.range.end}/${read.size}`;
    headers['Content-Length'] = String(read.range.end - read.range.start + 1);
  } else {
    headers['Content-Length'] = String(read.size);
  }
  res.writeHead(status, headers);
  await writeBody(req, res, read);
}

/** The body after the headers: the in-memory bytes in one write, nothing for HEAD, else the verified stream. */
async function writeBody(
  req: IncomingMessage,
  res: ServerResponse,
  read: Awaited<ReturnType<MirrorContext['store']['openBlob']>>,
): Promise<void> {
  if (read.bytes) {
    // Small verified blob already in memory: one write, no stream machinery.
    res.end(req.method === 'HEAD' ? undefined : read.bytes);
    return;
  }
  if (req.method === 'HEAD') {
    read.stream.destroy();
    res.end();
    return;
  }
  // A client that goes away mid-stream rejects the pipeline; nothing to report.
  await pipeline(read.stream, res).catch(() => undefined);
}

// Bounded key length and no query strings: request targets are attacker input, the cache must stay small.
const MAX_ROUTE_KEY = 512;

function rememberRoute(
  ctx: MirrorContext,
  req: IncomingMessage,
  blob: { sha256: string; size: number },
  options: BlobResponseOptions,
): void {
  const url = req.url;
  if (url === undefined || url.length > MAX_ROUTE_KEY || url.includes('?') || ctx.routes.get(url)) return;
  ctx.routes.remember(url, options.contentType ? { blob, contentType: options.contentType } : { blob });
}

/** Response headers of a whole blob, built once per blob object and content type (lookups return stable objects). */
const wholeHeaders = new WeakMap<object, Readonly<Record<string, string>>>();

function headersOf(blob: { sha256: string; size: number }, contentType: string): Readonly<Record<string, string>> {
  const cached = wholeHeaders.get(blob);
  if (cached && cached['Content-Type'] === contentType) return cached;
  const headers = Object.freeze({
    ETag: `"sha256:${blob.sha256}"`,
    'Cache-Control': IMMUTABLE,
    'Accept-Ranges': 'bytes',
    'X-Content-Type-Options': 'nosniff',
    'Content-Type': contentType,
    'Content-Length': String(blob.size),
  });
  wholeHeaders.set(blob, headers);
  return headers;
}

/**
 * Whether the request has an If-None-Match or a Range header (any case): the two that take a blob GET off the
 * whole-blob path (`sendBlob`'s `plain`). Read from the raw list: `req.headers` builds an object per request.
 */
function conditionalOrRange(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length; // compared first: lower-casing only the few names that could match
    if ((n === 5 && name.toLowerCase() === 'range') || (n === 13 && name.toLowerCase() === 'if-none-match'))
      return true;
  }
  return false;
}

/**
 * The hot path without a promise: a plain GET/HEAD (no Range, no conditional) of a remembered route whose verified
 * bytes the store holds in memory and vouches for synchronously (one lstat). False when any of that does not hold:
 * the caller then takes `sendBlob`, which re-verifies and reports errors. Answers exactly as `sendWhole` would.
 */
export function sendCachedWhole(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: BlobRoute,
): boolean {
  if (conditionalOrRange(req)) return false;
  const bytes = ctx.store.cachedBlobSync(route.blob.sha256);
  if (bytes === undefined || bytes.length !== route.blob.size) return false;
  route.headers ??= headersOf(route.blob, route.contentType ?? 'application/octet-stream');
  res.writeHead(200, route.headers);
  res.end(req.method === 'HEAD' ? undefined : bytes);
  return true;
}

/** The common case (no Range, no conditional): 200 with the whole verified blob and prebuilt headers. */
async function sendWhole(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  blob: { sha256: string; size: number },
  options: BlobResponseOptions,
): Promise<void> {
  let read;
  try {
    read = await ctx.store.openBlob(blob.sha256);
  } catch (err) {
    throw blobError(err, blob.sha256, blob.size);
  }
  const headers = headersOf(blob, options.contentType ?? 'application/octet-stream');
  res.writeHead(200, read.size === blob.size ? headers : { ...headers, 'Content-Length': String(read.size) });
  await writeBody(req, res, read);
}

function blobError(err: unknown, sha256: string, size: number): unknown {
  if (!(err instanceof CasError)) return err;
  switch (err.code) {
    case 'CAS_CORRUPT':
      return new HttpError(
        500,
        'MIRROR_BLOB_CORRUPT',
        `blob sha256:${sha256} failed integrity verification on read and has been quarantined; it will not be served`,
      );
    case 'CAS_QUARANTINED':
      return new HttpError(
        410,
        'MIRROR_BLOB_QUARANTINED',
        `blob sha256:${sha256} was quarantined after failing integrity verification`,
      );
    case 'CAS_NOT_FOUND':
      return new HttpError(
        500,
        'MIRROR_BLOB_MISSING',
        `blob sha256:${sha256} is published but missing from the store (run fsck)`,
      );
    case 'CAS_INVALID_RANGE':
      return new HttpError(416, 'MIRROR_RANGE_NOT_SATISFIABLE', `range not satisfiable for ${size} bytes`, {
        'Content-Range': `bytes */${size}`,
      });
    default:
      return err;
  }
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
