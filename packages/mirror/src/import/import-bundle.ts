import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { AirlockError, canonicalBytes, hasErrorCode, sha256Hex, type Statement } from '@airlock/core';
import type { ImportSession, MirrorStore, SnapshotRecord } from '@airlock/cas';
import {
  CYCLONEDX_PREDICATE_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
  type ManifestBlob,
  type TransferManifest,
} from '@airlock/schemas';
import { BundleVerifier, parseBundleStrict, type IdentityPolicy, type VerificationResult } from '@airlock/verify';
import { ImportError } from './errors.js';
import { validateTransferManifest } from './manifest-schema.js';
import { readStrictTar } from './strict-tar.js';

/** Defined once in @airlock/schemas; re-exported for the importer's users. */
export { CYCLONEDX_PREDICATE_TYPE, TRANSFER_MANIFEST_PREDICATE_TYPE };

const MANIFEST = 'manifest.json';
const MANIFEST_BUNDLE = 'attestations/manifest.sigstore.json';
const SBOM = 'attestations/sbom.cdx.json';
const SBOM_BUNDLE = 'attestations/sbom.sigstore.json';
const ATTESTATION_NAMES = new Set([MANIFEST_BUNDLE, SBOM, SBOM_BUNDLE]);
const BLOB_NAME = /^blobs\/sha256\/([0-9a-f]{64})$/;

/** The manifest's commitment to the bundle's SBOM document (`attestations/sbom.cdx.json`). */
type ManifestSbom = ManifestBlob;

export interface ImportOptions {
  store: MirrorStore;
  /** Sigstore TrustedRoot JSON of the trust plane that certifies the sync job. */
  trustedRoot: unknown;
  /** Who may sign transfer bundles: the sync job's workload identity and its OIDC issuer. */
  syncIdentity: IdentityPolicy;
  /** Accept a snapshot whose `previous` is not the store's head (a deliberate skip; sequence must still grow). */
  allowGap?: boolean;
  /** Largest single blob accepted (default 8 GiB). */
  maxBlobBytes?: number;
  /**
   * Refuse a snapshot whose signed `snapshot.createdAt` is older than this (default: no limit), so a bundle
   * captured on its way in cannot be replayed into a fresh mirror long after its packages were withdrawn.
   */
  maxSnapshotAgeMs?: number;
  /** The clock for maxSnapshotAgeMs (tests); default Date.now. */
  now?: () => number;
  /** Largest manifest / attestation file accepted (default 256 MiB / 64 MiB). */
  maxManifestBytes?: number;
  maxAttestationBytes?: number;
  onProgress?: (event: ImportProgress) => void;
}

export type ImportProgress =
  | { phase: 'verified'; snapshot: string; sequence: number; blobs: number; entries: number }
  | { phase: 'blob'; index: number; total: number; sha256: string; size: number }
  | { phase: 'committed'; snapshot: string; sequence: number };

export interface ImportResult {
  snapshot: SnapshotRecord;
  entries: number;
  blobs: number;
  newBlobs: number;
  bytes: number;
  signer: VerificationResult['signer'];
  logIndexes: number[];
  durationMs: number;
}

/**
 * Imports a transfer bundle, verifying all of it before anything becomes visible:
 *  1. the archive is read strictly (strict-tar.ts): every header, padding byte and end block must be exactly
 *     what the sync job writes; plus hygiene (plain files only, safe names, no duplicates, size limits),
 *  2. `manifest.json` first, then the attestations: the manifest's Sigstore bundle must be in canonical form
 *     (byte for byte the protobuf-specs JSON encoding, so no unsigned byte of it can vary) and verify against the
 *     trusted root and the configured sync identity, and its in-toto statement must name exactly this manifest
 *     (by sha256, so every byte of manifest.json is signed) and exactly the manifest's blobs; the manifest must
 *     match its schema; the snapshot must extend the store's head (no rollback, no replay, no gap unless allowed),
 *  3. every blob, streamed into a staging session of the store with its digest and size checked,
 *  4. one atomic commit. Any failure aborts the session: the store stays exactly as it was.
 */
