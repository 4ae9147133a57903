import { parseSri, type DigestAlgorithm, type DigestSet } from '@airlock/core';
import { SyncError } from '../errors.js';
import { isHttpUrl, isRecord } from '../inputs/common.js';
import type { NpmLockPackage } from '../types.js';
import type { EntryTask, ResolveContext } from './context.js';
import { npmPurl } from './purl.js';

export const NPM_PUBLIC_REGISTRY = 'https://registry.npmjs.org/';

/**
 * Fields of a version document the mirror keeps (the abbreviated-packument set plus what Verdaccio keeps, see
 * protocols-mirror.md §1). Everything else (readme, maintainers, _npmUser…) is dropped: it is not needed to
 * install and would only grow the manifest.
 */
const KEPT_FIELDS = [
  'name',
  'version',
  'dependencies',
  'optionalDependencies',
  'devDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'bundleDependencies',
  'bundledDependencies',
  'bin',
  'directories',
  'engines',
  'os',
  'cpu',
  'libc',
  'deprecated',
  'hasInstallScript',
  '_hasShrinkwrap',
  'acceptDependencies',
  'funding',
  'license',
] as const;
/** npm runs these at install time; other scripts are irrelevant to a consumer. */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall'] as const;
const KEPT_DIST = ['signatures', 'fileCount', 'unpackedSize'] as const;
/** The registry protocol's dist.integrity (sha512) and dist.shasum (sha1) of every tarball. */
const NPM_DIGESTS: readonly DigestAlgorithm[] = ['sha512', 'sha1'];

