import { existsSync, readFileSync } from 'node:fs';
import { sha256Hex } from '@airlock/core';
import { evaluatePolicy, type AttestationEvidence, type LoadedPolicy } from '@airlock/policy';
import type { WorkspaceVerdict } from '../types.js';
import { outcomeOf } from '../verify/check.js';
import type { TrustMaterial } from '../verify/types.js';

/** The runner's names for an output's bundles (runner/src/attestation.ts). */
const BESIDE = ['.provenance.sigstore.json', '.sbom.sigstore.json'] as const;

type ToolchainVerdict = WorkspaceVerdict['toolchains'][number];

/**
 * A toolchain file verified by its provenance: its sha256, its bundles (given, else the runner's beside it)
 * verified offline against the trusted roots, and the toolchains release policy evaluated. Never throws.
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
    const attestations: AttestationEvidence[] = [];
    for (const p of paths) {
      const bytes = readFileSync(p);
      const json = JSON.parse(bytes.toString('utf8')) as unknown;
      const result = verifyAny(json, sha256, material);
      if (typeof result === 'string')
        return { path: tc.path, sha256, verdict: 'FAIL', reason: `${p} does not verify: ${result}` };
      attestations.push({ uri: p, bundleDigest: { sha256: sha256Hex(bytes) }, verification: result });
    }
    const verdict = await evaluatePolicy(
      policy,
      {
        artifact: { digest: { sha256 }, uri: tc.path },
        attestations,
        ...(material.snapshots ? { snapshots: material.snapshots } : {}),
      },
      { now: new Date() },
    );
    const o = outcomeOf(verdict);
    return { path: tc.path, sha256, verdict: o.passed ? 'PASS' : 'FAIL', reason: o.reason };
  } catch (err) {
    return error((err as Error).message, sha256);
  }
}

function verifyAny(
  json: unknown,
  sha256: string,
  material: TrustMaterial,
): AttestationEvidence['verification'] | string {
  let last = 'no trusted root';
  for (const v of material.verifiers) {
    try {
      return v.verify(json, { artifactDigest: { sha256 }, allowAnyIdentity: true });
    } catch (err) {
      last = (err as Error).message;
    }
  }
  return last;
}
