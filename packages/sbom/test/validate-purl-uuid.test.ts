import { describe, expect, it } from 'vitest';
import { validateSbom } from '../src/validate.js';
import { canonicalPurl, makeGenericPurl, makeNpmPurl, makePypiPurl } from '../src/purl.js';
import { AIRLOCK_SBOM_NAMESPACE, UUID_NAMESPACE_URL, uuidV5 } from '../src/uuid.js';
import { serializeSbom } from '../src/serialize.js';
import { sbomFromManifest } from '../src/manifest-sbom.js';
import { sampleManifest } from './fixtures.js';

const minimal = (): Record<string, unknown> => ({
  bomFormat: 'CycloneDX',
  specVersion: '1.6',
  version: 1,
  components: [{ type: 'library', name: 'x', hashes: [{ alg: 'SHA-256', content: 'a'.repeat(64) }] }],
});

describe('validateSbom (CycloneDX 1.6 JSON schema, offline)', () => {
  it('accepts a minimal BOM', () => {
    expect(validateSbom(minimal())).toEqual({ valid: true, errors: [] });
  });

  it('rejects schema violations with a path per error', () => {
    const cases: [string, (b: Record<string, unknown>) => void, RegExp][] = [
      ['missing bomFormat', (b) => delete b.bomFormat, /must have required property 'bomFormat'/],
      ['wrong bomFormat', (b) => (b.bomFormat = 'SPDX'), /^\/bomFormat:/],
      ['unknown top-level member', (b) => (b.surprise = 1), /additional properties \('surprise'\)/],
      [
        'component without name',
        (b) => delete (b.components as Record<string, unknown>[])[0]!.name,
        /^\/components\/0:/,
      ],
      [
        'unknown component type',
        (b) => ((b.components as Record<string, unknown>[])[0]!.type = 'gizmo'),
        /^\/components\/0\/type:/,
      ],
      [
        'bad hash content',
        (b) => ((b.components as { hashes: { content: string }[] }[])[0]!.hashes[0]!.content = 'xyz'),
        /^\/components\/0\/hashes\/0\/content:/,
      ],
      [
        'unknown hash alg',
        (b) => ((b.components as { hashes: { alg: string }[] }[])[0]!.hashes[0]!.alg = 'SHA-257'),
        /^\/components\/0\/hashes\/0\/alg:/,
      ],
      ['bad serialNumber', (b) => (b.serialNumber = 'urn:uuid:nope'), /^\/serialNumber:/],
      [
        'bad timestamp',
        (b) => (b.metadata = { timestamp: 'yesterday' }),
        /^\/metadata\/timestamp: must match format "date-time"/,
      ],
    ];
    for (const [what, mutate, expected] of cases) {
      const b = minimal();
      mutate(b);
      const r = validateSbom(b);
      expect(r.valid, what).toBe(false);
      expect(
        r.errors.some((e) => expected.test(e)),
        `${what}: ${r.errors.join(' | ')}`,
      ).toBe(true);
    }
  });

  it('rejects non-objects', () => {
    expect(validateSbom(null).valid).toBe(false);
    expect(validateSbom('{}').valid).toBe(false);
  });

  it('the serialised bytes parse back to a valid BOM', () => {
    const bytes = serializeSbom(sbomFromManifest(sampleManifest()));
    expect(validateSbom(JSON.parse(bytes.toString('utf8'))).valid).toBe(true);
  });
});

describe('package URLs', () => {
  it('encodes npm scopes as %40 (purl-spec npm type)', () => {
    expect(makeNpmPurl('@scope/name', '1.0.0')).toBe('pkg:npm/%40scope/name@1.0.0');
    expect(makeNpmPurl('left-pad', '1.3.0')).toBe('pkg:npm/left-pad@1.3.0');
    expect(canonicalPurl('pkg:npm/@scope/name@1.0.0')).toBe('pkg:npm/%40scope/name@1.0.0');
  });

  it('normalises pypi names (PEP 503) and keeps file_name', () => {
    expect(makePypiPurl('Django_Rest', '3.0')).toBe('pkg:pypi/django-rest@3.0');
    expect(makePypiPurl('requests', '2.32.3', 'requests-2.32.3.tar.gz')).toBe(
      'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3.tar.gz',
    );
  });

  it('builds generic purls with percent-encoded qualifiers', () => {
    expect(makeGenericPurl('openssl', '3.0.0', { downloadUrl: 'https://x.org/a b.tgz', sha256: 'ab' })).toBe(
      'pkg:generic/openssl@3.0.0?checksum=sha256%3Aab&download_url=https%3A%2F%2Fx.org%2Fa%20b.tgz',
    );
    expect(makeGenericPurl('file name', null)).toBe('pkg:generic/file%20name');
  });

  it('rejects invalid purls with SBOM_INVALID_PURL', () => {
    for (const bad of ['', 'npm:x', 'pkg:', 'pkg:npm/', 'https://example.com/x']) {
      expect(() => canonicalPurl(bad), bad).toThrow(expect.objectContaining({ code: 'SBOM_INVALID_PURL' }));
    }
  });
});

describe('uuidV5', () => {
  it('matches RFC 4122 name-based UUIDs (Python uuid.uuid5 vectors)', () => {
    // uuid.uuid5(uuid.NAMESPACE_DNS, 'python.org')
    expect(uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org')).toBe('886313e1-3b8a-5372-9b90-0c9aee199e5d');
    // uuid.uuid5(uuid.NAMESPACE_URL, 'https://airlock.dev/sbom')
    expect(uuidV5(UUID_NAMESPACE_URL, 'https://airlock.dev/sbom')).toBe('a6987a6f-e23d-512c-9188-7f6646bdfcd3');
    expect(AIRLOCK_SBOM_NAMESPACE).toBe('a6987a6f-e23d-512c-9188-7f6646bdfcd3');
  });

  it('rejects a namespace that is not a UUID', () => {
    expect(() => uuidV5('nope', 'x')).toThrow(TypeError);
  });
});