/** `@scope/name` → `@scope%2fname` (what npm itself requests). */
export function packumentPath(name: string): string {
  return name.startsWith('@') ? `@${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name);
}

interface PackumentExtract {
  versions: Map<string, Record<string, unknown>>;
  time: Record<string, unknown>;
  distTags: Record<string, unknown>;
}

/**
 * One task per lockfile package. The packument is fetched once per registry and name (`GET <registry>/<name>`,
 * the registry being the one `resolved` points at — see registryBase), only the version documents the lockfile
 * needs are kept, and the tarball is fetched from `resolved` — with the public registry prefix mapped to
 * `registry` when one is configured — and verified against the lockfile `integrity`.
 * The packument must agree with the lockfile (`dist.integrity`, `dist.shasum`), or the mirror would serve
 * metadata that contradicts the bytes.
 */
export function npmTasks(
  packages: readonly NpmLockPackage[],
  ctx: ResolveContext,
  registry?: string,
  scopes: Record<string, string> = {},
): EntryTask[] {
  const configured = registry === undefined ? undefined : registry.replace(/\/?$/, '/');
  const baseOf = (p: NpmLockPackage): string => registryBase(p, configured, scopes);
  const wanted = new Map<string, Set<string>>();
  for (const p of packages) {
    const key = `${baseOf(p)}\0${p.name}`;
    if (!wanted.has(key)) wanted.set(key, new Set());
    wanted.get(key)!.add(p.version);
  }
  const packuments = new Map<string, Promise<PackumentExtract>>();
  const packument = (base: string, name: string): Promise<PackumentExtract> => {
    const key = `${base}\0${name}`;
    let p = packuments.get(key);
    if (!p) {
      ctx.planned(1);
      p = fetchPackument(ctx, base, name, wanted.get(key)!).finally(ctx.done);
      packuments.set(key, p);
    }
    return p;
  };

  return packages.map((pkg) => ({
    label: `npm ${pkg.name}@${pkg.version}`,
    run: async () => {
      const what = `npm ${pkg.name}@${pkg.version}`;
      const base = baseOf(pkg);
      const doc = await packument(base, pkg.name);
      const vdoc = doc.versions.get(pkg.version);
      if (!vdoc)
        throw new SyncError(
          'SYNC_UPSTREAM_INVALID',
          `${what}: version ${pkg.version} is not in the packument at ${base}${packumentPath(pkg.name)}`,
        );
      const expected: DigestSet = {};
      for (const d of parseSri(pkg.integrity)) expected[d.algorithm] = d.hex;
      const dist = isRecord(vdoc.dist) ? vdoc.dist : {};
      // No `resolved` (omit-lockfile-registry-resolved): the registry's own dist.tarball, pinned by `integrity`.
      const resolved = pkg.resolved ?? tarballFromVersionDoc(what, dist, base);
      const url =
        configured !== undefined && resolved.startsWith(NPM_PUBLIC_REGISTRY)
          ? configured + resolved.slice(NPM_PUBLIC_REGISTRY.length)
          : resolved;
      ctx.planned(1);
      const blob = await ctx.store
        .fetchPinned({ what, urls: [url], expected, digests: NPM_DIGESTS, maxBytes: ctx.maxBlobBytes })
        .finally(ctx.done);
      const sha1 = blob.sha1;
      if (sha1 === undefined) throw new SyncError('SYNC_UPSTREAM_INVALID', `internal: ${what}: tarball sha1 missing`);

      if (typeof dist.integrity === 'string') {
        let theirs: DigestSet = {};
        try {
          for (const d of parseSri(dist.integrity)) theirs[d.algorithm] = d.hex;
        } catch {
          theirs = {};
        }
        for (const [alg, hex] of Object.entries(theirs)) {
          const ours = (
            { sha1: blob.sha1, sha256: blob.sha256, sha512: blob.sha512 } as Record<string, string | undefined>
          )[alg];
          if (ours !== undefined && ours !== hex) {
            throw new SyncError(
              'SYNC_UPSTREAM_INVALID',
              `${what}: packument dist.integrity (${dist.integrity}) disagrees with the verified tarball`,
              {
                details: { algorithm: alg, packument: hex, tarball: ours },
              },
            );
          }
        }
      }
      if (typeof dist.shasum === 'string' && dist.shasum.toLowerCase() !== sha1) {
        throw new SyncError(
          'SYNC_UPSTREAM_INVALID',
          `${what}: packument dist.shasum ${dist.shasum} disagrees with the tarball's sha1 ${sha1}`,
        );
      }
      const manifest: Record<string, unknown> = {};
      for (const k of KEPT_FIELDS) if (vdoc[k] !== undefined) manifest[k] = vdoc[k];
      manifest.name = pkg.name;
      manifest.version = pkg.version;
      if (isRecord(vdoc.scripts)) {
        const scripts: Record<string, unknown> = {};
        for (const s of INSTALL_SCRIPTS) if (typeof vdoc.scripts[s] === 'string') scripts[s] = vdoc.scripts[s];
        if (Object.keys(scripts).length > 0) manifest.scripts = scripts;
      }
      const outDist: Record<string, unknown> = {
        integrity: typeof dist.integrity === 'string' ? dist.integrity : pkg.integrity,
        shasum: sha1,
        tarball: resolved,
      };
      for (const k of KEPT_DIST) if (dist[k] !== undefined) outDist[k] = dist[k];
      manifest.dist = outDist;

      const distTags: Record<string, string> = {};
      for (const [tag, v] of Object.entries(doc.distTags)) if (v === pkg.version) distTags[tag] = v;
      const time = doc.time[pkg.version];
      const unscoped = pkg.name.slice(pkg.name.lastIndexOf('/') + 1);
      return [
        {
          ecosystem: 'npm' as const,
          name: pkg.name,
          version: pkg.version,
          filename: `${unscoped}-${pkg.version}.tgz`,
          urls: [resolved],
          blob,
          purl: npmPurl(pkg.name, pkg.version),
          metadata: {
            integrity: pkg.integrity,
            shasum: sha1,
            manifest,
            time: typeof time === 'string' ? time : null,
            ...(Object.keys(distTags).length > 0 ? { distTags } : {}),
          },
        },
      ];
    },
  }));
}

/**
 * The registry a package came from, read off its `resolved` URL (`<base><name>/-/<file>.tgz`, the layout every
 * npm registry uses), so a lockfile made against a private registry is synced from that registry. The public
 * registry is replaced by `configured` when one is given; a URL in another layout falls back to `configured`
 * or the public registry.
 */
