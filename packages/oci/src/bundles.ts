import { canonicalBytes, decodeDsseBase64 } from '@airlock/core';
import { mapInOrder } from './concurrent.js';
import { OciError } from './errors.js';
import { parseImageIndex, parseImageManifest } from './layout.js';
import {
  ANNOTATIONS,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  MEDIA_TYPES,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from './media-types.js';
import { assertDigest, assertRepository, referrersFallbackTag } from './reference.js';
import { sha256Digest, type RegistryClient } from './registry.js';

/**
 * Sigstore bundles as OCI 1.1 referrers, the way cosign v3 stores them (`cosign:specs/BUNDLE_SPEC.md`): an image
 * manifest with `artifactType` = the bundle media type, the empty config, the bundle as its only layer and
 * `subject` = the image; pushed by digest. Registries without a referrers API (Distribution 2.8.2) are served by
 * the distribution-spec v1.1 tag-schema fallback: an image index under `sha256-<hex>` listing every referrer.
 */

const BUNDLE_TYPE_PREFIX = 'application/vnd.dev.sigstore.bundle';

export function isSigstoreBundleMediaType(t: unknown): t is string {
  return (
    typeof t === 'string' &&
    (t === MEDIA_TYPES.sigstoreBundleV03 ||
      t.startsWith(`${BUNDLE_TYPE_PREFIX}+json`) ||
      /^application\/vnd\.dev\.sigstore\.bundle\.v0\.[0-9]+\+json$/.test(t))
  );
}

export interface AttachBundleOptions {
  /** The image: its full descriptor, or its digest (then the manifest is fetched for its media type and size). */
  subject: Descriptor | string;
  /** The bundle JSON, bytes (stored verbatim) or a value (JSON.stringify). */
  bundle: Uint8Array | object;
  /** `dev.sigstore.bundle.predicateType`; default: read from the bundle's in-toto statement, if any. */
  predicateType?: string;
  /** `org.opencontainers.image.created`; omitted unless given, so re-attaching the same bundle is idempotent. */
  created?: string;
  annotations?: Record<string, string>;
  /**
   * `auto` (default): maintain the fallback index unless the registry answered with `OCI-Subject` (it indexes
   * referrers itself). `always` / `never` force it.
   */
  fallback?: 'auto' | 'always' | 'never';
}

export interface AttachBundleResult {
  /** The referrer manifest's descriptor, as listed in the referrers index. */
  descriptor: Descriptor;
  manifestDigest: string;
  fallbackTag: string;
  /** Whether the fallback index was written (false: skipped, or the entry was already there). */
  fallbackUpdated: boolean;
  fallbackIndexDigest?: string;
}

interface BundleFacts {
  mediaType: string;
  content: 'dsse-envelope' | 'message-signature';
  predicateType?: string;
}

function bundleFacts(bytes: Buffer): BundleFacts {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new OciError('OCI_INPUT_INVALID', 'bundle is not JSON', { cause: err });
  }
  if (typeof v !== 'object' || v === null || !isSigstoreBundleMediaType(v.mediaType)) {
    throw new OciError(
      'OCI_INPUT_INVALID',
      `bundle mediaType ${JSON.stringify((v as { mediaType?: unknown } | null)?.mediaType)} is not a Sigstore bundle type`,
    );
  }
  const env = v.dsseEnvelope as { payloadType?: unknown; payload?: unknown } | undefined;
  if (env !== undefined) {
    const facts: BundleFacts = { mediaType: v.mediaType, content: 'dsse-envelope' };
    if (env.payloadType === 'application/vnd.in-toto+json' && typeof env.payload === 'string') {
      try {
        const stmt = JSON.parse((decodeDsseBase64(env.payload) ?? Buffer.alloc(0)).toString('utf8')) as {
          predicateType?: unknown;
        };
        if (typeof stmt.predicateType === 'string') facts.predicateType = stmt.predicateType;
      } catch {
        // not a statement: no predicate type to announce
      }
    }
    return facts;
  }
  if (v.messageSignature !== undefined) return { mediaType: v.mediaType, content: 'message-signature' };
  throw new OciError('OCI_INPUT_INVALID', 'bundle has neither dsseEnvelope nor messageSignature');
}

