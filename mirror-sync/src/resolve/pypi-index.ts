import type { DigestSet } from '@airlock/core';
import { SyncError } from '../errors.js';
import { isSafeFilename } from '../inputs/common.js';
import { normalizePypiName } from '../inputs/requirements-txt.js';
import type { ManifestBlob, PinnedRequirement } from '../types.js';
import type { EntryDraft, EntryTask, ResolveContext } from './context.js';
import { pypiPurl } from './purl.js';
import { parseSimpleHtml, parseSimpleJson, SIMPLE_ACCEPT, type SimpleFile } from './pypi-simple.js';

export const PYPI_PUBLIC_INDEX = 'https://pypi.org/simple/';
/** PEP 658 metadata files are small; anything bigger is not metadata. */
const MAX_CORE_METADATA = 16 * 1024 * 1024;

const SDIST = /\.(tar\.gz|tgz|zip|tar\.bz2|tar\.xz)$/i;

/**
 * One task per requirement. The project page is fetched once per project, as PEP 691 JSON when the index offers it
 * and PEP 503 HTML otherwise. Every file whose index sha256 is one of the pinned hashes is mirrored (a
 * requirement usually pins one hash per wheel/sdist); pins the index does not offer are noted, and a requirement
 * with none offered fails. PEP 658 core metadata is fetched when offered, checked against its advertised hash
 * and stored as its own blob.
 */
export function pypiTasks(
  reqs: readonly PinnedRequirement[],
  ctx: ResolveContext,
  index = PYPI_PUBLIC_INDEX,
): EntryTask[] {
  const base = index.replace(/\/?$/, '/');
  const pages = new Map<string, Promise<SimpleFile[]>>();
  const page = (project: string): Promise<SimpleFile[]> => {
    let p = pages.get(project);
    if (!p) {
      ctx.planned(1);
      p = fetchProjectPage(ctx, `${base}${project}/`, project).finally(ctx.done);
      pages.set(project, p);
    }
    return p;
  };

  return reqs.map((req) => ({
    label: `pypi ${req.name}==${req.version}`,
    run: async () => {
      const what = `pypi ${req.name}==${req.version}`;
      const files = await page(req.normalizedName);
      const chosen = files.filter((f) => f.hashes.sha256 !== undefined && req.sha256.includes(f.hashes.sha256));
      const offered = new Set(chosen.map((f) => f.hashes.sha256));
      const missing = req.sha256.filter((h) => !offered.has(h));
      if (chosen.length === 0) {
        throw new SyncError(
          'SYNC_UPSTREAM_INVALID',
          `${what}: the index offers no file with any of the ${req.sha256.length} pinned sha256 hash(es)`,
          {
            details: { pinned: req.sha256 },
          },
        );
      }
      for (const h of missing)
        ctx.note(`${what}: pinned sha256 ${h} is not offered by the index (that platform's file will be missing)`);
      const unhashed = files.filter((f) => f.hashes.sha256 === undefined).length;
      if (unhashed > 0)
        ctx.note(`${what}: the index lists ${unhashed} file(s) without a sha256; they were not considered`);
      const byFilename = new Map<string, SimpleFile>();
      for (const f of chosen) if (!byFilename.has(f.filename)) byFilename.set(f.filename, f);
      return Promise.all([...byFilename.values()].map((f) => fetchFile(ctx, req, f, what)));
    },
  }));
}

async function fetchProjectPage(ctx: ResolveContext, url: string, project: string): Promise<SimpleFile[]> {
  const res = await ctx.http.getBytes(url, SIMPLE_ACCEPT, ctx.maxMetadataBytes);
  const type = res.contentType.split(';')[0]!.trim().toLowerCase();
  const text = res.body.toString('utf8');
  if (type === 'application/vnd.pypi.simple.v1+json' || type === 'application/json') {
    const page = parseSimpleJson(text, res.url);
    if (page.name !== undefined && normalizePypiName(page.name) !== project) {
      throw new SyncError('SYNC_UPSTREAM_INVALID', `${url}: project page is for '${page.name}', not '${project}'`);
    }
    return page.files;
  }
  return parseSimpleHtml(text, res.url).files;
}

async function fetchFile(
  ctx: ResolveContext,
  req: PinnedRequirement,
  f: SimpleFile,
  what: string,
): Promise<EntryDraft> {
  if (!isSafeFilename(f.filename))
    throw new SyncError(
      'SYNC_UPSTREAM_INVALID',
      `${what}: the index names a file '${f.filename}', which is not a safe file name`,
    );
  const packagetype = f.filename.endsWith('.whl') ? 'bdist_wheel' : SDIST.test(f.filename) ? 'sdist' : undefined;
  if (!packagetype)
    throw new SyncError('SYNC_UPSTREAM_INVALID', `${what}: '${f.filename}' is neither a wheel nor an sdist`);
  const label = `${what} (${f.filename})`;
  ctx.planned(1);
  const blob = await ctx.store
    .fetchPinned({ what: label, urls: [f.url], expected: { sha256: f.hashes.sha256! }, maxBytes: ctx.maxBlobBytes })
    .finally(ctx.done);

  let coreMetadata: ManifestBlob | null = null;
  if (f.coreMetadata !== false) {
    const expected: DigestSet = {};
    if (f.coreMetadata !== true) {
      for (const [alg, len] of [
        ['sha256', 64],
        ['sha384', 96],
        ['sha512', 128],
      ] as const) {
        const h = f.coreMetadata[alg];
        if (h !== undefined && h.length === len) expected[alg] = h;
      }
    }
    const pinned = Object.keys(expected).length > 0;
    if (!pinned) ctx.note(`${label}: core metadata offered without a usable hash; stored as served`);
    ctx.planned(1);
    const meta = await ctx.store
      .fetchPinned({
        what: `${label} core metadata`,
        urls: [`${f.url}.metadata`],
        expected,
        pinned,
        maxBytes: Math.min(MAX_CORE_METADATA, ctx.maxMetadataBytes),
      })
      .finally(ctx.done);
    coreMetadata = { sha256: meta.sha256, size: meta.size };
  }
  if (f.yanked !== false)
    ctx.note(`${label}: yanked upstream${f.yanked ? ` (${f.yanked})` : ''}; mirrored with the yank recorded`);
  return {
    ecosystem: 'pypi',
    name: req.normalizedName,
    version: req.version,
    filename: f.filename,
    urls: [f.url],
    blob,
    purl: pypiPurl(req.normalizedName, req.version, f.filename),
    metadata: { project: req.name, requiresPython: f.requiresPython, yanked: f.yanked, packagetype, coreMetadata },
  };
}