export async function importBundle(source: string | Readable, options: ImportOptions): Promise<ImportResult> {
  const started = performance.now();
  const maxBlob = options.maxBlobBytes ?? 8 * 1024 ** 3;
  const maxManifest = options.maxManifestBytes ?? 256 * 1024 ** 2;
  const maxAttestation = options.maxAttestationBytes ?? 64 * 1024 ** 2;
  const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;

  const seen = new Set<string>();
  const attestations = new Map<string, Buffer>();
  let manifestBytes: Buffer | undefined;
  let manifest: TransferManifest | undefined;
  let verified: { signer: VerificationResult['signer']; logIndexes: number[] } | undefined;
  let session: ImportSession | undefined;
  const expectedBlobs = new Map<string, number>();
  const received = new Set<string>();
  let newBlobs: number;
  let bytes = 0;

  try {
    for await (const entry of readStrictTar(input)) {
      const name = entry.name;
      if (seen.has(name)) throw new ImportError('IMPORT_ARCHIVE_UNSAFE', `entry '${name}' appears twice`);
      seen.add(name);
      if (name === MANIFEST) {
        if (seen.size !== 1)
          throw new ImportError('IMPORT_UNEXPECTED_ENTRY', `${MANIFEST} must be the first entry of the bundle`);
        manifestBytes = await readBounded(entry.body, entry.size, maxManifest, name);
        continue;
      }
      if (!manifestBytes)
        throw new ImportError('IMPORT_UNEXPECTED_ENTRY', `'${name}' comes before ${MANIFEST}: not a transfer bundle`);
      if (ATTESTATION_NAMES.has(name)) {
        if (verified) throw new ImportError('IMPORT_UNEXPECTED_ENTRY', `attestation '${name}' after the first blob`);
        attestations.set(name, await readBounded(entry.body, entry.size, maxAttestation, name));
        continue;
      }
      const blob = BLOB_NAME.exec(name);
      if (!blob) throw new ImportError('IMPORT_UNEXPECTED_ENTRY', `unexpected entry '${name}' in the bundle`);
      // Checked on the header, before any signature work: an oversized entry is refused whoever signed it.
      if (entry.size > maxBlob)
        throw new ImportError(
          'IMPORT_TOO_LARGE',
          `blob entry '${name}' is ${entry.size} bytes, over the limit of ${maxBlob}`,
        );
      if (!verified) {
        ({ manifest, verified } = verifyHead(manifestBytes, attestations, options));
        for (const b of manifest.blobs) expectedBlobs.set(b.sha256, b.size);
        checkOrder(options.store, manifest, options.allowGap);
        options.onProgress?.({
          phase: 'verified',
          snapshot: manifest.snapshot.id,
          sequence: manifest.snapshot.sequence,
          blobs: manifest.blobs.length,
          entries: manifest.entries.length,
        });
        session = await options.store.beginImport();
      }
      const sha256 = blob[1]!;
      const size = expectedBlobs.get(sha256);
      if (size === undefined)
        throw new ImportError('IMPORT_UNEXPECTED_ENTRY', `blob ${sha256} is not listed in the manifest`);
      if (entry.size !== size)
        throw new ImportError(
          'IMPORT_BLOB_MISMATCH',
          `blob ${sha256}: archive says ${entry.size} bytes, manifest says ${size}`,
        );
      try {
        // Durable in batches in the background; commit() waits for all of them before the index names any.
        await session!.putBatched(entry.body, { sha256, size }, { maxSize: maxBlob });
      } catch (cause) {
        if (hasErrorCode(cause, 'CAS_DIGEST_MISMATCH') || hasErrorCode(cause, 'CAS_SIZE_MISMATCH')) {
          throw new ImportError('IMPORT_BLOB_MISMATCH', `blob ${sha256}: ${(cause as Error).message}`, { cause });
        }
        throw cause;
      }
      received.add(sha256);
      bytes += size;
      options.onProgress?.({ phase: 'blob', index: received.size, total: expectedBlobs.size, sha256, size });
    }

    if (!manifestBytes) throw new ImportError('IMPORT_MANIFEST_INVALID', `the bundle has no ${MANIFEST}`);
    if (!verified) {
      // A snapshot without blobs (or whose blobs are all missing) still has to pass every check.
      ({ manifest, verified } = verifyHead(manifestBytes, attestations, options));
      for (const b of manifest.blobs) expectedBlobs.set(b.sha256, b.size);
      checkOrder(options.store, manifest, options.allowGap);
      session = await options.store.beginImport();
    }
    const missing = [...expectedBlobs.keys()].filter((h) => !received.has(h));
    if (missing.length) {
      throw new ImportError(
        'IMPORT_BLOB_MISSING',
        `the bundle lacks ${missing.length} blob(s) its manifest lists, e.g. ${missing[0]}`,
        { details: { missing: missing.slice(0, 20) } },
      );
    }
    const signedBundles: Record<string, unknown> = {};
    for (const [n, b] of attestations) if (n.endsWith('.sigstore.json')) signedBundles[n] = strictBundle(b, n);
    let snapshot: SnapshotRecord;
    try {
      await session!.flush();
      newBlobs = session!.newBlobs;
      snapshot = await session!.commit({
        manifest: manifest!,
        signedBundles,
        entries: manifest!.entries,
        ...(options.allowGap ? { allowGap: true } : {}),
      });
    } catch (cause) {
      throw mapStoreError(cause);
    }
    session = undefined;
    options.onProgress?.({ phase: 'committed', snapshot: snapshot.id, sequence: snapshot.sequence });
    return {
      snapshot,
      entries: manifest!.entries.length,
      blobs: expectedBlobs.size,
      newBlobs,
      bytes,
      signer: verified.signer,
      logIndexes: verified.logIndexes,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    input.destroy();
    if (session) await session.abort().catch(() => undefined);
    if (err instanceof ImportError) throw err;
    if (hasErrorCode(err, 'CAS_SIZE_LIMIT'))
      throw new ImportError('IMPORT_TOO_LARGE', (err as Error).message, { cause: err });
    // The store's own refusals (another import holds it, it is closed…) are not archive problems.
    if (err instanceof AirlockError) throw mapStoreError(err);
    // Anything else (the source stream failing…) means the bundle could not be read.
    throw new ImportError('IMPORT_ARCHIVE_UNSAFE', `cannot read the bundle: ${(err as Error).message}`, { cause: err });
  }
}

async function readBounded(
  stream: AsyncIterable<Buffer>,
  declared: number,
  limit: number,
  name: string,
): Promise<Buffer> {
  if (declared > limit)
    throw new ImportError('IMPORT_TOO_LARGE', `'${name}' is ${declared} bytes, over the limit of ${limit}`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += c.length;
    if (n > limit) throw new ImportError('IMPORT_TOO_LARGE', `'${name}' exceeds ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new ImportError(
      what === MANIFEST ? 'IMPORT_MANIFEST_INVALID' : 'IMPORT_SIGNATURE_INVALID',
      `${what} is not JSON: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/**
 * A Sigstore bundle file, accepted only byte for byte in canonical form: its signatures cover the decoded
 * values, not their JSON spelling (base64 padding bits, unknown fields, whitespace), which must not vary either.
 */
function strictBundle(bytes: Buffer, what: string): unknown {
  try {
    return parseBundleStrict(bytes).json;
  } catch (cause) {
    throw new ImportError('IMPORT_SIGNATURE_INVALID', `${what}: ${(cause as Error).message}`, {
      cause,
      details: { code: (cause as { code?: string }).code },
    });
  }
}

/** Verifies signatures, statement coverage and schema; returns the parsed manifest. */
function verifyHead(
  manifestBytes: Buffer,
  attestations: Map<string, Buffer>,
  options: ImportOptions,
): {
  manifest: TransferManifest;
  verified: { signer: VerificationResult['signer']; logIndexes: number[] };
} {
  const bundleBytes = attestations.get(MANIFEST_BUNDLE);
  if (!bundleBytes)
    throw new ImportError(
      'IMPORT_SIGNATURE_INVALID',
      `the bundle has no ${MANIFEST_BUNDLE}: unsigned bundles are refused`,
    );
  const verifier = new BundleVerifier(options.trustedRoot);
  const manifestSha256 = sha256Hex(manifestBytes);
  const manifestBundle = strictBundle(bundleBytes, MANIFEST_BUNDLE);
  let result: VerificationResult;
  try {
    result = verifier.verify(manifestBundle, {
      artifactDigest: { sha256: manifestSha256 },
      subjectName: MANIFEST,
      policy: options.syncIdentity,
      expectedPredicateType: TRANSFER_MANIFEST_PREDICATE_TYPE,
    });
  } catch (cause) {
    throw new ImportError('IMPORT_SIGNATURE_INVALID', `${MANIFEST_BUNDLE}: ${(cause as Error).message}`, {
      cause,
      details: { code: (cause as { code?: string }).code },
    });
  }
  const manifest = parseJson(manifestBytes, MANIFEST);
  validateTransferManifest(manifest);
  const m: TransferManifest = manifest;
  checkManifestConsistency(m);
  checkStatementCoversManifest(result.statement!, m);
  checkSnapshotAge(m.snapshot.createdAt, options);

  const logIndexes = result.tlogEntries.map((e) => e.logIndex);
  // The SBOM must be signed by the same identity, match its file, and be the one the manifest commits to.
  const sbom = attestations.get(SBOM);
  const sbomBundle = attestations.get(SBOM_BUNDLE);
  if (sbom || sbomBundle) {
    if (!sbom || !sbomBundle)
      throw new ImportError('IMPORT_SIGNATURE_INVALID', `${SBOM} and ${SBOM_BUNDLE} must come together`);
    const parsedSbomBundle = strictBundle(sbomBundle, SBOM_BUNDLE);
    try {
      const r = verifier.verify(parsedSbomBundle, {
        artifactDigest: { sha256: sha256Hex(sbom) },
        policy: options.syncIdentity,
        expectedPredicateType: CYCLONEDX_PREDICATE_TYPE,
      });
      logIndexes.push(...r.tlogEntries.map((e) => e.logIndex));
    } catch (cause) {
      throw new ImportError('IMPORT_SIGNATURE_INVALID', `${SBOM_BUNDLE}: ${(cause as Error).message}`, { cause });
    }
    // Signed by digest already; the writer's canonical JSON is required as well, like every other file.
    let canonical: Buffer | undefined;
    try {
      canonical = canonicalBytes(JSON.parse(sbom.toString('utf8')));
    } catch {
      canonical = undefined;
    }
    if (!canonical?.equals(sbom))
      throw new ImportError(
        'IMPORT_SIGNATURE_INVALID',
        `${SBOM} is signed but not in canonical JSON form (RFC 8785) as the sync job writes it`,
      );
  }
  // After the signature checks, so a changed byte of the SBOM is a signature failure like any other file's; a
  // validly signed SBOM of another snapshot (or none at all) gets here.
  checkSbomCommitted(m.sbom, sbom, sbomBundle);
  return { manifest: m, verified: { signer: result.signer, logIndexes } };
}

/** Accepted clock difference between the sync host and this one before a snapshot counts as future-dated. */
const CLOCK_SKEW_MS = 10 * 60 * 1000;

/**
 * `createdAt` is inside manifest.json, whose sha256 is a subject of the signed statement: the sync job vouches
 * for it. A future date is refused too when a limit is set, or a forward-dated snapshot would never expire.
 */
function checkSnapshotAge(createdAt: string, options: ImportOptions): void {
  if (options.maxSnapshotAgeMs === undefined) return;
  const created = Date.parse(createdAt);
  const now = (options.now ?? Date.now)();
  if (created > now + CLOCK_SKEW_MS)
    throw new ImportError(
      'IMPORT_SNAPSHOT_EXPIRED',
      `the snapshot is dated ${createdAt}, in the future of this host's clock: refused under --max-snapshot-age`,
      { details: { createdAt } },
    );
  const age = now - created;
  if (age > options.maxSnapshotAgeMs)
    throw new ImportError(
      'IMPORT_SNAPSHOT_EXPIRED',
      `the snapshot was signed as created at ${createdAt}, ${formatAge(age)} ago: older than the maximum age of ${formatAge(options.maxSnapshotAgeMs)}`,
      { details: { createdAt, ageMs: age, maxAgeMs: options.maxSnapshotAgeMs } },
    );
}

function formatAge(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${(h / 24).toFixed(1)} days` : h >= 1 ? `${h.toFixed(1)} hours` : `${Math.round(ms / 1000)} s`;
}

/**
 * The signed manifest names the SBOM by digest (or says there is none), so an SBOM cannot be stripped, added
 * or swapped for another one the same identity signed.
 */
function checkSbomCommitted(
  committed: ManifestSbom | null | undefined,
  sbom: Buffer | undefined,
  sbomBundle: Buffer | undefined,
): void {
  if (!committed) {
    if (sbom || sbomBundle)
      throw new ImportError('IMPORT_SBOM_MISMATCH', `${MANIFEST} commits to no SBOM, but the bundle carries one`);
    return;
  }
  if (!sbom || !sbomBundle)
    throw new ImportError(
      'IMPORT_SBOM_MISMATCH',
      `${MANIFEST} commits to an SBOM (sha256 ${committed.sha256}) but the bundle lacks ${!sbom ? SBOM : SBOM_BUNDLE}`,
    );
  const actual = sha256Hex(sbom);
  if (actual !== committed.sha256 || sbom.length !== committed.size)
    throw new ImportError(
      'IMPORT_SBOM_MISMATCH',
      `${SBOM} is not the SBOM ${MANIFEST} commits to (sha256 ${actual}, ${sbom.length} bytes; committed ${committed.sha256}, ${committed.size} bytes)`,
    );
}

/**
 * What the schema cannot say: the snapshot id is the hash of the content it names (so a manifest cannot keep an
 * old id with new entries), every entry's blob is listed with the same size, and every listed blob is used.
 */
export function checkManifestConsistency(m: TransferManifest): void {
  const fail = (msg: string): never => {
    throw new ImportError('IMPORT_MANIFEST_INVALID', `manifest.json: ${msg}`);
  };
  const { sequence, previous, createdAt } = m.snapshot;
  const id = `sha256:${sha256Hex(canonicalBytes({ sequence, previous, createdAt, entries: m.entries, blobs: m.blobs }))}`;
  if (id !== m.snapshot.id) fail(`snapshot.id ${m.snapshot.id} is not the digest of its content (${id})`);
  const sizes = new Map<string, number>();
  for (const b of m.blobs) {
    if (sizes.has(b.sha256)) fail(`blob ${b.sha256} listed twice`);
    sizes.set(b.sha256, b.size);
  }
  const used = new Set<string>();
  const use = (sha256: string, size: number, where: string): void => {
    const listed = sizes.get(sha256);
    if (listed === undefined) fail(`${where} refers to blob ${sha256}, which the manifest does not list`);
    if (listed !== size) fail(`${where} says ${size} bytes for blob ${sha256}, the blob list says ${listed}`);
    used.add(sha256);
  };
  m.entries.forEach((e, i) => {
    use(e.digests.sha256, e.size, `entries[${i}] (${e.ecosystem} ${e.name})`);
    const core = e.ecosystem === 'pypi' ? e.metadata.coreMetadata : null;
    if (core) use(core.sha256, core.size, `entries[${i}].metadata.coreMetadata`);
  });
  const unused = [...sizes.keys()].filter((h) => !used.has(h));
  if (unused.length) fail(`${unused.length} listed blob(s) belong to no entry, e.g. ${unused[0]}`);
}

/** The signed statement must name exactly the manifest's blobs (no more, no fewer) with the same digests. */
function checkStatementCoversManifest(statement: Statement, manifest: TransferManifest): void {
  const signed = new Map<string, string>();
  for (const s of statement.subject) {
    const m = BLOB_NAME.exec(s.name);
    if (m) {
      if (s.digest.sha256 !== m[1])
        throw new ImportError(
          'IMPORT_STATEMENT_MISMATCH',
          `signed subject ${s.name} carries digest ${s.digest.sha256}`,
        );
      signed.set(m[1]!, s.name);
    }
  }
  const listed = new Set(manifest.blobs.map((b) => b.sha256));
  const unsigned = [...listed].filter((h) => !signed.has(h));
  const extra = [...signed.keys()].filter((h) => !listed.has(h));
  if (unsigned.length || extra.length) {
    throw new ImportError(
      'IMPORT_STATEMENT_MISMATCH',
      `the signed statement and the manifest disagree: ${unsigned.length} manifest blob(s) unsigned${unsigned[0] ? ` (e.g. ${unsigned[0]})` : ''}, ${extra.length} signed blob(s) not in the manifest`,
    );
  }
}

function checkOrder(store: MirrorStore, manifest: TransferManifest, allowGap: boolean | undefined): void {
  try {
    store.checkSnapshotOrder(manifest.snapshot, allowGap ? { allowGap: true } : {});
  } catch (cause) {
    throw mapStoreError(cause);
  }
}

function mapStoreError(cause: unknown): ImportError {
  const code = (cause as { code?: string }).code ?? '';
  const message = (cause as Error).message;
  if (code === 'SNAPSHOT_REPLAY' || code === 'SNAPSHOT_ROLLBACK' || code === 'SNAPSHOT_GAP') {
    return new ImportError('IMPORT_SEQUENCE', message, { cause, details: { storeCode: code } });
  }
  if (code === 'IMPORT_BLOB_MISSING') return new ImportError('IMPORT_BLOB_MISSING', message, { cause });
  return new ImportError('IMPORT_STORE', `the store refused the snapshot: ${message}`, {
    cause,
    details: { storeCode: code },
  });
}
