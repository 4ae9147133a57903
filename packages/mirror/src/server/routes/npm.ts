import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { MirrorEntry } from '@airlock/cas';
import { toSri } from '@airlock/core';
import semver from 'semver';
import { sendBlob } from '../blob-response.js';
import type { MirrorContext } from '../context.js';
import { badRequest, etagMatches, negotiate, notFound, parseAccept, sendBody } from '../http-utils.js';
import { header } from '../blob-response.js';

/** npm's abbreviated ("corgi") metadata media type. */
export const NPM_ABBREVIATED = 'application/vnd.npm.install-v1+json';
const NPM_OFFERS = ['application/json', NPM_ABBREVIATED] as const;
// cnpmcore/validate-npm-package-name: lowercase is required only for new packages, so accept old mixed case.
const NPM_NAME_RE = /^(?:@[A-Za-z0-9][A-Za-z0-9._~-]*\/)?[A-Za-z0-9._~-][A-Za-z0-9._~-]*$/;
const MAX_NAME_LENGTH = 214;

/** Fields the abbreviated document keeps per version (npm registry + Verdaccio's extras). */
const ABBREVIATED_FIELDS = [
  'name',
  'version',
  'deprecated',
  'dependencies',
  'optionalDependencies',
  'devDependencies',
  'bundleDependencies',
  'bundledDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'acceptDependencies',
  'bin',
  'directories',
  'dist',
  'engines',
  'os',
  'cpu',
  'libc',
  'funding',
  '_hasShrinkwrap',
] as const;

const TOP_LEVEL_FROM_LATEST = [
  'description',
  'license',
  'homepage',
  'repository',
  'bugs',
  'keywords',
  'author',
] as const;
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall'] as const;

export type NpmRequest =
  | { kind: 'packument'; name: string }
  | { kind: 'version'; name: string; spec: string }
  | { kind: 'tarball'; name: string; filename: string };

/**
 * Recognises every spelling npm and yarn use: `/name`, `/@scope%2fname` (any case of %2f, or `%40` for `@`),
 * `/@scope/name`, plus `/-/` tarball paths and `/<name>/<version|tag>`. Undefined when it is not an npm path.
 */
export function parseNpmPath(segments: string[]): NpmRequest | undefined {
  if (segments.length === 0 || segments.some((s) => s.length === 0)) return undefined;
  let name: string;
  let rest: string[];
  const first = segments[0]!;
  if (first.startsWith('@') && !first.includes('/')) {
    if (segments.length < 2) return undefined;
    name = `${first}/${segments[1]}`;
    rest = segments.slice(2);
  } else {
    name = first;
    rest = segments.slice(1);
  }
  if (name.length > MAX_NAME_LENGTH || !NPM_NAME_RE.test(name)) return undefined;
  if (rest.length === 0) return { kind: 'packument', name };
  if (rest.length === 1) return { kind: 'version', name, spec: rest[0]! };
  if (rest.length === 2 && rest[0] === '-') return { kind: 'tarball', name, filename: rest[1]! };
  return undefined;
}

