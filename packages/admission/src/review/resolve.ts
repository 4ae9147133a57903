import { isSha256Digest, parseImageReference } from '@airlock/oci';
import { AdmissionError } from '../errors.js';
import type { Registries } from '../registry/config.js';

/** An image reference resolved to the digest that will be verified and pinned. */
export interface ResolvedImage {
  registry: string;
  repository: string;
  digest: string;
  /** `host/repository@sha256:…`. */
  pinned: string;
  /** The tag the digest was resolved from (undefined when the reference had a digest). */
  fromTag?: string;
}

/**
 * Looks a tag up in a configured registry (HEAD manifest): its digest, or undefined when absent. The controller's
 * shares lookups between requests (registry/lookups.ts: never one sent before the request arrived).
 */
export type TagLookup = (
  registry: string,
  repository: string,
  tag: string,
  signal: AbortSignal,
) => Promise<string | undefined>;

/** A lookup of its own for each call (no sharing). */
export function directTagLookup(registries: Registries): TagLookup {
  return (registry, repository, tag, signal) => registries.tagClient(registry, signal).manifestDigest(repository, tag);
}

/**
 * Resolves a reference to a digest through its (configured) registry. A reference that carries a digest is used
 * as is: that digest is what the kubelet pulls, whatever its tag says now. A reference by tag is resolved
 * (HEAD/GET manifest) once, and only that digest is verified and pinned.
 */
export async function resolveImage(
  image: string,
  registries: Registries,
  signal: AbortSignal,
  lookup: TagLookup = directTagLookup(registries),
  parsed?: ReturnType<typeof parseImageReference>,
): Promise<ResolvedImage> {
  const ref = parsed ?? parseReference(image);
  if (ref.registry === undefined)
    throw new AdmissionError(
      'ADMISSION_IMAGE_INVALID',
      `${short(image)} names no registry host (give host/repository)`,
    );
  const base = `${ref.registry}/${ref.repository}`;
  if (ref.digest !== undefined)
    return { registry: ref.registry, repository: ref.repository, digest: ref.digest, pinned: `${base}@${ref.digest}` };
  const tag = ref.tag ?? 'latest';
  // An unconfigured host is refused before anything is sent or shared.
  registries.assertConfigured(ref.registry);
  let digest: string | undefined;
  try {
    digest = await lookup(ref.registry, ref.repository, tag, signal);
  } catch (cause) {
    throw registryFailure(`tag ${tag}`, cause, signal);
  }
  if (digest === undefined) throw new AdmissionError('ADMISSION_IMAGE_NOT_FOUND', `tag ${tag} is not in the registry`);
  if (!isSha256Digest(digest))
    throw new AdmissionError('ADMISSION_REGISTRY_UNAVAILABLE', `tag ${tag}: the registry answered a non-sha256 digest`);
  return { registry: ref.registry, repository: ref.repository, digest, pinned: `${base}@${digest}`, fromTag: tag };
}

export function parseReference(image: string): ReturnType<typeof parseImageReference> {
  try {
    return parseImageReference(image);
  } catch (cause) {
    throw new AdmissionError('ADMISSION_IMAGE_INVALID', `${short(image)} is not a valid image reference`, { cause });
  }
}

const REGISTRY_CODES = new Set([
  'OCI_HTTP',
  'OCI_UNAUTHORIZED',
  'OCI_NOT_FOUND',
  'POLICY_REGISTRY_UNAVAILABLE',
  'POLICY_REGISTRY_FAILED',
  'POLICY_IMAGE_NOT_FOUND',
]);

/**
 * An error while resolving or verifying as an admission error: the deadline (the signal fired, or an abort in the
 * cause chain), a registry failure (named; never its credentials), or anything else as a failure to verify.
 * `what` prefixes the message (empty: none, when the caller's message names the image already).
 */
export function registryFailure(what: string, cause: unknown, signal: AbortSignal): AdmissionError {
  if (cause instanceof AdmissionError) return cause;
  const at = what === '' ? '' : `${what}: `;
  const code = (cause as { code?: unknown }).code;
  if (signal.aborted || code === 'OCI_ABORTED' || code === 'POLICY_ABORTED')
    return new AdmissionError('ADMISSION_DEADLINE', `${at}the admission deadline passed before verification finished`, {
      cause,
    });
  const msg = cause instanceof Error ? cause.message : String(cause);
  if (typeof code === 'string' && REGISTRY_CODES.has(code))
    return new AdmissionError('ADMISSION_REGISTRY_UNAVAILABLE', `${at}registry error: ${msg}`, { cause });
  return new AdmissionError('ADMISSION_VERIFICATION_FAILED', `${at}cannot verify: ${msg}`, { cause });
}

/** The image could not be checked (registry unreachable or failing, deadline): not a verdict on the image. */
export function isUnchecked(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ADMISSION_REGISTRY_UNAVAILABLE' || code === 'ADMISSION_DEADLINE';
}

/** Image references are attacker input: bounded before they go into messages. */
export function short(image: string): string {
  return image.length > 200 ? `${image.slice(0, 120)}…(${image.length} characters)` : image;
}
