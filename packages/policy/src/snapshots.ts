import { canonicalBytes, sha256Hex } from '@airlock/core';
import { check, TRANSFER_MANIFEST_PREDICATE_TYPE, type TransferManifest } from '@airlock/schemas';
import type { BundleVerifier } from '@airlock/verify';
import { PolicyError } from './errors.js';
import type { Signer } from './match.js';

/** One mirror snapshot that holds a blob, and who signed that snapshot's transfer manifest. */
export interface SnapshotHit {
  snapshotId: string;
  signedBy: Signer;
  /** The entry's package URL, when the snapshot names one. */
  purl?: string;
}

/**
 * Where the dependency rule looks blobs up: a mirror store, a running mirror's lookup API, or exported snapshot
 * files (the CLI provides them). Answers every snapshot it knows that holds the blob (empty when none).
 */
export interface SnapshotSource {
  lookup(digest: { sha256: string }): SnapshotHit[] | Promise<SnapshotHit[]>;
}

/**
 * A snapshot source over signed transfer manifests (`manifest.json` + `attestations/manifest.sigstore.json` of a
 * transfer bundle, or an exported snapshot). Each manifest's bundle is verified with the caller's BundleVerifier
 * (trusted root; any identity: the policy decides which sync identities count) and must name the manifest by
 * sha256; the snapshot id must be the hash of the content it names, so entries cannot be swapped under a signed id.
 */
export class TransferManifestSnapshotSource implements SnapshotSource {
  private readonly bySha256 = new Map<string, SnapshotHit[]>();
  /** Who signed the manifest added last. */
  lastSigner: Signer | undefined;

  add(manifestBytes: Buffer, bundleJson: unknown, verifier: BundleVerifier, where = 'transfer manifest'): this {
    let signer: Signer;
    try {
      const r = verifier.verify(bundleJson, {
        artifactDigest: { sha256: sha256Hex(manifestBytes) },
        subjectName: 'manifest.json',
        allowAnyIdentity: true,
        expectedPredicateType: TRANSFER_MANIFEST_PREDICATE_TYPE,
      });
      signer = r.signer;
      this.lastSigner = { ...signer };
    } catch (cause) {
      throw new PolicyError(
        'POLICY_SNAPSHOT_INVALID',
        `${where}: signature does not verify: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
    const m = parseManifest(manifestBytes, where);
    const snapshotId = m.snapshot.id;
    for (const e of m.entries) {
      const sha = e.digests.sha256;
      const hits = this.bySha256.get(sha) ?? [];
      hits.push({ snapshotId, signedBy: { ...signer }, purl: e.purl });
      this.bySha256.set(sha, hits);
    }
    return this;
  }

  lookup(digest: { sha256: string }): SnapshotHit[] {
    return this.bySha256.get(digest.sha256) ?? [];
  }
}

function parseManifest(bytes: Buffer, where: string): TransferManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: not JSON`, { cause });
  }
  const checked = check(
    'transfer-manifest.v1',
    value,
    { root: 'manifest' },
    (e) => new PolicyError('POLICY_SCHEMA_UNAVAILABLE', e.message, { cause: e }),
  );
  if (!checked.ok)
    throw new PolicyError(
      'POLICY_SNAPSHOT_INVALID',
      `${where}: not an airlock transfer manifest: ${checked.problems.slice(0, 5).join('; ')}`,
      { details: { problems: checked.problems } },
    );
  const m = checked.value;
  const s = m.snapshot;
  const id = `sha256:${sha256Hex(
    canonicalBytes({
      sequence: s.sequence,
      previous: s.previous,
      createdAt: s.createdAt,
      entries: m.entries,
      blobs: m.blobs,
    }),
  )}`;
  if (id !== s.id)
    throw new PolicyError(
      'POLICY_SNAPSHOT_INVALID',
      `${where}: snapshot.id ${s.id} is not the hash of its content (${id})`,
    );
  return m;
}

/** Asks several sources and concatenates their answers (in the order given). */
export function combineSnapshotSources(sources: readonly SnapshotSource[]): SnapshotSource {
  return {
    lookup: async (digest) => (await Promise.all(sources.map((s) => s.lookup(digest)))).flat(),
  };
}
