import { Enums, Models, Serialize, Spec } from '@cyclonedx/cyclonedx-library';
import type { DigestAlgorithm, DigestSet } from '@airlock/core';
import type { PackageURL } from 'packageurl-js';
import type { CycloneDxBom, CycloneDxComponent, CycloneDxHashAlgorithm } from './types.js';

/** Package version, recorded as the `airlock` tool's version unless the caller says otherwise. */
export const AIRLOCK_SBOM_VERSION = '0.1.0';
export const CYCLONEDX_SPEC_VERSION = '1.6';
/** in-toto predicate type for a CycloneDX BOM: defined once in @airlock/schemas, re-exported. */
export { CYCLONEDX_PREDICATE_TYPE } from '@airlock/schemas';
export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

const HASH_ALGORITHMS: [DigestAlgorithm, CycloneDxHashAlgorithm][] = [
  ['sha256', 'SHA-256'],
  ['sha384', 'SHA-384'],
  ['sha512', 'SHA-512'],
  ['sha1', 'SHA-1'],
];

export interface ComponentSpec {
  type: Enums.ComponentType;
  name: string;
  group?: string;
  version?: string;
  bomRef: string;
  description?: string;
  purl?: PackageURL;
  digests?: DigestSet;
  externalReferences?: { type: Enums.ExternalReferenceType; url: string }[];
  properties?: [string, string][];
}

export function makeComponent(spec: ComponentSpec): Models.Component {
  const c = new Models.Component(spec.type, spec.name, {
    bomRef: spec.bomRef,
    group: spec.group,
    version: spec.version,
    description: spec.description,
    purl: spec.purl,
  });
  for (const [alg, cdxAlg] of HASH_ALGORITHMS) {
    const hex = spec.digests?.[alg];
    if (hex) c.hashes.set(cdxAlg as Enums.HashAlgorithm, hex.toLowerCase());
  }
  for (const ref of spec.externalReferences ?? [])
    c.externalReferences.add(new Models.ExternalReference(ref.url, ref.type));
  for (const [name, value] of spec.properties ?? []) c.properties.add(new Models.Property(name, value));
  return c;
}

export function airlockTool(version: string): Models.Component {
  return new Models.Component(Enums.ComponentType.Application, 'airlock', {
    version,
    description: 'airlock: hermetic builds and supply-chain provenance for air-gapped perimeters',
  });
}

/**
 * Normalises a library model to CycloneDX 1.6 JSON, then sorts every list by UTF-16 code units: the library sorts
 * with `localeCompare`, whose order depends on the runtime's locale, and the output must be byte-for-byte stable.
 */
export function toCycloneDxJson(bom: Models.Bom): CycloneDxBom {
  const factory = new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6);
  const normalized = factory.makeForBom().normalize(bom, { sortLists: true });
  const json = JSON.parse(JSON.stringify(normalized)) as CycloneDxBom; // drops the undefined members
  json.components = sortBy(json.components.map(sortComponentLists), componentKey);
  if (json.metadata.component) json.metadata.component = sortComponentLists(json.metadata.component);
  if (json.metadata.tools?.components)
    json.metadata.tools.components = sortBy(json.metadata.tools.components.map(sortComponentLists), componentKey);
  if (json.metadata.properties)
    json.metadata.properties = sortBy(json.metadata.properties, (p) => `${p.name}\u0000${p.value}`);
  if (json.dependencies) {
    json.dependencies = sortBy(
      json.dependencies.map((d) => (d.dependsOn ? { ...d, dependsOn: sortBy(d.dependsOn, (x) => x) } : d)),
      (d) => d.ref,
    );
  }
  return json;
}

function sortComponentLists(c: CycloneDxComponent): CycloneDxComponent {
  const out = { ...c };
  const algOrder = HASH_ALGORITHMS.map(([, a]) => a);
  if (out.hashes) out.hashes = [...out.hashes].sort((a, b) => algOrder.indexOf(a.alg) - algOrder.indexOf(b.alg));
  if (out.externalReferences) out.externalReferences = sortBy(out.externalReferences, (r) => `${r.type}\u0000${r.url}`);
  if (out.properties) out.properties = sortBy(out.properties, (p) => `${p.name}\u0000${p.value}`);
  return out;
}

function componentKey(c: CycloneDxComponent): string {
  return c['bom-ref'] ?? `${c.group ?? ''}\u0000${c.name}\u0000${c.version ?? ''}`;
}

function sortBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  return items
    .map((item) => [key(item), item] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, item]) => item);
}
