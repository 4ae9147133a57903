import { isHexOfAlgorithm, describe } from './digest-utils.js';
import { CasError } from './errors.js';
import {
  ECOSYSTEMS,
  type Ecosystem,
  type EntryDigests,
  type ManifestBlob,
  type MirrorEntryInput,
  type SnapshotInfo,
} from './types.js';

const SNAPSHOT_ID_RE = /^sha256:[0-9a-f]{64}$/;
// Control characters never belong in names the server echoes back or matches against URLs.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

function invalid(message: string): CasError {
  return new CasError('INDEX_INVALID_INPUT', message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** PEP 503 normalisation: runs of `-`, `_`, `.` become one `-`, lowercased. */
export function normalizePypiName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

export function isSnapshotId(s: unknown): s is string {
  return typeof s === 'string' && SNAPSHOT_ID_RE.test(s);
}

export function validateSnapshotInfo(v: unknown): SnapshotInfo {
  if (!isPlainObject(v)) throw new CasError('SNAPSHOT_INVALID', 'manifest.snapshot must be an object');
  const { id, sequence, previous, createdAt, producer } = v;
  if (!isSnapshotId(id))
    throw new CasError('SNAPSHOT_INVALID', `snapshot.id must be 'sha256:<64 hex>', got ${describe(id)}`);
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 1) {
    throw new CasError('SNAPSHOT_INVALID', `snapshot.sequence must be an integer >= 1, got ${String(sequence)}`);
  }
  if (previous !== null && !isSnapshotId(previous)) {
    throw new CasError(
      'SNAPSHOT_INVALID',
      `snapshot.previous must be null or 'sha256:<64 hex>', got ${describe(previous)}`,
    );
  }
  if (previous === id) throw new CasError('SNAPSHOT_INVALID', 'snapshot.previous equals snapshot.id');
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
    throw new CasError('SNAPSHOT_INVALID', `snapshot.createdAt must be an ISO date-time, got ${describe(createdAt)}`);
  }
  const out: SnapshotInfo = { id, sequence, previous, createdAt };
  if (isPlainObject(producer) && typeof producer['name'] === 'string' && typeof producer['version'] === 'string') {
    out.producer = { name: producer['name'], version: producer['version'] };
  }
  return out;
}

export function validateManifestBlobs(v: unknown): ManifestBlob[] {
  if (!Array.isArray(v)) throw invalid('manifest.blobs must be an array');
  const seen = new Set<string>();
  return v.map((b: unknown, i) => {
    if (!isPlainObject(b)) throw invalid(`manifest.blobs[${i}] must be an object`);
    const { sha256, size } = b;
    if (!isHexOfAlgorithm('sha256', sha256))
      throw invalid(`manifest.blobs[${i}].sha256 must be 64 lowercase hex, got ${describe(sha256)}`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw invalid(`manifest.blobs[${i}].size must be a non-negative integer`);
    if (seen.has(sha256)) throw invalid(`manifest.blobs lists sha256:${sha256} twice`);
    seen.add(sha256);
    return { sha256, size };
  });
}

export function validateEntry(v: unknown, where: string): MirrorEntryInput {
  if (!isPlainObject(v)) throw invalid(`${where} must be an object`);
  const { ecosystem, name, version, filename, urls, size, digests, purl, metadata } = v;
  if (typeof ecosystem !== 'string' || !(ECOSYSTEMS as readonly string[]).includes(ecosystem)) {
    throw invalid(`${where}.ecosystem must be one of ${ECOSYSTEMS.join(', ')}, got ${describe(ecosystem)}`);
  }
  const eco = ecosystem as Ecosystem;
  if (typeof name !== 'string' || name.length === 0 || name.length > 512 || CONTROL_RE.test(name)) {
    throw invalid(`${where}.name must be a non-empty string without control characters, got ${describe(name)}`);
  }
  if (eco === 'pypi' && normalizePypiName(name) !== name) {
    throw invalid(
      `${where}.name must be the PEP 503 normalised project name ('${normalizePypiName(name)}'), got ${describe(name)}`,
    );
  }
  if (
    version !== null &&
    (typeof version !== 'string' || version.length === 0 || version.length > 256 || CONTROL_RE.test(version))
  ) {
    throw invalid(`${where}.version must be null or a non-empty string, got ${describe(version)}`);
  }
  if ((eco === 'npm' || eco === 'pypi') && version === null)
    throw invalid(`${where}.version is required for ${eco} entries`);
  if (
    typeof filename !== 'string' ||
    filename.length === 0 ||
    filename.length > 255 ||
    filename === '.' ||
    filename === '..' ||
    /[/\\]/.test(filename) ||
    CONTROL_RE.test(filename)
  ) {
    throw invalid(`${where}.filename must be a plain file name, got ${describe(filename)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalid(`${where}.size must be a non-negative integer`);
  if (!isPlainObject(digests)) throw invalid(`${where}.digests must be an object`);
  const d: EntryDigests = { sha256: '' };
  if (!isHexOfAlgorithm('sha256', digests['sha256'])) throw invalid(`${where}.digests.sha256 must be 64 lowercase hex`);
  d.sha256 = digests['sha256'];
  if (digests['sha512'] !== undefined) {
    if (!isHexOfAlgorithm('sha512', digests['sha512']))
      throw invalid(`${where}.digests.sha512 must be 128 lowercase hex`);
    d.sha512 = digests['sha512'];
  }
  if (digests['sha1'] !== undefined) {
    if (!isHexOfAlgorithm('sha1', digests['sha1'])) throw invalid(`${where}.digests.sha1 must be 40 lowercase hex`);
    d.sha1 = digests['sha1'];
  }
  if (purl !== undefined && purl !== null && typeof purl !== 'string')
    throw invalid(`${where}.purl must be a string or null`);
  if (urls !== undefined && !(Array.isArray(urls) && urls.every((u) => typeof u === 'string')))
    throw invalid(`${where}.urls must be an array of strings`);
  if (metadata !== undefined && !isPlainObject(metadata)) throw invalid(`${where}.metadata must be an object`);
  return {
    ecosystem: eco,
    name,
    version: version as string | null,
    filename,
    urls: (urls as string[] | undefined) ?? [],
    size,
    digests: d,
    purl: (purl as string | null | undefined) ?? null,
    metadata: (metadata as Record<string, unknown> | undefined) ?? {},
  };
}
