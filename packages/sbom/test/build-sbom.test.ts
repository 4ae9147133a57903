import { describe, expect, it } from 'vitest';
import { inputBomRef, sbomForBuild } from '../src/build-sbom.js';
import { serializeSbom } from '../src/serialize.js';
import { validateSbom } from '../src/validate.js';
import type { BuildSbomInput } from '../src/types.js';
import { clone, digestsOf } from './fixtures.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect((err as { code?: string }).code).toBe('SBOM_INVALID_INPUT');
    return (err as { details: { problems: string[] } }).details.problems;
  }
  throw new Error('expected SBOM_INVALID_INPUT');
}

const input = (): BuildSbomInput => ({
  subject: { name: 'dist/app.tar.gz', version: '2.0.0', digests: digestsOf('app', ['sha256', 'sha512']) },
  components: [
    {
      name: '@scope/lib',
      version: '1.0.0',
      purl: 'pkg:npm/%40scope/lib@1.0.0',
      digests: digestsOf('lib', ['sha512']),
      uri: 'https://mirror.internal/npm/@scope/lib/-/lib-1.0.0.tgz',
    },
    {
      name: 'requests',
      version: '2.32.3',
      purl: 'pkg:pypi/requests@2.32.3',
      digests: digestsOf('requests', ['sha256']),
    },
    {
      name: 'go1.22.5.linux-amd64.tar.gz',
      digests: digestsOf('go', ['sha256']),
      uri: 'https://mirror.internal/generic/go1.22.5.linux-amd64.tar.gz',
    },
    {
      name: 'source',
      digests: { sha1: digestsOf('src', ['sha1']).sha1! },
      uri: 'git+https://git.internal/app.git@0123456',
    },
  ],
  properties: { 'airlock:builder': 'https://airlock.internal/runner/v1', 'airlock:invocation': 'run-42' },
});

