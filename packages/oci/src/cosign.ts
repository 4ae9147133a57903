import { canonicalBytes, parseDsseEnvelope, type DsseEnvelope } from '@airlock/core';
import { OciError } from './errors.js';
import { mapInOrder } from './concurrent.js';
import { parseImageManifest } from './layout.js';
import { ANNOTATIONS, MEDIA_TYPES, type Descriptor, type ImageManifest } from './media-types.js';
import { assertDigest, assertRepository, cosignAttestationTag, cosignSignatureTag } from './reference.js';
import { sha256Digest, type RegistryClient } from './registry.js';

/**
 * cosign's legacy formats (`cosign:specs/SIGNATURE_SPEC.md`, `ATTESTATION_SPEC.md`): a manifest under the tag
 * `sha256-<hex>.sig` / `.att` with one layer per signature or DSSE envelope. This module never signs: callers pass
 * the signature they made over `simpleSigningPayload(...)`, or the envelope they produced.
 */

export const SIMPLE_SIGNING_TYPE = 'cosign container image signature';

export interface SimpleSigning {
  dockerReference: string;
  manifestDigest: string;
  type: string;
  optional: Record<string, unknown> | null;
}

/**
 * The "simple signing" payload (`sslib:pkg/signature/payload/payload.go`) in cosign's field order. Sign exactly
 * these bytes; they are stored verbatim as the layer.
 */
export function simpleSigningPayload(input: {
  dockerReference: string;
  manifestDigest: string;
  optional?: Record<string, unknown>;
}): Buffer {
  assertDigest(input.manifestDigest, 'manifestDigest');
  if (typeof input.dockerReference !== 'string' || input.dockerReference === '')
    throw new OciError('OCI_INPUT_INVALID', 'dockerReference must be a non-empty string');
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': input.dockerReference },
        image: { 'docker-manifest-digest': input.manifestDigest },
        type: SIMPLE_SIGNING_TYPE,
      },
      optional: input.optional ?? {},
    }),
    'utf8',
  );
}

/** Structural parse of a simple-signing payload; undefined when it is not one. Checks no signature. */
export function parseSimpleSigningPayload(bytes: Uint8Array): SimpleSigning | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  const critical = (v as { critical?: Record<string, unknown> } | null)?.critical;
  if (typeof critical !== 'object' || critical === null) return undefined;
  const ref = (critical.identity as Record<string, unknown> | undefined)?.['docker-reference'];
  const digest = (critical.image as Record<string, unknown> | undefined)?.['docker-manifest-digest'];
  if (typeof ref !== 'string' || typeof digest !== 'string' || typeof critical.type !== 'string') return undefined;
  const optional = (v as { optional?: unknown }).optional;
  return {
    dockerReference: ref,
    manifestDigest: digest,
    type: critical.type,
    optional:
      typeof optional === 'object' && optional !== null && !Array.isArray(optional)
        ? (optional as Record<string, unknown>)
        : null,
  };
}

/** Certificate and transparency material cosign keeps in layer annotations. */
export interface CosignMaterial {
  /** PEM leaf certificate (keyless). */
  certificate?: string;
  /** PEM intermediate(s) + root. */
  chain?: string;
  /** Rekor bundle `{"SignedEntryTimestamp","Payload":{body,integratedTime,logIndex,logID}}`, JSON text or value. */
  bundle?: string | object;
  /** RFC 3161 timestamp bundle, JSON text or value. */
  rfc3161Timestamp?: string | object;
}

export interface CosignSignatureInput extends CosignMaterial {
  /** The exact bytes that were signed (normally `simpleSigningPayload(...)`). */
  payload: Uint8Array;
  /** Base64 signature over `payload`. */
  signature: string;
}

export interface CosignAttestationInput extends CosignMaterial {
  /** The DSSE envelope: the bytes to store, or a value serialised with JSON.stringify. */
  envelope: Uint8Array | DsseEnvelope;
  predicateType: string;
}

export interface AttachResult {
  tag: string;
  manifestDigest: string;
  layerDigest: string;
  /** Layers in the manifest after the update. */
  layers: number;
  /** False when an identical layer was already there (nothing was pushed). */
  added: boolean;
}

function materialAnnotations(m: CosignMaterial): Record<string, string> {
  const out: Record<string, string> = {};
  const text = (v: string | object) => (typeof v === 'string' ? v : JSON.stringify(v));
  if (m.certificate !== undefined) out[ANNOTATIONS.cosignCertificate] = m.certificate;
  if (m.chain !== undefined) out[ANNOTATIONS.cosignChain] = m.chain;
  if (m.bundle !== undefined) out[ANNOTATIONS.cosignBundle] = text(m.bundle);
  if (m.rfc3161Timestamp !== undefined) out[ANNOTATIONS.cosignRfc3161] = text(m.rfc3161Timestamp);
  return out;
}

/**
 * Adds one layer to the manifest under `tag`, keeping the layers already there (cosign appends, so several
 * signers coexist). Read-modify-write with If-Match on the ETag read: a registry that honours it answers 412 on a
 * lost race and we retry; Distribution 2.8.2 ignores If-Match, so concurrent writers there can still race.
 */