export async function handleNpm(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  request: NpmRequest,
): Promise<void> {
  if (request.kind === 'tarball') {
    if (!/^[A-Za-z0-9._~+-]+\.tgz$/.test(request.filename))
      throw badRequest('npm tarball file names end in .tgz and contain no special characters');
    const entry = ctx.files.lookup(`npm\0${request.name}\0${request.filename}`, () =>
      ctx.store.index.findFile('npm', request.name, request.filename),
    );
    if (!entry) throw notFound(`no tarball ${request.filename} for npm package ${request.name} in this mirror`);
    await sendBlob(ctx, req, res, entry);
    return;
  }
  const abbreviated =
    request.kind === 'packument' && negotiate(parseAccept(req.headers.accept), NPM_OFFERS) === NPM_ABBREVIATED;
  const doc = renderPackument(ctx, req, request.name, abbreviated);
  if (!doc) throw notFound(`npm package ${request.name} is not in this mirror`);
  if (request.kind === 'version') {
    const full = JSON.parse(doc.body.toString('utf8')) as Packument;
    const version = full.versions[request.spec] ?? full.versions[full['dist-tags'][request.spec] ?? ''];
    if (!version) throw notFound(`npm package ${request.name} has no version or tag '${request.spec}' in this mirror`);
    sendBody(req, res, 200, Buffer.from(JSON.stringify(version)), {
      'Content-Type': 'application/json',
      'Cache-Control': 'public, max-age=60',
    });
    return;
  }
  const headers = {
    'Content-Type': abbreviated ? NPM_ABBREVIATED : 'application/json',
    ETag: doc.etag,
    Vary: 'Accept',
    'Cache-Control': 'public, max-age=60',
  };
  if (etagMatches(header(req, 'if-none-match'), doc.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  sendBody(req, res, 200, doc.body, headers);
}

function renderPackument(
  ctx: MirrorContext,
  req: IncomingMessage,
  name: string,
  abbreviated: boolean,
): { body: Buffer; etag: string } | undefined {
  const base = linkBase(ctx, req);
  const sequence = ctx.store.index.headSequence();
  const key = `npm\0${abbreviated ? 'a' : 'f'}\0${base}\0${name}`;
  const cached = ctx.cache.get(sequence, key);
  if (cached) return cached;
  const entries = ctx.store.index.findEntries({ ecosystem: 'npm', name });
  if (entries.length === 0) return undefined;
  const full = buildPackument(name, entries, base);
  const body = Buffer.from(JSON.stringify(abbreviated ? abbreviate(full) : full));
  const doc = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"` };
  ctx.cache.set(sequence, key, doc);
  return doc;
}

// A Host header usable in a URL: a DNS name or an IP literal, with an optional port (nothing else is echoed back).
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

/**
 * The absolute base of tarball URLs (npm needs absolute ones): the operator's --public-url when set (behind a
 * proxy), else the request's own Host, so a client reaching the mirror at another address (the runner's bridge at
 * 127.0.0.1:18080 inside a sandbox) is sent back to that address. The cache key includes the base.
 */
export function linkBase(ctx: MirrorContext, req: IncomingMessage): string {
  const configured = ctx.publicUrl(req);
  if (ctx.publicUrlConfigured) return configured;
  const host = req.headers.host;
  if (typeof host !== 'string' || !HOST_RE.test(host)) return configured;
  const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  return `${scheme}://${host.toLowerCase()}${ctx.publicPath(req)}`;
}

export interface Packument {
  _id: string;
  name: string;
  'dist-tags': Record<string, string>;
  versions: Record<string, Record<string, unknown>>;
  time: Record<string, string>;
  [field: string]: unknown;
}

export interface AbbreviatedPackument {
  name: string;
  modified: string;
  'dist-tags': Record<string, string>;
  versions: Record<string, Record<string, unknown>>;
}

/** URL of a tarball on this mirror: scoped names keep the scope in the path, not in the file name. */
export function npmTarballUrl(base: string, name: string, filename: string): string {
  // Keep `@` literal: registry.npmjs.org writes `/@scope/name/-/name-1.0.0.tgz`.
  const path = name.startsWith('@')
    ? `@${name.slice(1).split('/').map(encodeURIComponent).join('/')}`
    : encodeURIComponent(name);
  return `${base}/${path}/-/${encodeURIComponent(filename)}`;
}

/**
 * The full packument from the stored version manifests. `dist.tarball` points at this mirror; `integrity`,
 * `shasum` and `signatures` are kept exactly (npm signatures cover name, version and integrity, not the URL).
 */
export function buildPackument(name: string, entries: MirrorEntry[], base: string): Packument {
  const versions: Record<string, Record<string, unknown>> = {};
  const times: Record<string, string> = {};
  const addedIn: Record<string, number> = {};
  for (const entry of entries) {
    const version = entry.version;
    if (version === null || Object.hasOwn(versions, version)) continue; // one tarball per version; first wins
    const meta = entry.metadata;
    const manifest = isRecord(meta['manifest']) ? { ...meta['manifest'] } : {};
    const dist: Record<string, unknown> = isRecord(manifest['dist']) ? { ...manifest['dist'] } : {};
    if (typeof dist['integrity'] !== 'string') {
      if (typeof meta['integrity'] === 'string') dist['integrity'] = meta['integrity'];
      else if (entry.digests.sha512) dist['integrity'] = toSri('sha512', entry.digests.sha512);
    }
    if (typeof dist['shasum'] !== 'string') {
      if (typeof meta['shasum'] === 'string') dist['shasum'] = meta['shasum'];
      else if (entry.digests.sha1) dist['shasum'] = entry.digests.sha1;
    }
    dist['tarball'] = npmTarballUrl(base, name, entry.filename);
    const doc: Record<string, unknown> = { ...manifest, name, version, _id: `${name}@${version}`, dist };
    if (doc['hasInstallScript'] === undefined && hasInstallScript(manifest)) doc['hasInstallScript'] = true;
    versions[version] = doc;
    times[version] = validTime(meta['time']) ?? entry.addedAt;
    addedIn[version] = entry.addedIn;
  }
  const ordered = Object.keys(versions).sort(compareVersions);
  const sortedVersions: Record<string, Record<string, unknown>> = {};
  for (const v of ordered) sortedVersions[v] = versions[v]!;
  const stamps = Object.values(times).sort((a, b) => Date.parse(a) - Date.parse(b));
  const time: Record<string, string> = { created: stamps[0]!, modified: stamps[stamps.length - 1]! };
  for (const v of ordered) time[v] = times[v]!;
  const distTags = computeDistTags(entries, sortedVersions, addedIn);
  const latest = sortedVersions[distTags['latest'] ?? ''] ?? {};
  const packument: Packument = { _id: name, name, 'dist-tags': distTags, versions: sortedVersions, time };
  for (const f of TOP_LEVEL_FROM_LATEST) if (latest[f] !== undefined) packument[f] = latest[f];
  return packument;
}

/** The abbreviated document npm install asks for with `Accept: application/vnd.npm.install-v1+json`. */
export function abbreviate(full: Packument): AbbreviatedPackument {
  const versions: Record<string, Record<string, unknown>> = {};
  for (const [v, doc] of Object.entries(full.versions)) {
    const out: Record<string, unknown> = {};
    for (const f of ABBREVIATED_FIELDS) if (doc[f] !== undefined) out[f] = doc[f];
    if (doc['hasInstallScript'] === true) out['hasInstallScript'] = true;
    versions[v] = out;
  }
  return {
    name: full.name,
    modified: full.time['modified'] ?? new Date(0).toISOString(),
    'dist-tags': full['dist-tags'],
    versions,
  };
}

/**
 * Tags the snapshots recorded (`metadata.distTags`, newest snapshot wins) for versions we have; `latest`
 * otherwise is the highest stable semver (the highest prerelease only when there is no stable one).
 */
function computeDistTags(
  entries: MirrorEntry[],
  versions: Record<string, unknown>,
  addedIn: Record<string, number>,
): Record<string, string> {
  const claims = new Map<string, { version: string; addedIn: number }>();
  for (const entry of entries) {
    const tags = entry.metadata['distTags'];
    if (!isRecord(tags)) continue;
    for (const [tag, version] of Object.entries(tags)) {
      if (typeof version !== 'string' || !Object.hasOwn(versions, version) || tag.length > 128) continue;
      const prev = claims.get(tag);
      if (!prev || entry.addedIn >= prev.addedIn) claims.set(tag, { version, addedIn: entry.addedIn });
    }
  }
  const out: Record<string, string> = {};
  for (const [tag, claim] of [...claims].sort(([a], [b]) => (a < b ? -1 : 1))) out[tag] = claim.version;
  if (out['latest'] === undefined) {
    const all = Object.keys(versions);
    const valid = all.filter((v) => semver.valid(v) !== null);
    const stable = valid.filter((v) => semver.prerelease(v) === null);
    const pool = stable.length > 0 ? stable : valid;
    const latest = pool.sort(semver.compare).pop() ?? all.sort((a, b) => (addedIn[a] ?? 0) - (addedIn[b] ?? 0)).pop();
    if (latest !== undefined) out['latest'] = latest;
  }
  return out;
}

function compareVersions(a: string, b: string): number {
  const va = semver.valid(a);
  const vb = semver.valid(b);
  if (va && vb) return semver.compare(va, vb);
  if (va) return -1;
  if (vb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function hasInstallScript(manifest: Record<string, unknown>): boolean {
  const scripts = manifest['scripts'];
  return isRecord(scripts) && INSTALL_SCRIPTS.some((s) => typeof scripts[s] === 'string');
}

function validTime(v: unknown): string | undefined {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
