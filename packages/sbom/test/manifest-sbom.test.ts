import { afterEach, describe, expect, it } from 'vitest';
import { sbomFromManifest, entryBomRef } from '../src/manifest-sbom.js';
import { serializeSbom } from '../src/serialize.js';
import { validateSbom } from '../src/validate.js';
import { AIRLOCK_SBOM_NAMESPACE, uuidV5 } from '../src/uuid.js';
import type { CycloneDxBom, CycloneDxComponent, SnapshotManifest } from '../src/types.js';
import { clone, digestsOf, PREVIOUS_ID, sampleManifest, SNAPSHOT_ID } from './fixtures.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: string }).code).toBe('SBOM_INVALID_INPUT');
    return (err as { details: { problems: string[] } }).details.problems;
  }
  throw new Error('expected SBOM_INVALID_INPUT');
}

function byFilename(bom: CycloneDxBom, filename: string): CycloneDxComponent {
  const c = bom.components.find((x) =>
    x.properties?.some((p) => p.name === 'airlock:filename' && p.value === filename),
  );
  if (!c) throw new Error(`no component for ${filename}`);
  return c;
}

const prop = (c: CycloneDxComponent, name: string): string | undefined =>
  c.properties?.find((p) => p.name === name)?.value;

describe('sbomFromManifest', () => {
  const manifest = sampleManifest();
  const bom = sbomFromManifest(manifest);

  it('is a CycloneDX 1.6 BOM that validates against the 1.6 JSON schema', () => {
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.specVersion).toBe('1.6');
    expect(bom.version).toBe(1);
    expect(validateSbom(bom)).toEqual({ valid: true, errors: [] });
  });

  it('derives serialNumber from the snapshot id (UUID v5) and timestamp from createdAt', () => {
    expect(bom.serialNumber).toBe(`urn:uuid:${uuidV5(AIRLOCK_SBOM_NAMESPACE, `snapshot:${SNAPSHOT_ID}`)}`);
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(bom.metadata.timestamp).toBe('2026-11-28T15:00:00.000Z');
    const other = clone(manifest);
    other.snapshot.id = PREVIOUS_ID;
    expect(sbomFromManifest(other).serialNumber).not.toBe(bom.serialNumber);
  });

  it('takes serialNumber, timestamp and toolVersion from options', () => {
    const b = sbomFromManifest(manifest, {
      serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
      timestamp: '2027-01-02T03:04:05Z',
      toolVersion: '9.9.9',
    });
    expect(b.serialNumber).toBe('urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79');
    expect(b.metadata.timestamp).toBe('2027-01-02T03:04:05.000Z');
    expect(b.metadata.tools?.components?.[0]).toMatchObject({ type: 'application', name: 'airlock', version: '9.9.9' });
    expect(sbomFromManifest(manifest, { timestamp: new Date(0) }).metadata.timestamp).toBe('1970-01-01T00:00:00.000Z');
  });

  it('rejects a serialNumber the schema would not accept (the library would silently drop it)', () => {
    for (const serialNumber of [
      '3e671687-395b-41f5-a30f-a58921a69b79',
      'urn:uuid:3E671687-395B-41F5-A30F-A58921A69B79',
      'urn:uuid:x',
    ]) {
      expect(problemsOf(() => sbomFromManifest(manifest, { serialNumber }))[0]).toMatch(/serialNumber/);
    }
    expect(problemsOf(() => sbomFromManifest(manifest, { timestamp: 'yesterday' }))[0]).toMatch(/timestamp/);
  });

  it('records airlock as the tool and the snapshot as metadata.component', () => {
    expect(bom.metadata.tools?.components).toHaveLength(1);
    expect(bom.metadata.tools?.components?.[0]).toMatchObject({ name: 'airlock', version: '0.1.0' });
    const snap = bom.metadata.component!;
    expect(snap).toMatchObject({ type: 'data', name: 'airlock-mirror-snapshot', version: '7', 'bom-ref': SNAPSHOT_ID });
    expect(prop(snap, 'airlock:snapshot')).toBe(SNAPSHOT_ID);
    expect(prop(snap, 'airlock:sequence')).toBe('7');
    expect(prop(snap, 'airlock:previous')).toBe(PREVIOUS_ID);
    expect(prop(snap, 'airlock:createdAt')).toBe('2026-11-28T15:00:00Z');
    expect(prop(snap, 'airlock:producer')).toBe('airlock-mirror-sync@0.1.0');
    const first = clone(manifest);
    first.snapshot.previous = null;
    expect(prop(sbomFromManifest(first).metadata.component!, 'airlock:previous')).toBeUndefined();
  });

  it('has one component per entry, each with ecosystem and snapshot properties and a unique bom-ref', () => {
    expect(bom.components).toHaveLength(manifest.entries.length);
    const refs = bom.components.map((c) => c['bom-ref']);
    expect(new Set(refs).size).toBe(refs.length);
    for (const e of manifest.entries) {
      const c = byFilename(bom, e.filename);
      expect(c['bom-ref']).toBe(entryBomRef(e));
      expect(prop(c, 'airlock:ecosystem')).toBe(e.ecosystem);
      expect(prop(c, 'airlock:snapshot')).toBe(SNAPSHOT_ID);
      expect(prop(c, 'airlock:size')).toBe(String(e.size));
      expect(c.version).toBe(e.version ?? undefined);
    }
  });

  it('maps digests to CycloneDX hashes (SHA-256, SHA-512, SHA-1), lowercase', () => {
    const e = manifest.entries.find((x) => x.name === 'left-pad')!;
    expect(byFilename(bom, e.filename).hashes).toEqual([
      { alg: 'SHA-256', content: e.digests.sha256 },
      { alg: 'SHA-512', content: e.digests.sha512 },
      { alg: 'SHA-1', content: e.digests.sha1 },
    ]);
    expect(byFilename(bom, 'hello-2.12.1.tar.gz').hashes).toEqual([
      { alg: 'SHA-256', content: digestsOf('hello', ['sha256']).sha256 },
    ]);
  });

  it('lists every upstream URL as a distribution reference', () => {
    expect(byFilename(bom, 'jq-linux64').externalReferences).toEqual([
      { type: 'distribution', url: 'https://github.com/jqlang/jq/releases/download/jq-1.7.1/jq-linux64' },
      { type: 'distribution', url: 'https://mirror.example/jq-linux64' },
    ]);
  });

  describe('per ecosystem', () => {
    it('npm: scoped name goes to group, purl keeps %40', () => {
      const c = byFilename(bom, 'name-1.0.0.tgz');
      expect(c).toMatchObject({
        type: 'library',
        group: '@scope',
        name: 'name',
        version: '1.0.0',
        purl: 'pkg:npm/%40scope/name@1.0.0',
      });
      expect(byFilename(bom, 'left-pad-1.3.0.tgz')).toMatchObject({
        type: 'library',
        name: 'left-pad',
        purl: 'pkg:npm/left-pad@1.3.0',
      });
      expect(byFilename(bom, 'left-pad-1.3.0.tgz').group).toBeUndefined();
    });

    it('npm: a purl written with a bare @ is canonicalised, and a missing purl is derived', () => {
      const m = clone(manifest);
      const scoped = m.entries.find((e) => e.name === '@scope/name')!;
      scoped.purl = 'pkg:npm/@scope/name@1.0.0';
      expect(byFilename(sbomFromManifest(m), 'name-1.0.0.tgz').purl).toBe('pkg:npm/%40scope/name@1.0.0');
      delete scoped.purl;
      expect(byFilename(sbomFromManifest(m), 'name-1.0.0.tgz').purl).toBe('pkg:npm/%40scope/name@1.0.0');
    });

    it('pypi: the wheel and the sdist are separate components with file_name purls', () => {
      expect(byFilename(bom, 'requests-2.32.3-py3-none-any.whl')).toMatchObject({
        type: 'library',
        name: 'requests',
        version: '2.32.3',
        purl: 'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3-py3-none-any.whl',
      });
      expect(byFilename(bom, 'requests-2.32.3.tar.gz').purl).toBe(
        'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3.tar.gz',
      );
      const m = clone(manifest);
      for (const e of m.entries) if (e.ecosystem === 'pypi') delete e.purl;
      expect(byFilename(sbomFromManifest(m), 'requests-2.32.3.tar.gz').purl).toBe(
        'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3.tar.gz',
      );
    });

    it('bazel/nix/generic: pkg:generic purls with download_url and sha256 checksum', () => {
      const go = byFilename(bom, 'rules_go-v0.50.1.zip');
      expect(go.type).toBe('library'); // http_archive
      expect(go.name).toBe('rules_go');
      expect(go.version).toBeUndefined();
      const url = new URL(go.purl!.replace(/^pkg:/, 'pkg://x/'));
      expect(go.purl!.startsWith('pkg:generic/rules_go?')).toBe(true);
      expect(url.searchParams.get('download_url')).toBe(manifest.entries[0]!.urls[0]);
      expect(url.searchParams.get('checksum')).toBe(`sha256:${manifest.entries[0]!.digests.sha256}`);
      expect(byFilename(bom, 'buildifier-linux-amd64').type).toBe('file'); // http_file
      expect(byFilename(bom, 'hello-2.12.1.tar.gz')).toMatchObject({ type: 'file', name: 'hello-2.12.1.tar.gz' });
      expect(byFilename(bom, 'hello-2.12.1.tar.gz').purl).toMatch(
        /^pkg:generic\/hello-2\.12\.1\.tar\.gz\?checksum=sha256%3A[0-9a-f]{64}&download_url=https%3A%2F%2Fftp\.gnu\.org/,
      );
      expect(byFilename(bom, 'jq-linux64').type).toBe('file');
    });

    it('generic with a version keeps it in the purl; one with a purl of its own keeps that', () => {
      const m = clone(manifest);
      const jq = m.entries.find((e) => e.name === 'jq-linux64')!;
      jq.version = '1.7.1';
      expect(byFilename(sbomFromManifest(m), 'jq-linux64').purl).toMatch(/^pkg:generic\/jq-linux64@1\.7\.1\?/);
      jq.purl = 'pkg:github/jqlang/jq@jq-1.7.1';
      expect(byFilename(sbomFromManifest(m), 'jq-linux64').purl).toBe('pkg:github/jqlang/jq@jq-1.7.1');
    });
  });

  describe('determinism', () => {
    const realLocaleCompare = String.prototype.localeCompare;
    afterEach(() => {
      String.prototype.localeCompare = realLocaleCompare;
    });

    it('gives the same bytes for the same manifest, whatever the entry order', () => {
      const a = serializeSbom(sbomFromManifest(manifest));
      const shuffled = clone(manifest);
      shuffled.entries.reverse(); // (url order is content: the first URL is the generic purl's download_url)
      expect(serializeSbom(sbomFromManifest(shuffled)).equals(a)).toBe(true);
      expect(serializeSbom(sbomFromManifest(clone(manifest))).equals(a)).toBe(true);
    });

    it('does not depend on the locale (the library sorts with localeCompare)', () => {
      const m: SnapshotManifest = clone(manifest);
      // Danish collation puts "aa" after "z": simulate a locale that orders strings backwards.
      m.entries.push({ ...clone(m.entries[5]!), name: 'aab', filename: 'aab-1.0.0.tgz', purl: 'pkg:npm/aab@1.0.0' });
      m.entries.push({ ...clone(m.entries[5]!), name: 'zzz', filename: 'zzz-1.0.0.tgz', purl: 'pkg:npm/zzz@1.0.0' });
      const normal = serializeSbom(sbomFromManifest(m));
      String.prototype.localeCompare = function (this: string, other: string): number {
        return -realLocaleCompare.call(this, other);
      };
      const reversed = serializeSbom(sbomFromManifest(m));
      String.prototype.localeCompare = realLocaleCompare;
      expect(reversed.equals(normal)).toBe(true);
      const refs = (JSON.parse(normal.toString()) as CycloneDxBom).components.map((c) => c['bom-ref']!);
      expect(refs).toEqual([...refs].sort());
    });

    it('changes when content changes', () => {
      const m = clone(manifest);
      m.entries[0]!.size += 1;
      expect(serializeSbom(sbomFromManifest(m)).equals(serializeSbom(bom))).toBe(false);
    });
  });

  describe('untrusted manifests', () => {
    it('collects every problem into one SBOM_INVALID_INPUT', () => {
      const m = clone(manifest) as unknown as { snapshot: Record<string, unknown>; entries: Record<string, unknown>[] };
      m.snapshot.id = 'sha256:ABC';
      m.snapshot.sequence = 0;
      m.snapshot.createdAt = 'yesterday';
      m.entries[0]!.ecosystem = 'maven';
      (m.entries[1]!.digests as Record<string, string>).sha256 = digestsOf('x').sha256.toUpperCase();
      delete (m.entries[2]!.digests as Record<string, string>).sha256;
      (m.entries[3]!.digests as Record<string, string>).md5 = 'd41d8cd98f00b204e9800998ecf8427e';
      m.entries[4]!.urls = 'https://x';
      m.entries[5]!.size = -1;
      m.entries[6]!.name = '';
      const problems = problemsOf(() => sbomFromManifest(m as unknown as SnapshotManifest));
      expect(problems).toEqual(
        expect.arrayContaining([
          'snapshot.id must be sha256:<64 lowercase hex>',
          'snapshot.sequence must be a positive integer',
          'snapshot.createdAt must be an ISO 8601 date-time',
          'entries[0].ecosystem must be one of npm, pypi, bazel, nix, generic',
          'entries[1].digests.sha256 must be 64 lowercase hex characters',
          'entries[2].digests.sha256 is required',
          'entries[3].digests.md5: unsupported digest algorithm',
          'entries[4].urls must be an array of non-empty strings',
          'entries[5].size must be a non-negative integer',
          'entries[6].name must be a non-empty string',
        ]),
      );
    });

    it('rejects duplicate entries', () => {
      const m = clone(manifest);
      m.entries.push(clone(m.entries[4]!));
      expect(problemsOf(() => sbomFromManifest(m))).toEqual([
        `entries[8] duplicates entries[4] (same ecosystem, name, version and filename)`,
      ]);
    });

    it('rejects an unparseable purl and a purl of the wrong type', () => {
      const m = clone(manifest);
      m.entries[4]!.purl = 'npm:@scope/name@1.0.0';
      expect(problemsOf(() => sbomFromManifest(m))[0]).toMatch(/^entries\[4\]\.purl: invalid package URL/);
      m.entries[4]!.purl = 'pkg:pypi/name@1.0.0';
      expect(problemsOf(() => sbomFromManifest(m))).toEqual([
        "entries[4].purl is a 'pypi' package URL for a npm entry",
      ]);
    });

    it('rejects non-objects', () => {
      expect(problemsOf(() => sbomFromManifest(null as unknown as SnapshotManifest))).toContain(
        'manifest must be an object',
      );
      expect(
        problemsOf(() => sbomFromManifest({ snapshot: manifest.snapshot } as unknown as SnapshotManifest)),
      ).toEqual(['entries must be an array']);
    });

    it('an empty snapshot still makes a valid SBOM', () => {
      const m = clone(manifest);
      m.entries = [];
      const b = sbomFromManifest(m);
      expect(b.components).toEqual([]);
      expect(validateSbom(b).valid).toBe(true);
    });
  });
});
