import type { Accepted, Dependency, Evidence, RuleResult } from './evidence.js';
import { describeSigner, type CompiledAuthority } from './match.js';
import { advisoriesFor, type AdvisoryIndex } from './osv.js';
import type { ProvenanceView } from './provenance.js';
import type { SnapshotHit } from './snapshots.js';

/** Listing at most this many offenders in `seen` keeps a result readable for a 10 000-dependency build. */
const MAX_LISTED = 50;

const role = (d: Dependency): unknown => d.annotations?.role;

/**
 * The dependencies the snapshot rule covers: every resolvedDependencies entry except the source, the mirror
 * snapshot entry and the toolchain (host programs, checked by provenance.toolchain). Unknown entries are included:
 * fail closed.
 */
export function mirroredDependencies(v: ProvenanceView): Dependency[] {
  return v.dependencies.filter((d) => d !== v.source && d.name !== 'mirror-snapshot' && role(d) !== 'toolchain');
}

export const depLabel = (d: Dependency): string => d.uri ?? d.name ?? `sha256:${d.digest?.sha256 ?? '?'}`;

/** Looks every mirrored dependency up once (the snapshot and advisory rules share the answers). */
export async function lookupAll(
  deps: readonly Dependency[],
  evidence: Evidence,
): Promise<Map<Dependency, SnapshotHit[]> | undefined> {
  const source = evidence.snapshots;
  if (!source) return undefined;
  const answers = await Promise.all(
    deps.map((d) => (typeof d.digest?.sha256 === 'string' ? source.lookup({ sha256: d.digest.sha256 }) : [])),
  );
  return new Map(deps.map((d, i) => [d, answers[i]!] as const));
}

export function snapshotRule(
  deps: readonly Dependency[],
  hits: Map<Dependency, SnapshotHit[]> | undefined,
  sync: readonly CompiledAuthority[],
): RuleResult {
  const expected = {
    inSnapshotSignedBy: sync.map((a) => ({ authority: a.name, ...a.describe })),
    dependencies: deps.length,
  };
  if (!hits)
    return {
      rule: 'dependencies.snapshot',
      passed: false,
      seen: 'no snapshot source given',
      expected,
      message: 'cannot check dependencies: no mirror store, mirror or snapshot file was given',
    };
  const missing: string[] = [];
  const wrongSigner: { dependency: string; snapshots: { id: string; signedBy: string }[] }[] = [];
  const snapshots = new Set<string>();
  for (const d of deps) {
    const found = hits.get(d) ?? [];
    const good = found.filter((h) => sync.some((a) => a.matches(h.signedBy)));
    good.forEach((h) => snapshots.add(h.snapshotId));
    if (found.length === 0) missing.push(depLabel(d));
    else if (good.length === 0)
      wrongSigner.push({
        dependency: depLabel(d),
        snapshots: found.map((h) => ({ id: h.snapshotId, signedBy: describeSigner(h.signedBy) })),
      });
  }
  const passed = missing.length === 0 && wrongSigner.length === 0;
  const parts = [
    missing.length > 0 ? `${missing.length} not in any mirror snapshot (${missing.slice(0, 5).join(', ')})` : '',
    wrongSigner.length > 0
      ? `${wrongSigner.length} only in snapshots signed by another identity (${wrongSigner[0]!.snapshots[0]!.signedBy})`
      : '',
  ].filter((s) => s !== '');
  return {
    rule: 'dependencies.snapshot',
    passed,
    seen: passed
      ? { dependencies: deps.length, snapshots: [...snapshots].sort() }
      : { missing: missing.slice(0, MAX_LISTED), wrongSigner: wrongSigner.slice(0, MAX_LISTED) },
    expected,
    message: passed
      ? `all ${deps.length} dependencies are in snapshots signed by the sync identity`
      : `dependencies: ${parts.join('; ')}`,
  };
}

const sha256Of = (d: Dependency): string | undefined =>
  typeof d.digest?.sha256 === 'string' ? d.digest.sha256 : undefined;

