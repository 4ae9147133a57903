import { makeStatement, type Statement } from '@airlock/core';
import { CYCLONEDX_PREDICATE_TYPE, PRODUCER, TRANSFER_MANIFEST_PREDICATE_TYPE } from './producer.js';
import type { InputKind, TransferManifest } from './types.js';

/**
 * The signing port. The lead's Sigstore signer wraps the Statement in DSSE, gets a Fulcio certificate and a Rekor
 * entry, and returns the Sigstore bundle as JSON; mirror-sync writes that JSON as-is.
 */
export interface ManifestSigner {
  attest(statement: Statement): Promise<unknown /* Sigstore bundle JSON */>;
}

/** An input as recorded in the predicate: which file (by name and digest) the snapshot was made from. */
export interface InputRecord {
  kind: InputKind;
  name: string;
  digest: { sha256: string };
}

export interface TransferManifestPredicate {
  snapshot: { id: string; sequence: number; previous: string | null; createdAt: string };
  mediaType: string;
  entryCount: number;
  blobCount: number;
  producer: { name: string; version: string };
  inputs: InputRecord[];
}

/**
 * in-toto Statement v1 over the bundle: subjects are `manifest.json` and every blob as `blobs/sha256/<hex>`
 * (the tar paths), so a verifier can check each file it extracts against a signed digest.
 */
export function buildManifestStatement(
  manifest: TransferManifest,
  manifestSha256: string,
  inputs: InputRecord[],
): Statement<TransferManifestPredicate> {
  const subject = [
    { name: 'manifest.json', digest: { sha256: manifestSha256 } },
    ...manifest.blobs.map((b) => ({ name: `blobs/sha256/${b.sha256}`, digest: { sha256: b.sha256 } })),
  ];
  const { id, sequence, previous, createdAt } = manifest.snapshot;
  return makeStatement(subject, TRANSFER_MANIFEST_PREDICATE_TYPE, {
    snapshot: { id, sequence, previous, createdAt },
    mediaType: manifest.mediaType,
    entryCount: manifest.entries.length,
    blobCount: manifest.blobs.length,
    producer: { ...PRODUCER },
    inputs,
  });
}

/** The SBOM attestation: subject = the SBOM file in the bundle, predicate = the CycloneDX document. */
export function buildSbomStatement(sbom: object, sbomSha256: string): Statement<object> {
  return makeStatement(
    [{ name: 'attestations/sbom.cdx.json', digest: { sha256: sbomSha256 } }],
    CYCLONEDX_PREDICATE_TYPE,
    sbom,
  );
}