async function subjectDescriptor(
  client: RegistryClient,
  repo: string,
  subject: Descriptor | string,
): Promise<Descriptor> {
  if (typeof subject !== 'string') {
    assertDigest(subject.digest, 'subject digest');
    return { mediaType: subject.mediaType, digest: subject.digest, size: subject.size };
  }
  const m = await client.getManifest(repo, assertDigest(subject, 'subject digest'));
  return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.byteLength };
}

/** Pushes a Sigstore bundle as a referrer of the image and records it in the fallback index. */
export async function attachSigstoreBundle(
  client: RegistryClient,
  repo: string,
  options: AttachBundleOptions,
): Promise<AttachBundleResult> {
  assertRepository(repo);
  const bytes =
    options.bundle instanceof Uint8Array
      ? Buffer.from(options.bundle)
      : Buffer.from(JSON.stringify(options.bundle), 'utf8');
  const facts = bundleFacts(bytes);
  const subject = await subjectDescriptor(client, repo, options.subject);
  const predicateType = options.predicateType ?? facts.predicateType;
  const annotations: Record<string, string> = { ...options.annotations, [ANNOTATIONS.bundleContent]: facts.content };
  if (predicateType !== undefined) annotations[ANNOTATIONS.bundlePredicateType] = predicateType;
  if (options.created !== undefined) annotations[ANNOTATIONS.created] = options.created;

  await client.pushBlob(repo, EMPTY_JSON);
  const layer = await client.pushBlob(repo, bytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: facts.mediaType,
    config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_JSON_DIGEST, size: EMPTY_JSON.byteLength },
    layers: [{ mediaType: facts.mediaType, digest: layer.digest, size: layer.size }],
    subject,
    annotations,
  };
  const manifestBytes = canonicalBytes(manifest);
  const digest = sha256Digest(manifestBytes);
  const put = await client.putManifest(repo, digest, manifestBytes, MEDIA_TYPES.ociManifest);
  const descriptor: Descriptor = {
    mediaType: MEDIA_TYPES.ociManifest,
    digest,
    size: manifestBytes.byteLength,
    artifactType: facts.mediaType,
    annotations,
  };
  const fallbackTag = referrersFallbackTag(subject.digest);
  const mode = options.fallback ?? 'auto';
  if (mode === 'never' || (mode === 'auto' && put.ociSubject !== undefined)) {
    return { descriptor, manifestDigest: digest, fallbackTag, fallbackUpdated: false };
  }
  const fb = await addToFallbackIndex(client, repo, subject.digest, descriptor);
  const out: AttachBundleResult = { descriptor, manifestDigest: digest, fallbackTag, fallbackUpdated: fb.updated };
  if (fb.indexDigest !== undefined) out.fallbackIndexDigest = fb.indexDigest;
  return out;
}

/**
 * Read-modify-write of the `sha256-<hex>` index: keeps every existing entry, adds `descriptor` once. Sends
 * If-Match with the ETag it read; a registry that honours it answers 412 on a lost race and we retry.
 * Distribution 2.8.2 ignores If-Match, so two concurrent writers there can still drop an entry.
 */
export async function addToFallbackIndex(
  client: RegistryClient,
  repo: string,
  subjectDigest: string,
  descriptor: Descriptor,
): Promise<{ updated: boolean; indexDigest?: string }> {
  const tag = referrersFallbackTag(subjectDigest);
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await client.tryGetManifest(repo, tag);
    let manifests: Descriptor[] = [];
    if (current !== undefined) {
      if (current.mediaType !== MEDIA_TYPES.ociIndex) {
        throw new OciError(
          'OCI_REFERRERS_CONFLICT',
          `${repo}:${tag} exists but is a ${current.mediaType}, not the referrers index`,
        );
      }
      manifests = parseImageIndex(current.bytes, `${repo}:${tag}`).manifests;
      if (manifests.some((m) => m.digest === descriptor.digest)) return { updated: false, indexDigest: current.digest };
    }
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [...manifests, descriptor],
    };
    try {
      const put = await client.putManifest(
        repo,
        tag,
        canonicalBytes(index),
        MEDIA_TYPES.ociIndex,
        current?.etag !== undefined ? { ifMatch: current.etag } : {},
      );
      return { updated: true, indexDigest: put.digest };
    } catch (err) {
      if ((err as OciError).details?.status === 412) continue;
      throw err;
    }
  }
  throw new OciError('OCI_REFERRERS_CONFLICT', `${repo}:${tag}: lost the update race 3 times`);
}