/** What an SBOM lists: sha256 hashes, purls and versions of every component (nested ones included). */
function sbomContents(accepted: readonly Accepted[]): {
  sha256: Set<string>;
  purls: Set<string>;
  versions: Set<string>;
} {
  const out = { sha256: new Set<string>(), purls: new Set<string>(), versions: new Set<string>() };
  const visit = (c: unknown): void => {
    if (typeof c !== 'object' || c === null) return;
    const o = c as Record<string, unknown>;
    if (typeof o.purl === 'string') out.purls.add(o.purl);
    if (typeof o.version === 'string') out.versions.add(o.version);
    for (const h of Array.isArray(o.hashes) ? o.hashes : []) {
      const hh = h as Record<string, unknown>;
      if (hh?.alg === 'SHA-256' && typeof hh.content === 'string') out.sha256.add(hh.content.toLowerCase());
    }
    for (const child of Array.isArray(o.components) ? o.components : []) visit(child);
  };
  for (const a of accepted) {
    const bom = a.statement.predicate as Record<string, unknown> | undefined;
    for (const c of Array.isArray(bom?.components) ? bom.components : []) visit(c);
  }
  return out;
}

/**
 * Every resolved dependency (source, mirror blobs, toolchain; not the snapshot entry) must be an SBOM component:
 * by sha256 hash, the source by its tree digest or commit, an entry without sha256 by its purl.
 */
export function sbomCoverageRule(v: ProvenanceView, sboms: readonly Accepted[]): RuleResult {
  const deps = v.dependencies.filter((d) => d.name !== 'mirror-snapshot');
  const expected = `every one of ${deps.length} resolved dependencies listed in the SBOM`;
  if (sboms.length === 0)
    return {
      rule: 'sbom.coverage',
      passed: false,
      seen: 'no accepted SBOM',
      expected,
      message: 'no accepted SBOM to check coverage against',
    };
  const sbom = sbomContents(sboms);
  const covered = (d: Dependency): boolean => {
    if (d === v.source) {
      const tree = (d.annotations?.treeDigest as { sha256?: unknown } | undefined)?.sha256;
      return (
        (typeof tree === 'string' && sbom.sha256.has(tree)) || (v.commit !== undefined && sbom.versions.has(v.commit))
      );
    }
    const sha = sha256Of(d);
    if (sha) return sbom.sha256.has(sha);
    return d.uri !== undefined && d.uri.startsWith('pkg:') && sbom.purls.has(d.uri);
  };
  const missing = deps.filter((d) => !covered(d)).map(depLabel);
  return {
    rule: 'sbom.coverage',
    passed: missing.length === 0,
    seen:
      missing.length === 0 ? `${deps.length} of ${deps.length} listed` : { notInSbom: missing.slice(0, MAX_LISTED) },
    expected,
    message:
      missing.length === 0
        ? 'the SBOM lists every resolved dependency'
        : `${missing.length} resolved dependencies are not in the SBOM: ${missing.slice(0, 5).join(', ')}`,
  };
}

/** The dependency's purl: its uri when that is a purl, else what a snapshot says about the blob. */
function purlOf(d: Dependency, hits: SnapshotHit[] | undefined): string | undefined {
  if (d.uri?.startsWith('pkg:')) return d.uri;
  return hits?.find((h) => h.purl !== undefined)?.purl;
}

export function advisoryRule(
  deps: readonly Dependency[],
  hits: Map<Dependency, SnapshotHit[]> | undefined,
  index: AdvisoryIndex | undefined,
  ignore: readonly string[],
): RuleResult {
  const expected = { noneAffected: true, ignore };
  if (!index)
    return {
      rule: 'advisories.osv',
      passed: false,
      seen: 'advisories not loaded',
      expected,
      message: 'the OSV advisory directory was not loaded',
    };
  const ignored = new Set(ignore);
  const affected: { dependency: string; advisories: string[] }[] = [];
  let unidentified = 0;
  for (const d of deps) {
    const purl = purlOf(d, hits?.get(d));
    if (!purl) {
      unidentified++;
      continue;
    }
    const ids = advisoriesFor(index, purl)
      .filter((a) => !ignored.has(a.id) && !(a.aliases ?? []).some((x) => ignored.has(x)))
      .map((a) => a.id);
    if (ids.length > 0) affected.push({ dependency: purl, advisories: ids });
  }
  const passed = affected.length === 0;
  return {
    rule: 'advisories.osv',
    passed,
    seen: passed
      ? { checked: deps.length - unidentified, withoutPurl: unidentified, advisories: index.count }
      : { affected: affected.slice(0, MAX_LISTED) },
    expected,
    message: passed
      ? `no dependency is affected by the ${index.count} advisories`
      : `${affected.length} dependencies are affected: ${affected
          .slice(0, 5)
          .map((a) => `${a.dependency} (${a.advisories.join(', ')})`)
          .join(', ')}`,
  };
}
