import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isSha256Hex, normalizePypiName, type MirrorEntry } from '@airlock/cas';
import { HttpError } from '../../errors.js';
import { header, sendBlob } from '../blob-response.js';
import type { MirrorContext } from '../context.js';
import { badRequest, escapeHtml, etagMatches, negotiate, notFound, parseAccept, sendBody } from '../http-utils.js';

// PEP 691 media types. `latest` is answered with the concrete v1 type; HTML is the default for clients that send
// no Accept or only `*/*` (older pip parses only HTML), JSON wins whenever the client names it.
export const PYPI_JSON = 'application/vnd.pypi.simple.v1+json';
export const PYPI_HTML = 'application/vnd.pypi.simple.v1+html';
const OFFERS = [
  'text/html',
  PYPI_JSON,
  'application/vnd.pypi.simple.latest+json',
  PYPI_HTML,
  'application/vnd.pypi.simple.latest+html',
] as const;
/** PEP 700 api-version 1.1 (adds `versions`, per-file `size`). */
const API_VERSION = '1.1';
const PROJECT_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$/;
const METADATA_SUFFIX = '.metadata';
/**
 * File links are relative to the project page (`<base>/simple/<project>/` → `<base>/files/…`), as PEP 503 and
 * PEP 691 allow: pip resolves them against the page's own URL, so one mirror works directly, behind a proxy and
 * through the runner's bridge, whatever address each client reaches it at.
 */
const PROJECT_PAGE_TO_ROOT = '../..';

type Representation = 'json' | 'html' | 'v1-html';

export type PypiRequest =
  | { kind: 'index' }
  | { kind: 'project'; project: string; trailingSlash: boolean }
  | { kind: 'file'; sha256: string; filename: string };

/** `/simple/`, `/simple/<project>/` and `/files/<sha256>/<filename>[.metadata]`. */
export function parsePypiPath(segments: string[], trailingSlash: boolean): PypiRequest | undefined {
  if (segments[0] === 'simple') {
    if (segments.length === 1 && trailingSlash) return { kind: 'index' };
    if (segments.length === 2 && segments[1] !== '-') return { kind: 'project', project: segments[1]!, trailingSlash };
    return undefined;
  }
  if (segments[0] === 'files' && segments.length === 3 && isSha256Hex(segments[1]) && !trailingSlash) {
    return { kind: 'file', sha256: segments[1], filename: segments[2]! };
  }
  return undefined;
}

export async function handlePypi(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  request: PypiRequest,
): Promise<void> {
  if (request.kind === 'file') return sendPypiFile(ctx, req, res, request.sha256, request.filename);
  const representation = chooseRepresentation(req);
  if (request.kind === 'index') {
    const names = ctx.store.index.listNames('pypi');
    const doc = cached(ctx, `index\0${representation}`, () =>
      representation === 'json'
        ? JSON.stringify({ meta: { 'api-version': API_VERSION }, projects: names.map((name) => ({ name })) })
        : renderIndexHtml(names),
    );
    return sendDocument(req, res, representation, doc);
  }
  const { project } = request;
  if (!PROJECT_NAME_RE.test(project)) throw badRequest(`'${project.slice(0, 100)}' is not a valid Python project name`);
  const normalized = normalizePypiName(project);
  if (normalized !== project || !request.trailingSlash) {
    // PEP 503: one canonical URL per project, always with the trailing slash.
    const location = `${ctx.publicPath(req)}/simple/${normalized}/`;
    res.writeHead(301, { Location: location, 'Content-Length': '0', 'Cache-Control': 'public, max-age=86400' });
    res.end();
    return;
  }
  const entries = ctx.store.index.findEntries({ ecosystem: 'pypi', name: normalized });
  if (entries.length === 0) throw notFound(`Python project ${normalized} is not in this mirror`);
  const doc = cached(ctx, `project\0${representation}\0${normalized}`, () => {
    const files = entries
      .map((e) => projectFile(e, PROJECT_PAGE_TO_ROOT))
      .sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
    return representation === 'json'
      ? renderProjectJson(normalized, entries, files)
      : renderProjectHtml(normalized, files);
  });
  return sendDocument(req, res, representation, doc);
}

function chooseRepresentation(req: IncomingMessage): Representation {
  const acceptHeader = req.headers.accept;
  if (acceptHeader === undefined || acceptHeader.trim() === '') return 'html';
  const chosen = negotiate(parseAccept(acceptHeader), OFFERS);
  if (chosen === undefined) {
    throw new HttpError(
      406,
      'MIRROR_NOT_ACCEPTABLE',
      `no acceptable representation; this index serves ${PYPI_JSON}, ${PYPI_HTML} and text/html`,
      {
        Vary: 'Accept',
      },
    );
  }
  if (chosen === 'text/html') return 'html';
  return chosen.endsWith('+json') ? 'json' : 'v1-html';
}

function cached(ctx: MirrorContext, key: string, render: () => string): { body: Buffer; etag: string } {
  const sequence = ctx.store.index.headSequence();
  const fullKey = `pypi\0${key}`;
  const hit = ctx.cache.get(sequence, fullKey);
  if (hit) return hit;
  const body = Buffer.from(render());
  const doc = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"` };
  ctx.cache.set(sequence, fullKey, doc);
  return doc;
}

