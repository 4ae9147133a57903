import { Enums, Models } from '@cyclonedx/cyclonedx-library';
import type { PackageURL } from 'packageurl-js';
import { checkDigests, isObject, isShortString, Problems, refPart } from './checks.js';
import { AIRLOCK_SBOM_VERSION, airlockTool, makeComponent, toCycloneDxJson } from './cyclonedx.js';
import { SbomError } from './errors.js';
import { genericPurl, npmPurl, parsePurl, pypiPurl } from './purl.js';
import { ECOSYSTEMS, type CycloneDxBom, type SbomOptions, type SnapshotEntry, type SnapshotManifest } from './types.js';
import { AIRLOCK_SBOM_NAMESPACE, SERIAL_NUMBER_RE, uuidV5 } from './uuid.js';

const SNAPSHOT_ID_RE = /^sha256:[0-9a-f]{64}$/;
const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const MAX_ENTRIES = 1_000_000;

/**
 * CycloneDX 1.6 SBOM of a mirror snapshot (a transfer manifest): metadata.component is the snapshot, and each
 * manifest entry is one component with its purl, hashes (SHA-256/384/512, SHA-1), distribution URLs and
 * `airlock:*` properties. Deterministic: the same manifest and options give the same JSON, key for key —
 * serialNumber is a UUID v5 of the snapshot id and the timestamp is the manifest's createdAt unless overridden.
 *
 * The manifest is treated as untrusted (it may come out of a transfer bundle): it is checked first, and every
 * problem is reported in one SBOM_INVALID_INPUT error.
 */
export function sbomFromManifest(manifest: SnapshotManifest, options: SbomOptions = {}): CycloneDxBom {
  const problems = new Problems();
  checkManifest(manifest, problems);
  const serialNumber =
    options.serialNumber ?? `urn:uuid:${uuidV5(AIRLOCK_SBOM_NAMESPACE, `snapshot:${manifest?.snapshot?.id}`)}`;
  if (!SERIAL_NUMBER_RE.test(serialNumber))
    problems.add(`serialNumber must look like urn:uuid:<lowercase uuid>, got '${serialNumber}'`);
  const timestamp = parseTimestamp(options.timestamp ?? manifest?.snapshot?.createdAt, problems);
  const purls = new Map<SnapshotEntry, PackageURL>();
  if (problems.empty) {
    manifest.entries.forEach((e, i) => {
      try {
        purls.set(e, entryPurl(e));
      } catch (err) {
        problems.add(`entries[${i}].purl: ${(err as Error).message}`);
      }
    });
  }
  if (problems.empty) checkPurlTypes(manifest.entries, purls, problems);
  if (!problems.empty) {
    throw new SbomError('SBOM_INVALID_INPUT', problems.summary('transfer manifest'), {
      details: { problems: problems.list },
    });
  }

  const { snapshot } = manifest;
  const bom = new Models.Bom({ serialNumber });
  bom.version = 1;
  bom.metadata.timestamp = timestamp;
  bom.metadata.tools.components.add(airlockTool(options.toolVersion ?? AIRLOCK_SBOM_VERSION));
  bom.metadata.component = makeComponent({
    type: Enums.ComponentType.Data,
    name: 'airlock-mirror-snapshot',
    version: String(snapshot.sequence),
    bomRef: snapshot.id,
    description: `airlock mirror snapshot ${snapshot.sequence} (${manifest.entries.length} entries)`,
    properties: [
      ['airlock:snapshot', snapshot.id],
      ['airlock:sequence', String(snapshot.sequence)],
      ['airlock:createdAt', snapshot.createdAt],
      ...(snapshot.previous ? ([['airlock:previous', snapshot.previous]] as [string, string][]) : []),
      ...(snapshot.producer
        ? ([['airlock:producer', `${snapshot.producer.name}@${snapshot.producer.version}`]] as [string, string][])
        : []),
    ],
  });

  for (const entry of manifest.entries) {
    const [group, name] = splitNpmScope(entry);
    bom.components.add(
      makeComponent({
        type: componentType(entry),
        name,
        group,
        version: entry.version ?? undefined,
        bomRef: entryBomRef(entry),
        purl: purls.get(entry),
        digests: entry.digests,
        externalReferences: entry.urls.map((url) => ({ type: Enums.ExternalReferenceType.Distribution, url })),
        properties: [
          ['airlock:ecosystem', entry.ecosystem],
          ['airlock:snapshot', snapshot.id],
          ['airlock:filename', entry.filename],
          ['airlock:size', String(entry.size)],
        ],
      }),
    );
  }
  return toCycloneDxJson(bom);
}

/** The bom-ref of a manifest entry's component: `<ecosystem>:<name>@<version>/<filename>`, percent-encoded. */
export function entryBomRef(entry: Pick<SnapshotEntry, 'ecosystem' | 'name' | 'version' | 'filename'>): string {
  return `${entry.ecosystem}:${refPart(entry.name)}@${refPart(entry.version ?? '')}/${refPart(entry.filename)}`;
}

/**
 * The entry's purl when the manifest has one (mirror-sync wrote it; the SBOM must agree with the manifest), else
 * one made from the entry: npm/pypi purls, and for bazel/nix/generic a `pkg:generic` purl carrying the download
 * URL and sha256 checksum.
 */