export interface FetchedBundle {
  /** Digest of the referrer manifest. */
  manifestDigest: string;
  artifactType: string;
  /** The bundle bytes, checked against the layer digest. */
  bytes: Buffer;
  /** Parsed JSON (not verified). */
  bundle: unknown;
  predicateType?: string;
  annotations: Record<string, string>;
  source: 'api' | 'fallback';
}

/**
 * Every Sigstore bundle referring to `imageDigest`. Manifests and blobs are digest-checked; a referrer whose
 * manifest does not name this image as `subject` is skipped (an index entry cannot attach it to another image).
 */
export async function readSigstoreBundles(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  options: { maxBlobBytes?: number } = {},
): Promise<FetchedBundle[]> {
  assertDigest(imageDigest, 'image digest');
  const maxBlobBytes = options.maxBlobBytes ?? 16 << 20;
  const { descriptors, source } = await client.listReferrers(repo, imageDigest);
  const seen = new Set<string>();
  const wanted = descriptors.filter((d) => {
    if (!isSigstoreBundleMediaType(d.artifactType) || seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
  // Referrers are independent reads: fetched concurrently (bounded), kept in listing order.
  const fetched = await mapInOrder(wanted, REFERRER_READS_IN_FLIGHT, (d) =>
    readReferrerBundle(client, repo, imageDigest, d, maxBlobBytes, source),
  );
  return fetched.filter((b): b is FetchedBundle => b !== undefined);
}

/** Referrer manifests (and their bundle blobs) read at once per image. */
const REFERRER_READS_IN_FLIGHT = 8;

/** One referrer's bundle, or undefined when its manifest is not a Sigstore bundle about `imageDigest`. */
async function readReferrerBundle(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  d: Descriptor,
  maxBlobBytes: number,
  source: FetchedBundle['source'],
): Promise<FetchedBundle | undefined> {
  const fetched = await client.getManifest(repo, d.digest);
  if (fetched.bytes.byteLength !== d.size) {
    throw new OciError(
      'OCI_DIGEST_MISMATCH',
      `referrer ${repo}@${d.digest}: ${fetched.bytes.byteLength} bytes, index says ${d.size}`,
    );
  }
  const m = parseImageManifest(fetched.bytes, `referrer ${repo}@${d.digest}`);
  if (m.subject?.digest !== imageDigest) return undefined;
  const artifactType = m.artifactType ?? m.config.mediaType;
  if (!isSigstoreBundleMediaType(artifactType)) return undefined;
  const layer = m.layers.find((l) => isSigstoreBundleMediaType(l.mediaType));
  if (layer === undefined)
    throw new OciError('OCI_INVALID_MANIFEST', `referrer ${repo}@${d.digest} has no bundle layer`);
  if (layer.size > maxBlobBytes)
    throw new OciError('OCI_SIZE_LIMIT', `bundle ${layer.digest} is ${layer.size} bytes, limit ${maxBlobBytes}`);
  const bytes = await client.getBlob(repo, layer.digest, { expectedSize: layer.size });
  let bundle: unknown;
  try {
    bundle = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new OciError('OCI_INVALID_MANIFEST', `bundle ${repo}@${layer.digest} is not JSON`, { cause: err });
  }
  const annotations = m.annotations ?? {};
  const fb: FetchedBundle = { manifestDigest: fetched.digest, artifactType, bytes, bundle, annotations, source };
  const pt = annotations[ANNOTATIONS.bundlePredicateType];
  if (pt !== undefined) fb.predicateType = pt;
  return fb;
}
