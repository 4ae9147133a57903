import { parseSri, type DigestSet } from '@airlock/core';
import { SyncError } from '../errors.js';
import { isRecord } from '../inputs/common.js';
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
export function npmTasks(packages: readonly NpmLockPackage[], ctx: ResolveContext, registry?: string): EntryTask[] {
  const configured = registry === undefined ? undefined : registry.replace(/\/?$/, '/');
  const wanted = new Map<string, Set<string>>();
  for (const p of packages) {
    const key = `${registryBase(p, configured)}\0${p.name}`;
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
      const base = registryBase(pkg, configured);
      const doc = await packument(base, pkg.name);
      const vdoc = doc.versions.get(pkg.version);
      if (!vdoc)
        throw new SyncError(
          'SYNC_UPSTREAM_INVALID',
          `${what}: version ${pkg.version} is not in the packument at ${base}${packumentPath(pkg.name)}`,
        );
      const expected: DigestSet = {};
      for (const d of parseSri(pkg.integrity)) expected[d.algorithm] = d.hex;
      const url =
        configured !== undefined && pkg.resolved.startsWith(NPM_PUBLIC_REGISTRY)
          ? configured + pkg.resolved.slice(NPM_PUBLIC_REGISTRY.length)
          : pkg.resolved;
      ctx.planned(1);
      const blob = await ctx.store
        .fetchPinned({ what, urls: [url], expected, maxBytes: ctx.maxBlobBytes })
        .finally(ctx.done);

      const dist = isRecord(vdoc.dist) ? vdoc.dist : {};
      if (typeof dist.integrity === 'string') {
        let theirs: DigestSet = {};
        try {
          for (const d of parseSri(dist.integrity)) theirs[d.algorithm] = d.hex;
        } catch {
          theirs = {};
        }
        for (const [alg, hex] of Object.entries(theirs)) {
          const ours = ({ sha1: blob.sha1, sha256: blob.sha256, sha512: blob.sha512 } as Record<string, string>)[alg];
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
      if (typeof dist.shasum === 'string' && dist.shasum.toLowerCase() !== blob.sha1) {
        throw new SyncError(
          'SYNC_UPSTREAM_INVALID',
          `${what}: packument dist.shasum ${dist.shasum} disagrees with the tarball's sha1 ${blob.sha1}`,
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
        shasum: blob.sha1,
        tarball: pkg.resolved,
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
          urls: [pkg.resolved],
          blob,
          purl: npmPurl(pkg.name, pkg.version),
          metadata: {
            integrity: pkg.integrity,
            shasum: blob.sha1,
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
export function registryBase(pkg: NpmLockPackage, configured: string | undefined): string {
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
