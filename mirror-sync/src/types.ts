/**
 * The transfer manifest (the contract with the importer and the mirror) is defined once, in @airlock/schemas
 * (checked against transfer-manifest.v1.schema.json); re-exported here. Below: the pinned requests the input
 * parsers produce.
 */
export type {
  Ecosystem,
  ManifestBlob,
  EntryDigests,
  NpmEntryMetadata,
  PypiEntryMetadata,
  BazelEntryMetadata,
  NixEntryMetadata,
  NpmManifestEntry,
  PypiManifestEntry,
  BazelManifestEntry,
  NixManifestEntry,
  GenericManifestEntry,
  ManifestEntry,
  SnapshotInfo,
  TransferManifest,
} from '@airlock/schemas';

// ---- What the parsers produce ----

export type InputKind =
  'npm-lock' | 'requirements' | 'bazel-fetch' | 'bazel-query' | 'nix-drv' | 'nix-fetch' | 'generic';

export interface ParsedInput<T> {
  kind: InputKind;
  entries: T[];
  /** Things deliberately skipped or worth knowing (bundled deps, workspace links, ignored options…). */
  notes: string[];
}

/** One registry package from package-lock.json (deduplicated by name@version). */
export interface NpmLockPackage {
  name: string;
  version: string;
  /** Absent in lockfiles written with `omit-lockfile-registry-resolved`: resolved through the registry. */
  resolved?: string;
  /** SRI exactly as in the lockfile. */
  integrity: string;
  /** The first lockfile key it was found under (`node_modules/a/node_modules/b`). */
  lockPath: string;
}

/** One `name==version --hash=sha256:…` requirement. */
export interface PinnedRequirement {
  /** As written (display name). */
  name: string;
  /** PEP 503 normalised. */
  normalizedName: string;
  version: string;
  extras: string[];
  markers: string | null;
  /** Pinned sha256 hex digests: any file of the version with one of these is wanted. */
  sha256: string[];
  line: number;
}

export interface BazelFetch {
  name: string;
  urls: string[];
  /** sha256 hex; absent only when the rule pinned `integrity` with another algorithm. */
  sha256?: string;
  /** Everything pinned (sha256 and/or the integrity digests), lowercase hex. */
  expected: Partial<Record<'sha256' | 'sha384' | 'sha512', string>>;
  stripPrefix: string | null;
  type: 'http_archive' | 'http_file';
}

export interface NixFetch {
  name: string;
  urls: string[];
  outputHashAlgo: 'sha256' | 'sha512';
  outputHashMode: 'flat';
  /** The hash as the input wrote it (base16, nix32 or SRI). */
  outputHash: string;
  /** Pinned digest, lowercase hex. */
  expected: Partial<Record<'sha256' | 'sha512', string>>;
  /** The .drv path when it came from show-derivation. */
  drvPath?: string;
}

export interface GenericFetch {
  name: string;
  url: string;
  expected: Partial<Record<'sha256' | 'sha384' | 'sha512', string>>;
}