describe('sbomForBuild', () => {
  const bom = sbomForBuild(input());

  it('is a CycloneDX 1.6 BOM that validates against the 1.6 JSON schema', () => {
    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1 });
    expect(validateSbom(bom)).toEqual({ valid: true, errors: [] });
  });

  it('makes the artifact metadata.component, with lifecycle build and airlock as the tool', () => {
    const root = bom.metadata.component!;
    expect(root).toMatchObject({
      type: 'file',
      name: 'dist/app.tar.gz',
      version: '2.0.0',
      'bom-ref': 'artifact:dist%2Fapp.tar.gz',
    });
    expect(root.hashes).toEqual([
      { alg: 'SHA-256', content: digestsOf('app', ['sha256']).sha256 },
      { alg: 'SHA-512', content: digestsOf('app', ['sha512']).sha512 },
    ]);
    expect(bom.metadata.lifecycles).toEqual([{ phase: 'build' }]);
    expect(bom.metadata.tools?.components?.map((t) => t.name)).toEqual(['airlock']);
    expect(bom.metadata.properties).toEqual([
      { name: 'airlock:builder', value: 'https://airlock.internal/runner/v1' },
      { name: 'airlock:invocation', value: 'run-42' },
    ]);
    expect(bom.metadata.timestamp).toBeUndefined();
  });

  it('lists every input as a component with hashes, purl and reference', () => {
    expect(bom.components).toHaveLength(4);
    const lib = bom.components.find((c) => c.name === '@scope/lib')!;
    expect(lib).toMatchObject({ type: 'library', version: '1.0.0', purl: 'pkg:npm/%40scope/lib@1.0.0' });
    expect(lib.hashes).toEqual([{ alg: 'SHA-512', content: digestsOf('lib', ['sha512']).sha512 }]);
    expect(lib.externalReferences).toEqual([
      { type: 'distribution', url: 'https://mirror.internal/npm/@scope/lib/-/lib-1.0.0.tgz' },
    ]);
    const go = bom.components.find((c) => c.name === 'go1.22.5.linux-amd64.tar.gz')!;
    expect(go.type).toBe('file');
    expect(go.purl).toBe(
      `pkg:generic/go1.22.5.linux-amd64.tar.gz?checksum=sha256%3A${digestsOf('go', ['sha256']).sha256}` +
        '&download_url=https%3A%2F%2Fmirror.internal%2Fgeneric%2Fgo1.22.5.linux-amd64.tar.gz',
    );
    const src = bom.components.find((c) => c.name === 'source')!;
    expect(src.externalReferences).toEqual([{ type: 'vcs', url: 'git+https://git.internal/app.git@0123456' }]);
    expect(src.purl).toBe('pkg:generic/source'); // a git URL is not a download_url
    expect(src.hashes).toEqual([{ alg: 'SHA-1', content: digestsOf('src', ['sha1']).sha1 }]);
  });

  it('has a dependency graph: the artifact depends on every input', () => {
    const root = bom.dependencies!.find((d) => d.ref === 'artifact:dist%2Fapp.tar.gz')!;
    const refs = input().components.map(inputBomRef).sort();
    expect(root.dependsOn).toEqual(refs);
    expect(bom.components.map((c) => c['bom-ref']).sort()).toEqual(refs);
    for (const ref of refs) expect(bom.dependencies!.find((d) => d.ref === ref)).toEqual({ ref });
    expect(inputBomRef(input().components[0]!)).toBe(
      `input:%40scope%2Flib@1.0.0#sha512:${digestsOf('lib', ['sha512']).sha512}`,
    );
  });

  it('is deterministic: same input, same bytes, whatever the input order; serial derives from content', () => {
    const a = serializeSbom(bom);
    const reordered = input();
    reordered.components.reverse();
    expect(serializeSbom(sbomForBuild(reordered)).equals(a)).toBe(true);
    const changed = input();
    changed.components[1]!.digests = digestsOf('requests-2', ['sha256']);
    const b = sbomForBuild(changed);
    expect(b.serialNumber).not.toBe(bom.serialNumber);
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The tool version and timestamp are not part of the identity.
    expect(sbomForBuild({ ...input(), toolVersion: '1.2.3', timestamp: '2026-01-01T00:00:00Z' }).serialNumber).toBe(
      bom.serialNumber,
    );
  });

  it('takes serialNumber, timestamp, toolVersion and the artifact type from the input', () => {
    const b = sbomForBuild({
      ...input(),
      subject: { ...input().subject, type: 'container', purl: 'pkg:oci/app@sha256%3Aabc' },
      serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
      timestamp: new Date('2026-11-28T16:00:00Z'),
      toolVersion: '0.2.0',
    });
    expect(b.serialNumber).toBe('urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79');
    expect(b.metadata.timestamp).toBe('2026-11-28T16:00:00.000Z');
    expect(b.metadata.tools?.components?.[0]?.version).toBe('0.2.0');
    expect(b.metadata.component).toMatchObject({ type: 'container', purl: 'pkg:oci/app@sha256:abc' }); // canonical form
    expect(validateSbom(b).valid).toBe(true);
  });

  it('merges an input listed twice, but refuses two different inputs with one identity', () => {
    const twice = input();
    twice.components.push(clone(twice.components[0]!));
    expect(sbomForBuild(twice).components).toHaveLength(4);
    const conflicting = input();
    conflicting.components.push({ ...clone(conflicting.components[0]!), uri: 'https://elsewhere/lib.tgz' });
    expect(problemsOf(() => sbomForBuild(conflicting))[0]).toMatch(/components\[4\] and components\[0\] share bom-ref/);
  });

  it('a build with no inputs is still a valid SBOM', () => {
    const b = sbomForBuild({ subject: input().subject, components: [] });
    expect(b.components).toEqual([]);
    expect(b.dependencies).toEqual([{ ref: 'artifact:dist%2Fapp.tar.gz' }]);
    expect(validateSbom(b).valid).toBe(true);
  });

  it('rejects malformed input, naming every problem', () => {
    const bad = {
      subject: { name: '', digests: { sha256: 'XYZ' }, type: 'spaceship' },
      components: [
        { name: 'a', digests: {} },
        { name: 'b', digests: { sha256: 'a'.repeat(63) } },
        { name: 'c', digests: { sha1: 'a'.repeat(40) }, purl: 'not a purl' },
        'str',
      ],
      properties: { '': 'x' },
      serialNumber: 'urn:uuid:nope',
    } as unknown as BuildSbomInput;
    expect(problemsOf(() => sbomForBuild(bad))).toEqual([
      'subject.name must be a non-empty string',
      'subject.digests.sha256 must be 64 lowercase hex characters',
      'subject.digests must hold at least one digest',
      'subject.type must be one of application, library, file, container, firmware',
      'components[0].digests must hold at least one digest',
      'components[1].digests.sha256 must be 64 lowercase hex characters',
      'components[1].digests must hold at least one digest',
      'components[3] must be an object',
      'properties must map non-empty names to strings',
    ]);
    const badPurl = input();
    badPurl.components[0]!.purl = 'npm/left-pad';
    expect(problemsOf(() => sbomForBuild(badPurl))[0]).toMatch(/^components\[0\]\.purl: invalid package URL/);
    expect(problemsOf(() => sbomForBuild({ ...input(), serialNumber: 'urn:uuid:nope' }))[0]).toMatch(/serialNumber/);
    expect(problemsOf(() => sbomForBuild({ ...input(), timestamp: 'not a date' }))).toEqual([
      'timestamp is not a valid date',
    ]);
    expect(problemsOf(() => sbomForBuild(null as unknown as BuildSbomInput))).toEqual(['input must be an object']);
  });
});
