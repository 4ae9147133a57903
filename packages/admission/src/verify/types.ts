import type { FetchedBundle, RegistryClient } from '@airlock/oci';
import type { AdvisoryIndex, LoadedPolicy, SnapshotSource, Verdict } from '@airlock/policy';
import type { BundleVerifier } from '@airlock/verify';

/** An image by digest, and how to reach its registry. */
export interface DigestImage {
  /** `host/repository@sha256:…`: what the verdict is about. */
  reference: string;
  registry: string;
  repository: string;
  digest: string;
  /** A client bound to the request's AbortSignal. */
  client: RegistryClient;
}

/** The operator's trust material for one release policy. */
export interface TrustMaterial {
  /** One BundleVerifier per trusted root (the policy's public keys given to each). */
  verifiers: readonly BundleVerifier[];
  snapshots?: SnapshotSource;
  /** The release policy's OSV advisories (advisories.osvDirectory), indexed. */
  advisories?: AdvisoryIndex;
}

/**
 * The one method the controller needs from image verification: the release policy's verdict for an image digest,
 * every signature checked offline against the trusted roots. A thrown error is a failure to verify (denied, never
 * cached). The default is @airlock/policy's `verifyImageByPolicy` (verify/engine.ts).
 */
export interface ImageVerifier {
  /** `bundles`: the image's referrer bundles when the caller read them already (the VSA lookup): not read again. */
  verify(
    image: DigestImage,
    policy: LoadedPolicy,
    trust: TrustMaterial,
    signal: AbortSignal,
    bundles?: readonly FetchedBundle[],
  ): Promise<Verdict>;
}
