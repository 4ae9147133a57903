import {
  isSha256Digest,
  parseImageReference,
  readCosignAttestations,
  readCosignSignatures,
  readSigstoreBundles,
  simpleSigningPayload,
  type CosignAttestation,
  type CosignSignature,
  type FetchedBundle,
  type RegistryClient,
} from '@airlock/oci';
import type { BundleVerifier } from '@airlock/verify';
import { checkBundleInputsYielding, type CheckedBundles } from '../artifact/bundles.js';
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
  /**
   * The cosign `.sig`/`.att` layers: `always` read and cross-checked (default); `when-needed` read only when the
   * Sigstore bundles alone do not pass the policy (the cross-checks can only fail a verdict, so a pass on the
   * bundles stands, and an image with a stray `.att` or an unbacked `.sig` beside passing bundles is then allowed).
   */
  cosignLayers?: 'always' | 'when-needed';
  /** The image's referrer bundles, when the caller has just read them for this digest (not read again). */
  sigstoreBundles?: readonly FetchedBundle[];
}

/** An image's policy verification: the verdict is about `digest`; `resourceUri` is `host/repository@digest`. */
export interface ImagePolicyRun extends PolicyRun {
  registry: string;
  repository: string;
  digest: string;
  /** cosign layers read; `read: false` when `cosignLayers: 'when-needed'` did not need them. */
  cosign: { signatures: number; attestations: number; read?: false };
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
  const { repository, digest } = await resolveImageDigest(input);
  for (const tag of input.tags ?? []) {
    const d = await registryCall(`tag ${tag}`, signal, () => client.manifestDigest(repository, tag));
    if (d !== digest)
      throw new PolicyError(
        'POLICY_IMAGE_NOT_FOUND',
        `${repository}:${tag} points at ${d ?? 'nothing'}, not ${digest}`,
      );
  }
  const name = `${client.host}/${repository}`;
  const given = input.sigstoreBundles;
  const bundlesRead = given
    ? Promise.resolve([...given])
    : registryCall('the Sigstore bundles', signal, () => readSigstoreBundles(client, repository, digest));
  if (input.cosignLayers === 'when-needed') {
    const evidence = await checkImageBundles(name, repository, digest, verifiers, await bundlesRead);
    const first = await evaluateImage(input, evidence);
    // The cosign checks can only fail a verdict: when the bundles alone pass, the layers cannot change it.
    if (first.verdict.result === 'PASS') return { ...first, cosign: { signatures: 0, attestations: 0, read: false } };
    return evaluateImage(input, evidence, await readCosign(input, repository, digest, bundlesRead));
  }
  // The three listings are independent: read at once; a failure is reported in this order, whichever came first.
  const [fetched, cosign] = await inOrder([bundlesRead, readCosign(input, repository, digest, bundlesRead)] as const);
  return evaluateImage(input, await checkImageBundles(name, repository, digest, verifiers, fetched), cosign);
}

type CosignLayers = { atts: CosignAttestation[]; sigs: CosignSignature[] };

/**
 * The image's cosign `.att` and `.sig` layers (read at once). Their blobs are usually bytes the referrer bundles
 * already hold (see heldCosignBytes): those are not fetched a second time.
 */
async function readCosign(
  input: VerifyImageInput,
  repository: string,
  digest: string,
  bundles: Promise<readonly FetchedBundle[]>,
): Promise<CosignLayers> {
  const { client, signal } = input;
  const held = bundles.then((b) => heldCosignBytes(b, `${client.host}/${repository}`, digest));
  held.catch(() => undefined);
  const att = { held: async () => (await held).att };
  const sig = { held: async () => (await held).sig };
  const [atts, sigs] = await inOrder([
    registryCall('the cosign attestations', signal, () => readCosignAttestations(client, repository, digest, att)),
    registryCall('the cosign signatures', signal, () => readCosignSignatures(client, repository, digest, sig)),
  ] as const);
  return { atts, sigs };
}

/**
 * What the `.att` and `.sig` blobs are when they were attached as airlock attaches them: each DSSE bundle's
 * envelope as JSON, and the simple-signing payload naming `name` and the digest. Only candidates: a layer uses one
 * only when its digest and size are the candidate's (packages/oci checks), so a guess can save a read, never change
 * what is read.
 */
