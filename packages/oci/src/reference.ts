import { OciError } from './errors.js';

/**
 * Image references and the names derived from a digest. Grammar from distribution/reference (reference.go):
 * `[registry/]path[:tag][@algorithm:hex]`. The first path component is a registry only when it has a `.` or a
 * `:` or is `localhost`, the rule docker and containerd use.
 */
export interface ImageReference {
  /** `host[:port]`, or undefined when the reference names no registry. */
  registry?: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// path-component: lowercase alnum separated by `.`, `_`, `__` or runs of `-`.
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** True for `sha256:` + 64 lowercase hex, the only digest form airlock writes or accepts from registries. */
export function isSha256Digest(s: unknown): s is string {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

export function assertDigest(s: unknown, what = 'digest'): string {
  if (!isSha256Digest(s))
    throw new OciError('OCI_INPUT_INVALID', `${what} must be sha256:<64 lowercase hex>, got ${JSON.stringify(s)}`);
  return s;
}

export function assertRepository(repo: string): string {
  if (repo.length === 0 || repo.length > 255 || !repo.split('/').every((c) => COMPONENT_RE.test(c))) {
    throw new OciError('OCI_INVALID_REFERENCE', `invalid repository name ${JSON.stringify(repo)}`);
  }
  return repo;
}

export function assertTag(tag: string): string {
  if (!TAG_RE.test(tag)) throw new OciError('OCI_INVALID_REFERENCE', `invalid tag ${JSON.stringify(tag)}`);
  return tag;
}

export function parseImageReference(ref: string): ImageReference {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isSha256Digest(digest))
      throw new OciError('OCI_INVALID_REFERENCE', `reference ${JSON.stringify(ref)}: digest must be sha256:<64 hex>`);
  }
  let registry: string | undefined;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first;
      rest = rest.slice(slash + 1);
      if (!/^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/.test(registry)) {
        throw new OciError(
          'OCI_INVALID_REFERENCE',
          `reference ${JSON.stringify(ref)}: invalid registry ${JSON.stringify(registry)}`,
        );
      }
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = assertTag(rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  const repository = assertRepository(rest);
  const out: ImageReference = { repository };
  if (registry !== undefined) out.registry = registry;
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

export function formatImageReference(ref: ImageReference): string {
  return `${ref.registry ? `${ref.registry}/` : ''}${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** OCI distribution-spec v1.1 referrers tag schema: `sha256:<hex>` → `sha256-<hex>`. */
export function referrersFallbackTag(digest: string): string {
  return assertDigest(digest, 'subject digest').replace(':', '-');
}

/** cosign's legacy signature tag (`cosign:specs/SIGNATURE_SPEC.md`). */
export function cosignSignatureTag(digest: string): string {
  return `${referrersFallbackTag(digest)}.sig`;
}

/** cosign's legacy attestation tag (`cosign:specs/ATTESTATION_SPEC.md`). */
export function cosignAttestationTag(digest: string): string {
  return `${referrersFallbackTag(digest)}.att`;
}
