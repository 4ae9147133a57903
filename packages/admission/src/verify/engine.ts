import type { FetchedBundle } from '@airlock/oci';
import { verifyImageByPolicy, type LoadedPolicy, type Verdict } from '@airlock/policy';
import type { DigestImage, ImageVerifier, TrustMaterial } from './types.js';

/**
 * Image verification by @airlock/policy's `verifyImageByPolicy` (the same code as `airlock verify image`): the
 * Sigstore bundles referring to the digest (referrers API, else the `sha256-<hex>` fallback index) verified offline
 * against the trusted roots, cosign `.sig`/`.att` cross-checked, the release policy evaluated. The digest is given,
 * never re-resolved: the verdict is about the digest that is admitted and pinned.
 */
export class EngineImageVerifier implements ImageVerifier {
  /** `cosignLayers`: see VerifyImageInput (operator configuration; default `always`). */
  constructor(private readonly options: { cosignLayers?: 'always' | 'when-needed' } = {}) {}

  async verify(
    image: DigestImage,
    policy: LoadedPolicy,
    trust: TrustMaterial,
    signal: AbortSignal,
    bundles?: readonly FetchedBundle[],
  ): Promise<Verdict> {
    const run = await verifyImageByPolicy({
      client: image.client,
      repository: image.repository,
      digest: image.digest,
      policy,
      verifiers: trust.verifiers,
      ...(trust.snapshots ? { snapshotSource: trust.snapshots } : {}),
      ...(trust.advisories ? { advisories: trust.advisories } : {}),
      signal,
      ...(bundles ? { sigstoreBundles: bundles } : {}),
      ...(this.options.cosignLayers ? { cosignLayers: this.options.cosignLayers } : {}),
    });
    return run.verdict;
  }
}
