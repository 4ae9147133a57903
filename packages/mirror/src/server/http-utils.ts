import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../errors.js';

/** Longest request target accepted (Node's header limit would answer 431 a little later anyway). */
export const MAX_URL_LENGTH = 4096;
const MAX_ACCEPT_LENGTH = 2048;
// eslint-disable-next-line no-control-regex
const FORBIDDEN_RAW = /[\\\u0000-\u001f\u007f]|%(?:00|5c)/i;
// eslint-disable-next-line no-control-regex
const FORBIDDEN_DECODED = /[\\\u0000-\u001f\u007f]/;

export interface RequestPath {
  /** The path as sent, without query string. */
  raw: string;
  /** Percent-decoded segments (a decoded `%2f` stays inside its segment: npm's `@scope%2fname`). */
  segments: string[];
  trailingSlash: boolean;
}

/**
 * Splits and decodes the request target. Hostile forms fail closed with 400/414: NUL and control characters,
 * backslashes (raw or encoded), malformed percent-encoding, and any `.`/`..` segment, raw or encoded. (Blob paths
 * are built from validated hex digests only, so this is defence in depth, and keeps errors clear.)
 */
export function parseRequestPath(url: string | undefined): RequestPath {
  if (url === undefined || url.length === 0) throw badRequest('missing request target');
  if (url.length > MAX_URL_LENGTH)
    throw new HttpError(414, 'MIRROR_URI_TOO_LONG', `request target longer than ${MAX_URL_LENGTH} characters`);
  if (url[0] !== '/') throw badRequest('request target must be an absolute path');
  const end = url.search(/[?#]/);
  const raw = end >= 0 ? url.slice(0, end) : url;
  if (FORBIDDEN_RAW.test(raw)) throw badRequest('request path contains NUL, control characters or backslashes');
  if (raw === '/') return { raw, segments: [], trailingSlash: false };
  const parts = raw.slice(1).split('/');
  const trailingSlash = raw.endsWith('/');
  if (trailingSlash) parts.pop();
  const segments = parts.map((p) => {
    let d: string;
    try {
      d = decodeURIComponent(p);
    } catch {
      throw badRequest('request path has malformed percent-encoding');
    }
    if (FORBIDDEN_DECODED.test(d)) throw badRequest('request path contains NUL, control characters or backslashes');
    if (d.split('/').some((piece) => piece === '.' || piece === '..'))
      throw badRequest('request path contains a dot segment');
    return d;
  });
  return { raw, segments, trailingSlash };
}

export function badRequest(message: string): HttpError {
  return new HttpError(400, 'MIRROR_BAD_REQUEST', message);
}

export function notFound(message = 'not found'): HttpError {
  return new HttpError(404, 'MIRROR_NOT_FOUND', message);
}

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

const TOKEN = "[a-z0-9!#$%&'*+.^_`|~-]+";
const MEDIA_RE = new RegExp(`^(${TOKEN})/(${TOKEN})$`);
const Q_RE = /^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** RFC 9110 §12.5.1 Accept. Unparseable members are ignored (not fatal); an absurdly long header is a 400. */
export function parseAccept(header: string | string[] | undefined): MediaRange[] {
  if (header === undefined) return [];
  const value = Array.isArray(header) ? header.join(',') : header;
  if (value.length > MAX_ACCEPT_LENGTH) throw badRequest(`Accept header longer than ${MAX_ACCEPT_LENGTH} characters`);
  const out: MediaRange[] = [];
  for (const member of value.split(',')) {
    const [media, ...params] = member.split(';').map((s) => s.trim().toLowerCase());
    const m = MEDIA_RE.exec(media ?? '');
    if (!m) continue;
    let q = 1;
    let valid = true;
    for (const p of params) {
      if (!p.startsWith('q=')) continue;
      const qm = Q_RE.exec(p.replace(/\s+/g, ''));
      if (!qm) valid = false;
      else q = Number(qm[1]);
    }
    if (valid) out.push({ type: m[1]!, subtype: m[2]!, q });
  }
  return out;
}

/**
 * Picks the offer the client prefers: highest q, then the most specific matching range, then the server's order.
 * Undefined when nothing acceptable (every offer at q=0 or unmatched).
 */
export function negotiate(accept: MediaRange[], offers: readonly string[]): string | undefined {
  let best: { offer: string; q: number; specificity: number; index: number } | undefined;
  offers.forEach((offer, index) => {
    const [type, subtype] = offer.split('/') as [string, string];
    let match: { q: number; specificity: number } | undefined;
    for (const r of accept) {
      const specificity =
        r.type === type && r.subtype === subtype
          ? 2
          : r.type === type && r.subtype === '*'
            ? 1
            : r.type === '*' && r.subtype === '*'
              ? 0
              : -1;
      if (specificity < 0) continue;
      if (!match || specificity > match.specificity) match = { q: r.q, specificity };
    }
    if (!match || match.q <= 0) return;
    if (!best || match.q > best.q || (match.q === best.q && match.specificity > best.specificity))
      best = { offer, ...match, index };
  });
  return best?.offer;
}

export type RangeRequest =
  { kind: 'none' } | { kind: 'single'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * RFC 9110 §14.2 single byte ranges. Other units and multi-range requests are ignored (a full 200 is a valid
 * answer); malformed or unsatisfiable byte ranges are a 416.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return { kind: 'none' };
  const spec = m[1]!.trim();
  if (spec.includes(',')) return { kind: 'none' };
  const suffix = /^-(\d{1,15})$/.exec(spec);
  if (suffix) {
    const n = Number(suffix[1]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'single', start: Math.max(0, size - n), end: size - 1 };
  }
  const full = /^(\d{1,15})-(\d{0,15})$/.exec(spec);
  if (!full) return { kind: 'unsatisfiable' };
  const start = Number(full[1]);
  const end = full[2] === '' ? size - 1 : Number(full[2]);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'single', start, end: Math.min(end, size - 1) };
}

/** True when `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === bare);
}

export function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendBody(req, res, status, Buffer.from(JSON.stringify(body)), {
    'Content-Type': 'application/json',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
}

export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: Buffer,
  headers: Record<string, string>,
): void {
  res.writeHead(status, { ...headers, 'Content-Length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function sendError(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(
    req,
    res,
    err.status,
    { error: err.message, code: err.code },
    { 'Cache-Control': 'no-store', ...err.headers },
  );
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
