import type { Command } from 'commander';
import { verifyImageByPolicy, type ImagePolicyRun } from '@airlock/policy';
import { fail, UsageError, type OutputOptions } from '../../output.js';
import { addPolicyInputOptions, finishVerify } from './artifact.js';
import { exitCodeFor } from './errors.js';
import type { ArtifactVerifyFlags } from './evaluate.js';
import { policyContext } from './inputs.js';
import { addRegistryOptions, registryClientFor, type RegistryFlags } from './registry.js';
import { addVsaOptions, type VsaSigningFlags } from './vsa.js';

type Flags = ArtifactVerifyFlags & VsaSigningFlags & RegistryFlags & OutputOptions;

/**
 * `airlock verify image REF`: @airlock/policy's verifyImageByPolicy with the flags' policy, trusted root, snapshots
 * and a registry client for REF's host. The verdict, the JSON and the VSA are about the digest the tag resolved to.
 */
export function registerVerifyImage(verify: Command): void {
  addVsaOptions(
    addRegistryOptions(
      addPolicyInputOptions(
        verify
          .command('image')
          .description('verify an OCI image’s attestations (registry referrers) against a release policy')
          .argument('<ref>', 'host[:port]/repository(:tag|@sha256:…)'),
      ),
    ),
  ).action(async (ref: string, flags: Flags) => {
    let run: ImagePolicyRun;
    try {
      if (flags.bundle && flags.bundle.length > 0)
        throw new UsageError('verify image reads its bundles from the registry: --bundle is for files');
      run = await verifyImageRef(ref, flags);
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
    await finishVerify(run, flags, { image: run.resourceUri, cosignAttestations: run.cosign.attestations });
  });
}

export async function verifyImageRef(ref: string, flags: ArtifactVerifyFlags & RegistryFlags): Promise<ImagePolicyRun> {
  const ctx = policyContext(flags);
  return verifyImageByPolicy({ ...ctx, client: registryClientFor(ref, flags), reference: ref });
}