function heldCosignBytes(
  bundles: readonly FetchedBundle[],
  name: string,
  digest: string,
): { att: Uint8Array[]; sig: Uint8Array[] } {
  const att: Uint8Array[] = [];
  let messageSignatures = false;
  for (const b of bundles) {
    const shape = b.bundle as { dsseEnvelope?: unknown; messageSignature?: unknown };
    if (typeof shape.dsseEnvelope === 'object' && shape.dsseEnvelope !== null)
      att.push(Buffer.from(JSON.stringify(shape.dsseEnvelope), 'utf8'));
    else if (shape.messageSignature !== undefined) messageSignatures = true;
  }
  const sig = messageSignatures ? [simpleSigningPayload({ dockerReference: name, manifestDigest: digest })] : [];
  return { att, sig };
}

/** An image's referrer bundles, the DSSE ones verified (once, whatever is evaluated on them). */
interface ImageEvidence {
  name: string;
  repository: string;
  digest: string;
  verifiers: readonly BundleVerifier[];
  artifact: PolicyRun['artifact'];
  bundles: CheckedBundles;
  /** The message-signature bundles (they back cosign `.sig` layers). */
  messageBundles: FetchedBundle[];
  uriOf(b: FetchedBundle): string;
}

async function checkImageBundles(
  name: string,
  repository: string,
  digest: string,
  verifiers: readonly BundleVerifier[],
  fetched: readonly FetchedBundle[],
): Promise<ImageEvidence> {
  const uriOf = (b: FetchedBundle): string => `${name}@${b.manifestDigest}`;
  const isDsse = (b: FetchedBundle): boolean => (b.bundle as { dsseEnvelope?: unknown }).dsseEnvelope !== undefined;
  const artifact = { name, digest: { sha256: digest.slice('sha256:'.length) } };
  // Yielding between bundles: a server verifying images must still read its sockets (a tag lookup's answer).
  const bundles = await checkBundleInputsYielding(
    fetched.filter(isDsse).map((b) => ({ uri: uriOf(b), bytes: b.bytes })),
    artifact.digest,
    verifiers,
  );
  const messageBundles = fetched.filter((b) => !isDsse(b));
  return { name, repository, digest, verifiers, artifact, bundles, messageBundles, uriOf };
}

/**
 * The policy evaluated on the verified bundles; with cosign layers given, each `.att` must be a verified bundle's
 * and each `.sig` backed by a verified signature bundle of an allowed signer (extra rules).
 */
async function evaluateImage(
  input: VerifyImageInput,
  ev: ImageEvidence,
  cosign: CosignLayers = { atts: [], sigs: [] },
): Promise<ImagePolicyRun> {
  const { atts, sigs } = cosign;
  const extra: RuleResult[] = [];
  const attRule = cosignAttestationRule(
    atts,
    [...ev.bundles.raw.values()],
    `${ev.name}:sha256-${ev.artifact.digest.sha256}.att`,
  );
  if (attRule) extra.push(attRule);
  const sig = cosignSignatureRule(
    sigs,
    ev.messageBundles,
    ev.verifiers,
    authoritiesNamed(input.policy, signatureAuthorities(input.policy, input.signatureAuthorities)),
    ev.uriOf,
  );
  if (sig.rule) extra.push(sig.rule);
  checkAborted(input.signal);
  const run = await evaluateBundles({
    ...input,
    verifiers: ev.verifiers,
    resourceUri: `${ev.name}@${ev.digest}`,
    artifact: ev.artifact,
    bundles: ev.bundles,
    extraRules: extra,
  });
  for (const v of sig.verified) run.verdict.inputAttestations.push({ uri: v.uri, digest: { sha256: v.bundleSha256 } });
  return {
    ...run,
    registry: input.client.host,
    repository: ev.repository,
    digest: ev.digest,
    cosign: { signatures: sigs.length, attestations: atts.length },
  };
}

/** Awaits every promise; throws the first rejection in array order (not in time order). */
async function inOrder<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

export interface ImageTarget {
  client: RegistryClient;
  reference?: string;
  repository?: string;
  digest?: string;
  signal?: AbortSignal;
}

/**
 * The repository and digest an image reference names: its digest (checked against its tag when it has both), or
 * its tag (default `latest`) resolved through the registry. Or the repository + digest given, unchanged.
 */
export async function resolveImageDigest(input: ImageTarget): Promise<{ repository: string; digest: string }> {
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
