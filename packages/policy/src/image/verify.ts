import {
  isSha256Digest,
  parseImageReference,
  readCosignAttestations,
  readCosignSignatures,
  readSigstoreBundles,
  type FetchedBundle,
  type RegistryClient,
} from '@airlock/oci';
import { checkBundleInputs } from '../artifact/bundles.js';
import { evaluateBundles, verifiersOf, type PolicyContext, type PolicyRun } from '../artifact/verify.js';
import { authoritiesNamed } from '../attestations.js';
import { PolicyError } from '../errors.js';
import type { RuleResult } from '../evidence.js';
import type { LoadedPolicy } from '../load.js';
import { cosignAttestationRule, cosignSignatureRule } from './cosign.js';
import { checkAborted, registryCall } from './registry.js';

export interface VerifyImageInput extends PolicyContext {
  /**
   * A client for the image's registry, configured by the caller: which URL, TLS CA and credentials is operator
   * configuration. Only this client is used; a reference naming another registry is refused.
   */
  client: RegistryClient;
  /** `host[:port]/repository(:tag|@sha256:…|:tag@sha256:…)`; a tag is resolved to a digest first. */
  reference?: string;
  /** Instead of `reference`: the repository and an already-resolved digest (e.g. an admission webhook's). */
  repository?: string;
  digest?: string;
  /** Tags that must each point at the digest (e.g. the tags a run pushed). */
  tags?: readonly string[];
  /**
   * Policy authorities whose signature a cosign `.sig` may carry; default: the provenance authorities, else those of
   * the required attestations, else every authority.
   */
  signatureAuthorities?: readonly string[];
  /** Checked before and after each registry round trip. */
  signal?: AbortSignal;
}

/** An image's policy verification: the verdict is about `digest`; `resourceUri` is `host/repository@digest`. */
export interface ImagePolicyRun extends PolicyRun {
  registry: string;
  repository: string;
  digest: string;
  cosign: { signatures: number; attestations: number };
}

/**
 * Verifies an OCI image against a policy: resolves the tag to a digest (the verdict is about that digest), reads the
 * Sigstore bundles referring to it (referrers API, else the `sha256-<hex>` fallback index), verifies each DSSE bundle
 * about the digest and evaluates them like a file's; cosign `.att` envelopes must each be a verified bundle's and
 * cosign `.sig` signatures must each be backed by a verified signature bundle of an allowed signer. Registry failures
 * are PolicyErrors (POLICY_REGISTRY_UNAVAILABLE / _FAILED, POLICY_IMAGE_NOT_FOUND); no console, no process exit.
 */
export async function verifyImageByPolicy(input: VerifyImageInput): Promise<ImagePolicyRun> {
  const { client, signal } = input;
  const verifiers = verifiersOf(input);
  const { repository, digest } = await resolveTarget(input);
  for (const tag of input.tags ?? []) {
    const d = await registryCall(`tag ${tag}`, signal, () => client.manifestDigest(repository, tag));
    if (d !== digest)
      throw new PolicyError(
        'POLICY_IMAGE_NOT_FOUND',
        `${repository}:${tag} points at ${d ?? 'nothing'}, not ${digest}`,
      );
  }
  const name = `${client.host}/${repository}`;
  const fetched = await registryCall('the Sigstore bundles', signal, () =>
    readSigstoreBundles(client, repository, digest),
  );
  const uriOf = (b: FetchedBundle): string => `${name}@${b.manifestDigest}`;
  const isDsse = (b: FetchedBundle): boolean => (b.bundle as { dsseEnvelope?: unknown }).dsseEnvelope !== undefined;
  const artifact = { name, digest: { sha256: digest.slice('sha256:'.length) } };
  const bundles = checkBundleInputs(
    fetched.filter(isDsse).map((b) => ({ uri: uriOf(b), bytes: b.bytes })),
    artifact.digest,
    verifiers,
  );
  const atts = await registryCall('the cosign attestations', signal, () =>
    readCosignAttestations(client, repository, digest),
  );
  const sigs = await registryCall('the cosign signatures', signal, () =>
    readCosignSignatures(client, repository, digest),
  );
  const extra: RuleResult[] = [];
  const attRule = cosignAttestationRule(
    atts,
    [...bundles.raw.values()],
    `${name}:sha256-${artifact.digest.sha256}.att`,
  );
  if (attRule) extra.push(attRule);
  const sig = cosignSignatureRule(
    sigs,
    fetched.filter((b) => !isDsse(b)),
    verifiers,
    authoritiesNamed(input.policy, signatureAuthorities(input.policy, input.signatureAuthorities)),
    uriOf,
  );
  if (sig.rule) extra.push(sig.rule);
  checkAborted(signal);
  const run = await evaluateBundles({
    ...input,
    verifiers,
    resourceUri: `${name}@${digest}`,
    artifact,
    bundles,
    extraRules: extra,
  });
  for (const v of sig.verified) run.verdict.inputAttestations.push({ uri: v.uri, digest: { sha256: v.bundleSha256 } });
  return {
    ...run,
    registry: client.host,
    repository,
    digest,
    cosign: { signatures: sigs.length, attestations: atts.length },
  };
}

/** The repository and digest to verify: the reference's digest, or its tag (default `latest`) resolved. */
async function resolveTarget(input: VerifyImageInput): Promise<{ repository: string; digest: string }> {
  const { client, signal } = input;
  if (input.reference === undefined) {
    if (input.repository === undefined || input.digest === undefined || !isSha256Digest(input.digest))
      throw new PolicyError('POLICY_INPUT_INVALID', 'give an image reference, or a repository and a sha256 digest');
    return { repository: input.repository, digest: input.digest };
  }
  let parsed: ReturnType<typeof parseImageReference>;
  try {
    parsed = parseImageReference(input.reference);
  } catch (cause) {
    throw new PolicyError('POLICY_INPUT_INVALID', (cause as Error).message, { cause });
  }
  if (!parsed.registry)
    throw new PolicyError('POLICY_INPUT_INVALID', `'${input.reference}' names no registry (host[:port]/repository…)`);
  if (parsed.registry !== client.host)
    throw new PolicyError(
      'POLICY_INPUT_INVALID',
      `'${input.reference}' names registry ${parsed.registry}, but the client given is for ${client.host}`,
    );
  const repository = parsed.repository;
  const tag = parsed.tag ?? (parsed.digest ? undefined : 'latest');
  const byTag =
    tag === undefined
      ? undefined
      : await registryCall(`tag ${tag}`, signal, () => client.manifestDigest(repository, tag));
  if (tag !== undefined && (byTag === undefined || !isSha256Digest(byTag)))
    throw new PolicyError('POLICY_IMAGE_NOT_FOUND', `${input.reference}: the registry has no manifest for ${tag}`);
  if (parsed.digest && tag !== undefined && byTag !== parsed.digest)
    throw new PolicyError('POLICY_IMAGE_NOT_FOUND', `${input.reference}: tag ${tag} points at ${byTag ?? 'nothing'}`);
  return { repository, digest: parsed.digest ?? byTag! };
}

function signatureAuthorities(policy: LoadedPolicy, given: readonly string[] | undefined): string[] {
  const doc = policy.document;
  const names =
    given ??
    doc.provenance?.authorities ??
    (doc.attestations && doc.attestations.length > 0
      ? [...new Set(doc.attestations.flatMap((a) => a.authorities))]
      : Object.keys(doc.authorities));
  for (const n of names)
    if (!policy.authorities.has(n))
      throw new PolicyError('POLICY_INPUT_INVALID', `signature authority '${n}' is not an authority of the policy`);
  return [...names];
}
