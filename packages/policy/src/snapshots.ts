import { canonicalBytes, sha256Hex } from '@airlock/core';
import type { BundleVerifier } from '@airlock/verify';
import { TRANSFER_MANIFEST_MEDIA_TYPE, TRANSFER_MANIFEST_PREDICATE_TYPE } from './constants.js';
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

interface ManifestLike {
  mediaType?: unknown;
  snapshot?: { id?: unknown; sequence?: unknown; previous?: unknown; createdAt?: unknown };
  blobs?: unknown;
  entries?: { digests?: { sha256?: unknown }; purl?: unknown }[];
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
    const snapshotId = m.snapshot!.id as string;
    for (const e of m.entries ?? []) {
      const sha = e.digests?.sha256;
      if (typeof sha !== 'string') throw new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: entry without sha256`);
      const hits = this.bySha256.get(sha) ?? [];
      hits.push({ snapshotId, signedBy: { ...signer }, ...(typeof e.purl === 'string' ? { purl: e.purl } : {}) });
      this.bySha256.set(sha, hits);
    }
    return this;
  }

  lookup(digest: { sha256: string }): SnapshotHit[] {
    return this.bySha256.get(digest.sha256) ?? [];
  }
}

function parseManifest(bytes: Buffer, where: string): ManifestLike {
  let m: ManifestLike;
  try {
    m = JSON.parse(bytes.toString('utf8')) as ManifestLike;
  } catch (cause) {
    throw new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: not JSON`, { cause });
  }
  const s = m?.snapshot;
  if (m?.mediaType !== TRANSFER_MANIFEST_MEDIA_TYPE || typeof s?.id !== 'string' || !Array.isArray(m.entries))
    throw new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: not an airlock transfer manifest`);
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
