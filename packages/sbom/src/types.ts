import type { DigestSet } from '@airlock/core';
import type { Assignable, Ecosystem, TransferManifest } from '@airlock/schemas';

// ---- Input: the parts of the transfer manifest (helper-briefs/manifest.md) that the SBOM reads ----

export { ECOSYSTEMS, type Ecosystem } from '@airlock/schemas';

/** One manifest entry. Ecosystem `metadata` is not read (except bazel's `type`), so it is typed loosely. */
export interface SnapshotEntry {
  ecosystem: Ecosystem;
  name: string;
  version: string | null;
  filename: string;
  urls: string[];
  size: number;
  digests: DigestSet & { sha256: string };
  purl?: string;
  metadata?: Record<string, unknown>;
}

export interface SnapshotInfo {
  id: string; // "sha256:<hex>"
  sequence: number;
  previous: string | null;
  createdAt: string; // ISO 8601
  producer?: { name: string; version: string };
}

/**
 * A transfer manifest (`application/vnd.airlock.transfer-manifest.v1+json`), structurally: the parts the SBOM
 * reads. The contract itself is @airlock/schemas' TransferManifest, which is assignable to this (checked below).
 */
export interface SnapshotManifest {
  mediaType?: string;
  snapshot: SnapshotInfo;
  blobs?: { sha256: string; size: number }[];
  entries: SnapshotEntry[];
}

export type TransferManifestIsSnapshotManifest = Assignable<TransferManifest, SnapshotManifest>;

export interface SbomOptions {
  /** `urn:uuid:<lowercase uuid>`; default: a UUID v5 derived from the content, so the same input gives the same bytes. */
  serialNumber?: string;
  /** metadata.timestamp; default: the manifest's `createdAt` (sbomFromManifest) or none (sbomForBuild). */
  timestamp?: string | Date;
  /** Version recorded for the `airlock` tool in metadata.tools (default: this package's version). */
  toolVersion?: string;
}

// ---- Input: a build's output and the inputs it consumed (sbomForBuild) ----

export interface BuildSubject {
  name: string;
  version?: string;
  digests: DigestSet;
  purl?: string;
  /** CycloneDX component type of the artifact (default `file`). */
  type?: 'application' | 'library' | 'file' | 'container' | 'firmware';
}

export interface BuildInput {
  name: string;
  version?: string;
  purl?: string;
  digests: DigestSet;
  /** Where the input came from (a mirror URL, `git+https://…`); becomes an external reference. */
  uri?: string;
}

export interface BuildSbomInput extends SbomOptions {
  subject: BuildSubject;
  components: BuildInput[];
  /** Extra `airlock:*` facts about the build for metadata.properties (e.g. builder id, invocation id). */
  properties?: Record<string, string>;
}

// ---- Output: the CycloneDX 1.6 JSON this package produces (a subset of the schema) ----

export type CycloneDxHashAlgorithm = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

export interface CycloneDxHash {
  alg: CycloneDxHashAlgorithm;
  content: string;
}

export interface CycloneDxExternalReference {
  type: string;
  url: string;
  comment?: string;
}

export interface CycloneDxProperty {
  name: string;
  value: string;
}

export interface CycloneDxComponent {
  type: string;
  name: string;
  group?: string;
  version?: string;
  'bom-ref'?: string;
  description?: string;
  hashes?: CycloneDxHash[];
  purl?: string;
  externalReferences?: CycloneDxExternalReference[];
  properties?: CycloneDxProperty[];
}

export interface CycloneDxDependency {
  ref: string;
  dependsOn?: string[];
}

export interface CycloneDxMetadata {
  timestamp?: string;
  lifecycles?: { phase: string }[];
  tools?: { components?: CycloneDxComponent[] };
  component?: CycloneDxComponent;
  properties?: CycloneDxProperty[];
}

export interface CycloneDxBom {
  $schema?: string;
  bomFormat: 'CycloneDX';
  specVersion: '1.6';
  serialNumber?: string;
  version: number;
  metadata: CycloneDxMetadata;
  components: CycloneDxComponent[];
  dependencies?: CycloneDxDependency[];
}
