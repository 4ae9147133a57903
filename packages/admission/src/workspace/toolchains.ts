import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { sha256Hex } from '@airlock/core';
import { readBundleFiles, verifyArtifactByPolicy, type LoadedPolicy } from '@airlock/policy';
import type { WorkspaceVerdict } from '../types.js';
import { outcomeOf } from '../verify/check.js';
import type { TrustMaterial } from '../verify/types.js';

/** The runner's names for an output's bundles (runner/src/attestation.ts). */
const BESIDE = ['.provenance.sigstore.json', '.sbom.sigstore.json'] as const;

type ToolchainVerdict = WorkspaceVerdict['toolchains'][number];

/**
 * A toolchain file verified by its provenance with @airlock/policy's artifact verification: its sha256, its
 * bundles (given, else the runner's beside it) verified offline against the trusted roots, the toolchains release
 * policy evaluated. Never throws: an unreadable file or bundle is an ERROR verdict naming it.
 */
export async function checkToolchain(
  tc: { path: string; bundles?: string[] },
  policy: LoadedPolicy | undefined,
  trust: (p: LoadedPolicy) => TrustMaterial,
): Promise<ToolchainVerdict> {
  const error = (reason: string, sha256?: string): ToolchainVerdict => ({
    path: tc.path,
    ...(sha256 ? { sha256 } : {}),
    verdict: 'ERROR',
    reason,
  });
  if (!policy) return error('the admission policy has no toolchains section');
  let sha256: string;
  try {
    sha256 = sha256Hex(readFileSync(tc.path));
  } catch (err) {
    return error(`cannot read: ${(err as Error).message}`);
  }
  const paths =
    tc.bundles && tc.bundles.length > 0 ? tc.bundles : BESIDE.map((s) => tc.path + s).filter((p) => existsSync(p));
  if (paths.length === 0)
    return { path: tc.path, sha256, verdict: 'FAIL', reason: 'no provenance bundle given or beside it' };
  try {
    const material = trust(policy);
    const run = await verifyArtifactByPolicy({
      artifact: { name: basename(tc.path), sha256 },
      resourceUri: tc.path,
      bundles: readBundleFiles(paths),
      policy,
      verifiers: material.verifiers,
      ...(material.snapshots ? { snapshotSource: material.snapshots } : {}),
      ...(material.advisories ? { advisories: material.advisories } : {}),
    });
    const o = outcomeOf(run.verdict);
    return { path: tc.path, sha256, verdict: o.passed ? 'PASS' : 'FAIL', reason: o.reason };
  } catch (err) {
    return error((err as Error).message, sha256);
  }
}