async function appendLayer(
  client: RegistryClient,
  repo: string,
  tag: string,
  blob: Buffer,
  mediaType: string,
  annotations: Record<string, string>,
): Promise<AttachResult> {
  const layer: Descriptor = { mediaType, digest: sha256Digest(blob), size: blob.byteLength, annotations };
  await client.pushBlob(repo, blob);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await client.tryGetManifest(repo, tag);
    const layers: Descriptor[] = existing ? parseImageManifest(existing.bytes, `${repo}:${tag}`).layers : [];
    if (existing && layers.some((l) => l.digest === layer.digest && sameAnnotations(l.annotations, annotations))) {
      return { tag, manifestDigest: existing.digest, layerDigest: layer.digest, layers: layers.length, added: false };
    }
    layers.push(layer);
    // The config go-containerregistry writes for an empty image plus these layers (cosign's own shape).
    const config = canonicalBytes({
      architecture: '',
      config: {},
      created: '0001-01-01T00:00:00Z',
      history: layers.map(() => ({ created: '0001-01-01T00:00:00Z' })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    });
    const configDesc = await client.pushBlob(repo, config);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDesc.digest, size: configDesc.size },
      layers,
    };
    try {
      const put = await client.putManifest(
        repo,
        tag,
        canonicalBytes(manifest),
        MEDIA_TYPES.ociManifest,
        existing?.etag !== undefined ? { ifMatch: existing.etag } : {},
      );
      return { tag, manifestDigest: put.digest, layerDigest: layer.digest, layers: layers.length, added: true };
    } catch (err) {
      if ((err as OciError).details?.status === 412) continue;
      throw err;
    }
  }
  throw new OciError('OCI_REFERRERS_CONFLICT', `${repo}:${tag}: lost the update race 3 times`);
}

function sameAnnotations(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a?.[k] === b[k]);
}

/** Attaches a cosign signature to `imageDigest` under `sha256-<hex>.sig` in `repo`. */
export async function attachCosignSignature(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  input: CosignSignatureInput,
): Promise<AttachResult> {
  assertRepository(repo);
  assertDigest(imageDigest, 'image digest');
  if (typeof input.signature !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(input.signature)) {
    throw new OciError('OCI_INPUT_INVALID', 'signature must be standard base64');
  }
  const annotations = { [ANNOTATIONS.cosignSignature]: input.signature, ...materialAnnotations(input) };
  return appendLayer(
    client,
    repo,
    cosignSignatureTag(imageDigest),
    Buffer.from(input.payload),
    MEDIA_TYPES.cosignSimpleSigning,
    annotations,
  );
}