function sendDocument(
  req: IncomingMessage,
  res: ServerResponse,
  representation: Representation,
  doc: { body: Buffer; etag: string },
): void {
  const headers = {
    'Content-Type':
      representation === 'json' ? PYPI_JSON : representation === 'v1-html' ? PYPI_HTML : 'text/html; charset=utf-8',
    Vary: 'Accept',
    ETag: doc.etag,
    'Cache-Control': 'public, max-age=60',
    'X-Content-Type-Options': 'nosniff',
  };
  if (etagMatches(header(req, 'if-none-match'), doc.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  sendBody(req, res, 200, doc.body, headers);
}

interface ProjectFile {
  filename: string;
  url: string;
  sha256: string;
  size: number;
  requiresPython: string | undefined;
  /** false, true (no reason) or the reason. */
  yanked: boolean | string;
  coreMetadataSha256: string | undefined;
  uploadTime: string | undefined;
}

export function pypiFileUrl(base: string, sha256: string, filename: string): string {
  return `${base}/files/${sha256}/${encodeURIComponent(filename)}`;
}

function projectFile(e: MirrorEntry, base: string): ProjectFile {
  const m = e.metadata;
  const yanked = m['yanked'];
  const core = m['coreMetadata'];
  const coreSha = typeof core === 'object' && core !== null ? (core as Record<string, unknown>)['sha256'] : undefined;
  return {
    filename: e.filename,
    url: pypiFileUrl(base, e.sha256, e.filename),
    sha256: e.sha256,
    size: e.size,
    requiresPython:
      typeof m['requiresPython'] === 'string' && m['requiresPython'] !== '' ? m['requiresPython'] : undefined,
    yanked: typeof yanked === 'string' ? (yanked === '' ? true : yanked) : yanked === true,
    coreMetadataSha256: isSha256Hex(coreSha) ? coreSha : undefined,
    uploadTime: typeof m['uploadTime'] === 'string' ? m['uploadTime'] : undefined,
  };
}

/** PEP 691 project page. Only `core-metadata` (PEP 714): the legacy JSON key crashes pip 22.3–23.1 (pypa/pip#12042). */
function renderProjectJson(name: string, entries: MirrorEntry[], files: ProjectFile[]): string {
  const versions = [...new Set(entries.map((e) => e.version).filter((v): v is string => v !== null))].sort();
  return JSON.stringify({
    meta: { 'api-version': API_VERSION },
    name,
    versions,
    files: files.map((f) => ({
      filename: f.filename,
      url: f.url,
      hashes: { sha256: f.sha256 },
      ...(f.requiresPython !== undefined ? { 'requires-python': f.requiresPython } : {}),
      ...(f.coreMetadataSha256 !== undefined ? { 'core-metadata': { sha256: f.coreMetadataSha256 } } : {}),
      ...(f.yanked !== false ? { yanked: f.yanked } : {}),
      size: f.size,
      ...(f.uploadTime !== undefined ? { 'upload-time': f.uploadTime } : {}),
    })),
  });
}

/** PEP 503 page with PEP 592 (yanked), PEP 658/714 (core metadata) and PEP 629 (version) attributes. */
function renderProjectHtml(name: string, files: ProjectFile[]): string {
  const links = files.map((f) => {
    let attrs = `href="${escapeHtml(`${f.url}#sha256=${f.sha256}`)}"`;
    if (f.requiresPython !== undefined) attrs += ` data-requires-python="${escapeHtml(f.requiresPython)}"`;
    if (f.yanked !== false) attrs += f.yanked === true ? ' data-yanked=""' : ` data-yanked="${escapeHtml(f.yanked)}"`;
    if (f.coreMetadataSha256 !== undefined) {
      attrs += ` data-core-metadata="sha256=${f.coreMetadataSha256}" data-dist-info-metadata="sha256=${f.coreMetadataSha256}"`;
    }
    return `    <a ${attrs}>${escapeHtml(f.filename)}</a><br />`;
  });
  return htmlPage(`Links for ${name}`, links);
}

function renderIndexHtml(names: string[]): string {
  return htmlPage(
    'Simple index',
    names.map((n) => `    <a href="${escapeHtml(encodeURIComponent(n))}/">${escapeHtml(n)}</a><br />`),
  );
}

function htmlPage(title: string, lines: string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    `    <meta name="pypi:repository-version" content="${API_VERSION}">`,
    `    <title>${escapeHtml(title)}</title>`,
    '  </head>',
    '  <body>',
    `    <h1>${escapeHtml(title)}</h1>`,
    ...lines,
    '  </body>',
    '</html>',
    '',
  ].join('\n');
}

async function sendPypiFile(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  sha256: string,
  filename: string,
): Promise<void> {
  const file = ctx.files.lookup(`pypi\0${sha256}\0${filename}`, () =>
    ctx.store.index.findFileBySha256('pypi', sha256, filename),
  );
  if (file) return sendBlob(ctx, req, res, file);
  if (filename.endsWith(METADATA_SUFFIX)) {
    const base = filename.slice(0, -METADATA_SUFFIX.length);
    const owner = ctx.store.index
      .findEntriesBySha256(sha256)
      .find((e) => e.ecosystem === 'pypi' && e.filename === base);
    const core = owner ? projectFile(owner, '').coreMetadataSha256 : undefined;
    const blob = core ? ctx.store.index.getVisibleBlob(core) : undefined;
    if (blob) return sendBlob(ctx, req, res, blob, { contentType: 'text/plain; charset=utf-8' });
  }
  throw notFound(`no Python file ${filename.slice(0, 200)} with sha256 ${sha256} in this mirror`);
}
