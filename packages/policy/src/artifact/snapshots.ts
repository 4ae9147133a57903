import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { sha256Hex } from '@airlock/core';
import type { BundleVerifier } from '@airlock/verify';
import { PolicyError } from '../errors.js';
import { TransferManifestSnapshotSource } from '../snapshots.js';
import { parseJsonBytes, readBytes } from './bundles.js';

/** What a report shows of each snapshot a verification was given. */
export interface SnapshotInfo {
  id: string;
  sequence?: number;
  where: string;
  signer?: string;
  issuer?: string;
}

const MANIFEST_BUNDLE = join('attestations', 'manifest.sigstore.json');

/**
 * Signed transfer manifests gathered for the dependency rule: each one's signature is verified when added (with the
 * first verifier whose trusted root accepts it; any identity — the policy's sync authorities decide who counts).
 */
export class VerifiedSnapshots {
  readonly source = new TransferManifestSnapshotSource();
  readonly infos: SnapshotInfo[] = [];

  constructor(private readonly verifiers: readonly BundleVerifier[]) {}

  /** `manifest` is the signed bytes (the canonical form for a mirror store's parsed manifest). */
  add(manifest: Buffer, bundle: unknown, where: string): this {
    let last: unknown;
    for (const v of this.verifiers) {
      try {
        this.source.add(manifest, bundle, v, where);
        const m = JSON.parse(manifest.toString('utf8')) as { snapshot: { id: string; sequence?: number } };
        const r = v.verify(bundle, { artifactDigest: { sha256: sha256Hex(manifest) }, allowAnyIdentity: true });
        this.infos.push({
          id: m.snapshot.id,
          ...(typeof m.snapshot.sequence === 'number' ? { sequence: m.snapshot.sequence } : {}),
          where,
          ...(r.signer.subjectAlternativeName ? { signer: r.signer.subjectAlternativeName } : {}),
          ...(r.signer.issuer ? { issuer: r.signer.issuer } : {}),
        });
        return this;
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof Error ? last : new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: does not verify`);
  }

  /** An exported snapshot: a transfer-bundle directory or a manifest file (see readSnapshotFiles). */
  addFiles(path: string): this {
    const { manifest, bundle } = readSnapshotFiles(path);
    return this.add(manifest, bundle, path);
  }
}

/**
 * An unpacked transfer bundle directory (manifest.json + attestations/manifest.sigstore.json), or a manifest file
 * whose bundle is `<file>.sigstore.json` or `attestations/manifest.sigstore.json` beside it.
 */
export function readSnapshotFiles(path: string): { manifest: Buffer; bundle: unknown } {
  const isDir = existsSync(path) && statSync(path).isDirectory();
  const manifestPath = isDir ? join(path, 'manifest.json') : path;
  const candidates = isDir
    ? [join(path, MANIFEST_BUNDLE)]
    : [`${path}.sigstore.json`, join(dirname(resolve(path)), MANIFEST_BUNDLE)];
  const bundlePath = candidates.find((c) => existsSync(c));
  if (!bundlePath)
    throw new PolicyError(
      'POLICY_INPUT_INVALID',
      `snapshot ${path}: no signature found (looked for ${candidates.join(', ')})`,
    );
  return {
    manifest: readBytes(manifestPath, 'snapshot manifest'),
    bundle: parseJsonBytes(readBytes(bundlePath, 'snapshot bundle'), bundlePath, 'snapshot bundle'),
  };
}
