import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '@airlock/core';
import { indexAdvisories, loadOsvDirectory, TransferManifestSnapshotSource, type LoadedPolicy } from '@airlock/policy';
import { BundleVerifier } from '@airlock/verify';
import { AdmissionError } from '../errors.js';
import type { TrustMaterial } from './types.js';

/**
 * The trusted roots and mirror snapshots the operator configured, read once: their digest is part of every cache
 * key, and a change of any file (trust.ts's caller watches them) drops the cache.
 */
export class TrustStore {
  /** sha256 over every trusted root and snapshot file's bytes, in order. */
  readonly digest: string;
  readonly files: readonly string[];
  private readonly roots: readonly { path: string; json: unknown }[];
  private readonly snapshotFiles: readonly { manifest: Buffer; bundle: unknown; where: string }[];
  private readonly cache = new Map<string, TrustMaterial>();

  constructor(options: { trustedRoots: readonly string[]; snapshots?: readonly string[] }) {
    if (options.trustedRoots.length === 0)
      throw new AdmissionError(
        'ADMISSION_CONFIG_INVALID',
        'no trusted root configured (a Sigstore TrustedRoot JSON file)',
      );
    const hashed: Buffer[] = [];
    const files: string[] = [];
    const read = (p: string, what: string): Buffer => {
      try {
        const b = readFileSync(p);
        hashed.push(Buffer.from(sha256Hex(b)));
        files.push(p);
        return b;
      } catch (cause) {
        throw new AdmissionError('ADMISSION_CONFIG_INVALID', `cannot read ${what} ${p}: ${(cause as Error).message}`, {
          cause,
        });
      }
    };
    this.roots = options.trustedRoots.map((p) => ({ path: p, json: parseJson(read(p, 'trusted root'), p) }));
    this.snapshotFiles = (options.snapshots ?? []).map((dir) => {
      const bundlePath = join(dir, 'attestations', 'manifest.sigstore.json');
      return {
        manifest: read(join(dir, 'manifest.json'), 'snapshot manifest'),
        bundle: parseJson(read(bundlePath, 'snapshot bundle'), bundlePath),
        where: dir,
      };
    });
    this.digest = sha256Hex(Buffer.concat(hashed));
    this.files = files;
  }

  /** Verifiers (with the policy's public keys) and verified snapshots for a release policy; memoised per policy digest. */
  material(policy: LoadedPolicy): TrustMaterial {
    const hit = this.cache.get(policy.digest.sha256);
    if (hit) return hit;
    const publicKeys: Record<string, string> = {};
    for (const a of Object.values(policy.document.authorities))
      if (a.publicKey) publicKeys[a.publicKey.hint] = readKey(a.publicKey.path);
    const verifiers = this.roots.map((r) => new BundleVerifier(r.json, { publicKeys }));
    const osv = policy.document.advisories?.osvDirectory;
    const material: TrustMaterial = {
      verifiers,
      ...(this.snapshotFiles.length > 0 ? { snapshots: this.snapshots(verifiers) } : {}),
      ...(osv !== undefined ? { advisories: indexAdvisories(loadOsvDirectory(osv)) } : {}),
    };
    this.cache.set(policy.digest.sha256, material);
    return material;
  }

  private snapshots(verifiers: readonly BundleVerifier[]): TransferManifestSnapshotSource {
    const s = new TransferManifestSnapshotSource();
    for (const snap of this.snapshotFiles) {
      let last: unknown;
      const ok = verifiers.some((v) => {
        try {
          s.add(snap.manifest, snap.bundle, v, snap.where);
          return true;
        } catch (err) {
          last = err;
          return false;
        }
      });
      if (!ok)
        throw new AdmissionError(
          'ADMISSION_CONFIG_INVALID',
          `snapshot ${snap.where} does not verify: ${(last as Error).message}`,
        );
    }
    return s;
  }
}

function parseJson(bytes: Buffer, path: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new AdmissionError('ADMISSION_CONFIG_INVALID', `${path} is not JSON`, { cause });
  }
}

function readKey(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new AdmissionError(
      'ADMISSION_CONFIG_INVALID',
      `cannot read public key ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
}