export function registryBase(
  pkg: NpmLockPackage,
  configured: string | undefined,
  scopes: Record<string, string> = {},
): string {
  if (pkg.resolved === undefined) {
    const scope = pkg.name.startsWith('@') ? pkg.name.slice(0, pkg.name.indexOf('/')) : undefined;
    const base = (scope ? scopes[scope] : undefined) ?? configured;
    if (base === undefined) throw noRegistryError([pkg]);
    return base;
  }
  const encoded = pkg.name.startsWith('@') ? `@${encodeURIComponent(pkg.name.slice(1))}` : pkg.name;
  for (const marker of [`/${pkg.name}/-/`, `/${encoded}/-/`, `/${encoded.replace('%2F', '%2f')}/-/`]) {
    const i = pkg.resolved.lastIndexOf(marker);
    if (i >= 0) {
      const base = pkg.resolved.slice(0, i + 1);
      return base === NPM_PUBLIC_REGISTRY && configured !== undefined ? configured : base;
    }
  }
  return configured ?? NPM_PUBLIC_REGISTRY;
}

/** Entries without `resolved` and no registry to resolve them: refused before any download, naming the flags. */
export function noRegistryError(packages: readonly NpmLockPackage[]): SyncError {
  const names = packages.slice(0, 10).map((p) => `${p.name}@${p.version}`);
  return new SyncError(
    'SYNC_NO_REGISTRY',
    `${packages.length} npm lockfile entr${packages.length === 1 ? 'y has' : 'ies have'} no 'resolved' URL (${names.join(', ')}${packages.length > 10 ? ', …' : ''}) and no registry is configured to resolve ${packages.length === 1 ? 'it' : 'them'}: pass --npm-registry URL (or --npmrc FILE with registry= / @scope:registry=)`,
    { details: { entries: packages.map((p) => `${p.name}@${p.version}`) } },
  );
}

/** `dist.tarball` of a version document, which must be an http(s) URL. */
function tarballFromVersionDoc(what: string, dist: Record<string, unknown>, base: string): string {
  const t = dist.tarball;
  if (typeof t !== 'string' || !isHttpUrl(t))
    throw new SyncError(
      'SYNC_UPSTREAM_INVALID',
      `${what}: the lockfile has no 'resolved' URL and the version document at ${base} has no http(s) dist.tarball`,
    );
  return t;
}

async function fetchPackument(
  ctx: ResolveContext,
  base: string,
  name: string,
  versions: Set<string>,
): Promise<PackumentExtract> {
  const url = base + packumentPath(name);
  const res = await ctx.http.getBytes(url, 'application/json', ctx.maxMetadataBytes);
  let doc: unknown;
  try {
    doc = JSON.parse(res.body.toString('utf8'));
  } catch (cause) {
    throw new SyncError('SYNC_UPSTREAM_INVALID', `npm ${name}: packument at ${url} is not JSON`, { cause });
  }
  if (!isRecord(doc) || !isRecord(doc.versions))
    throw new SyncError('SYNC_UPSTREAM_INVALID', `npm ${name}: packument at ${url} has no 'versions' object`);
  if (doc.name !== undefined && doc.name !== name) {
    throw new SyncError('SYNC_UPSTREAM_INVALID', `npm ${name}: packument at ${url} is for '${String(doc.name)}'`);
  }
  const out: PackumentExtract = {
    versions: new Map(),
    time: isRecord(doc.time) ? doc.time : {},
    distTags: isRecord(doc['dist-tags']) ? doc['dist-tags'] : {},
  };
  for (const v of versions) {
    const vdoc = doc.versions[v];
    if (!isRecord(vdoc)) continue;
    if (vdoc.version !== undefined && vdoc.version !== v) {
      throw new SyncError(
        'SYNC_UPSTREAM_INVALID',
        `npm ${name}: packument versions['${v}'] says it is version '${String(vdoc.version)}'`,
      );
    }
    out.versions.set(v, vdoc);
  }
  return out;
}