/** Attaches a DSSE attestation to `imageDigest` under `sha256-<hex>.att` in `repo`. */
export async function attachCosignAttestation(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  input: CosignAttestationInput,
): Promise<AttachResult> {
  assertRepository(repo);
  assertDigest(imageDigest, 'image digest');
  if (typeof input.predicateType !== 'string' || input.predicateType === '')
    throw new OciError('OCI_INPUT_INVALID', 'predicateType is required');
  const bytes =
    input.envelope instanceof Uint8Array
      ? Buffer.from(input.envelope)
      : Buffer.from(JSON.stringify(input.envelope), 'utf8');
  try {
    parseDsseEnvelope(JSON.parse(bytes.toString('utf8')));
  } catch (err) {
    throw new OciError('OCI_INPUT_INVALID', `envelope is not a DSSE envelope: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // cosign leaves the signature annotation empty on attestations: the signature is inside the envelope.
  const annotations = {
    [ANNOTATIONS.cosignSignature]: '',
    [ANNOTATIONS.predicateType]: input.predicateType,
    ...materialAnnotations(input),
  };
  return appendLayer(client, repo, cosignAttestationTag(imageDigest), bytes, MEDIA_TYPES.dsseEnvelope, annotations);
}

interface FetchedLayer {
  /** Digest of the `.sig`/`.att` manifest the layer came from. */
  manifestDigest: string;
  layerDigest: string;
  annotations: Record<string, string>;
  certificate?: string;
  chain?: string;
  /** Rekor bundle JSON text as stored (parse and verify it yourself). */
  bundle?: string;
  rfc3161Timestamp?: string;
}

export interface CosignSignature extends FetchedLayer {
  /** The signed bytes, checked against the layer digest. */
  payload: Buffer;
  signature: string;
  /** Parsed payload, or undefined when it is not simple-signing JSON. */
  simpleSigning?: SimpleSigning;
  /** The payload claims exactly the image digest it is attached to (still to be signature-verified). */
  payloadMatchesImage: boolean;
}

export interface CosignAttestation extends FetchedLayer {
  /** The envelope bytes, checked against the layer digest. */
  envelopeBytes: Buffer;
  /** Parsed envelope, or undefined when the bytes are not a DSSE envelope. */
  envelope?: DsseEnvelope;
  predicateType?: string;
}

/**
 * Bytes the caller already holds that a `.sig`/`.att` layer may be (e.g. the DSSE envelopes of the image's Sigstore
 * bundles). A layer whose digest and size are those of one of them is not fetched: content addressing makes these
 * exactly the bytes the registry would serve. Anything else is fetched and digest-checked as usual.
 */
export type HeldBlobs = () => Promise<readonly Uint8Array[]>;

export interface CosignReadOptions {
  maxBlobBytes?: number;
  /** Offered before each layer's blob is fetched (awaited after the manifest arrives; a rejection offers none). */
  held?: HeldBlobs;
}

async function readLayers(
  client: RegistryClient,
  repo: string,
  tag: string,
  mediaType: string,
  maxBlobBytes: number,
  held: HeldBlobs | undefined,
) {
  const fetched = await client.tryGetManifest(repo, tag);
  if (fetched === undefined) return [];
  const manifest = parseImageManifest(fetched.bytes, `${repo}:${tag}`);
  const layers = manifest.layers.filter((l) => l.mediaType === mediaType);
  for (const layer of layers)
    if (layer.size > maxBlobBytes)
      throw new OciError(
        'OCI_SIZE_LIMIT',
        `${repo}:${tag} layer ${layer.digest} is ${layer.size} bytes, limit ${maxBlobBytes}`,
      );
  const known = layers.length > 0 && held ? await heldByDigest(held) : undefined;
  // The layers' blobs are independent reads: fetched concurrently (bounded), kept in manifest order.
  return mapInOrder(layers, LAYER_READS_IN_FLIGHT, async (layer) => {
    const have = known?.get(layer.digest);
    const blob =
      have !== undefined && have.byteLength === layer.size
        ? have
        : await client.getBlob(repo, layer.digest, { expectedSize: layer.size });
    const a = layer.annotations ?? {};
    const base: FetchedLayer = { manifestDigest: fetched.digest, layerDigest: layer.digest, annotations: a };
    if (a[ANNOTATIONS.cosignCertificate] !== undefined) base.certificate = a[ANNOTATIONS.cosignCertificate];
    if (a[ANNOTATIONS.cosignChain] !== undefined) base.chain = a[ANNOTATIONS.cosignChain];
    if (a[ANNOTATIONS.cosignBundle] !== undefined) base.bundle = a[ANNOTATIONS.cosignBundle];
    if (a[ANNOTATIONS.cosignRfc3161] !== undefined) base.rfc3161Timestamp = a[ANNOTATIONS.cosignRfc3161];
    return { blob, base };
  });
}

/** The held bytes by their sha256 digest; none when the caller's promise failed (then every layer is fetched). */
async function heldByDigest(held: HeldBlobs): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let blobs: readonly Uint8Array[];
  try {
    blobs = await held();
  } catch {
    return out;
  }
  for (const b of blobs) {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
    out.set(sha256Digest(buf), buf);
  }
  return out;
}

/** Blobs of one cosign tag read at once. */
const LAYER_READS_IN_FLIGHT = 8;

/**
 * The cosign signatures attached to `imageDigest` (tag `sha256-<hex>.sig`); [] when there is none. Fetched bytes
 * are digest-checked; nothing is signature-verified here.
 */
export async function readCosignSignatures(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  options: CosignReadOptions = {},
): Promise<CosignSignature[]> {
  assertDigest(imageDigest, 'image digest');
  const layers = await readLayers(
    client,
    repo,
    cosignSignatureTag(imageDigest),
    MEDIA_TYPES.cosignSimpleSigning,
    options.maxBlobBytes ?? 1 << 20,
    options.held,
  );
  return layers.map(({ blob, base }) => {
    const simpleSigning = parseSimpleSigningPayload(blob);
    const sig: CosignSignature = {
      ...base,
      payload: blob,
      signature: base.annotations[ANNOTATIONS.cosignSignature] ?? '',
      payloadMatchesImage: simpleSigning?.manifestDigest === imageDigest && simpleSigning.type === SIMPLE_SIGNING_TYPE,
    };
    if (simpleSigning) sig.simpleSigning = simpleSigning;
    return sig;
  });
}

/** The cosign attestations attached to `imageDigest` (tag `sha256-<hex>.att`); [] when there is none. */
export async function readCosignAttestations(
  client: RegistryClient,
  repo: string,
  imageDigest: string,
  options: CosignReadOptions = {},
): Promise<CosignAttestation[]> {
  assertDigest(imageDigest, 'image digest');
  const layers = await readLayers(
    client,
    repo,
    cosignAttestationTag(imageDigest),
    MEDIA_TYPES.dsseEnvelope,
    options.maxBlobBytes ?? 16 << 20,
    options.held,
  );
  return layers.map(({ blob, base }) => {
    const att: CosignAttestation = { ...base, envelopeBytes: blob };
    try {
      att.envelope = parseDsseEnvelope(JSON.parse(blob.toString('utf8')));
    } catch {
      // left undefined: the verifier reports it
    }
    const pt = base.annotations[ANNOTATIONS.predicateType];
    if (pt !== undefined) att.predicateType = pt;
    return att;
  });
}