function entryPurl(e: SnapshotEntry): PackageURL {
  if (e.purl !== undefined && e.purl !== '') return parsePurl(e.purl);
  switch (e.ecosystem) {
    case 'npm':
      return npmPurl(e.name, e.version);
    case 'pypi':
      return pypiPurl(e.name, e.version, e.filename);
    default:
      return genericPurl(e.name, e.version, { downloadUrl: e.urls[0], sha256: e.digests.sha256 });
  }
}

function componentType(e: SnapshotEntry): Enums.ComponentType {
  if (e.ecosystem === 'npm' || e.ecosystem === 'pypi') return Enums.ComponentType.Library;
  // A bazel http_archive is an external repository of source; http_file, nix outputs and generic files are files.
  if (e.ecosystem === 'bazel' && e.metadata?.type !== 'http_file') return Enums.ComponentType.Library;
  return Enums.ComponentType.File;
}

/** CycloneDX puts an npm scope in `group` (as cyclonedx-node-npm does): `@scope/pkg` → ['@scope', 'pkg']. */
function splitNpmScope(e: SnapshotEntry): [string | undefined, string] {
  if (e.ecosystem === 'npm' && e.name.startsWith('@') && e.name.indexOf('/') > 1) {
    const i = e.name.indexOf('/');
    return [e.name.slice(0, i), e.name.slice(i + 1)];
  }
  return [undefined, e.name];
}

function parseTimestamp(v: unknown, problems: Problems): Date | undefined {
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) problems.add('timestamp is an invalid Date');
    return v;
  }
  if (typeof v !== 'string' || !ISO_TIME_RE.test(v) || Number.isNaN(Date.parse(v))) {
    problems.add(`timestamp must be an ISO 8601 date-time, got ${JSON.stringify(v)?.slice(0, 100)}`);
    return undefined;
  }
  return new Date(v);
}

function checkManifest(m: unknown, problems: Problems): void {
  if (!isObject(m)) return problems.add('manifest must be an object');
  const s = m.snapshot;
  if (!isObject(s)) {
    problems.add('snapshot must be an object');
  } else {
    if (typeof s.id !== 'string' || !SNAPSHOT_ID_RE.test(s.id))
      problems.add('snapshot.id must be sha256:<64 lowercase hex>');
    if (!Number.isSafeInteger(s.sequence) || (s.sequence as number) < 1)
      problems.add('snapshot.sequence must be a positive integer');
    if (s.previous !== null && (typeof s.previous !== 'string' || !SNAPSHOT_ID_RE.test(s.previous))) {
      problems.add('snapshot.previous must be null or sha256:<64 lowercase hex>');
    }
    if (typeof s.createdAt !== 'string' || !ISO_TIME_RE.test(s.createdAt))
      problems.add('snapshot.createdAt must be an ISO 8601 date-time');
    if (
      s.producer !== undefined &&
      (!isObject(s.producer) || !isShortString(s.producer.name) || !isShortString(s.producer.version))
    ) {
      problems.add('snapshot.producer must be {name, version}');
    }
  }
  if (!Array.isArray(m.entries)) return problems.add('entries must be an array');
  if (m.entries.length > MAX_ENTRIES)
    return problems.add(`entries has ${m.entries.length} items, more than ${MAX_ENTRIES}`);
  const refs = new Map<string, number>();
  m.entries.forEach((e: unknown, i: number) => {
    const at = `entries[${i}]`;
    if (!isObject(e)) return problems.add(`${at} must be an object`);
    if (!(ECOSYSTEMS as readonly unknown[]).includes(e.ecosystem))
      problems.add(`${at}.ecosystem must be one of ${ECOSYSTEMS.join(', ')}`);
    if (!isShortString(e.name)) problems.add(`${at}.name must be a non-empty string`);
    if (e.version !== null && !isShortString(e.version))
      problems.add(`${at}.version must be a non-empty string or null`);
    if (!isShortString(e.filename)) problems.add(`${at}.filename must be a non-empty string`);
    if (!Array.isArray(e.urls) || !e.urls.every((u) => isShortString(u)))
      problems.add(`${at}.urls must be an array of non-empty strings`);
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0)
      problems.add(`${at}.size must be a non-negative integer`);
    checkDigests(e.digests, `${at}.digests`, problems, ['sha256']);
    if (e.purl !== undefined && !isShortString(e.purl, { allowEmpty: true }))
      problems.add(`${at}.purl must be a string`);
    if (e.metadata !== undefined && !isObject(e.metadata)) problems.add(`${at}.metadata must be an object`);
    if (typeof e.ecosystem === 'string' && typeof e.name === 'string' && typeof e.filename === 'string') {
      const ref = entryBomRef({
        ecosystem: e.ecosystem as SnapshotEntry['ecosystem'],
        name: e.name,
        version: typeof e.version === 'string' ? e.version : null,
        filename: e.filename,
      });
      const first = refs.get(ref);
      if (first !== undefined)
        problems.add(`${at} duplicates entries[${first}] (same ecosystem, name, version and filename)`);
      else refs.set(ref, i);
    }
  });
}

/** npm and pypi entries must carry a purl of their own type: anything else would misattribute the package. */
function checkPurlTypes(entries: SnapshotEntry[], purls: Map<SnapshotEntry, PackageURL>, problems: Problems): void {
  entries.forEach((e, i) => {
    const type = purls.get(e)?.type;
    if ((e.ecosystem === 'npm' || e.ecosystem === 'pypi') && type !== e.ecosystem) {
      problems.add(`entries[${i}].purl is a '${type}' package URL for a ${e.ecosystem} entry`);
    }
  });
}
