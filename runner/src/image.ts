import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Statement, Subject } from '@airlock/core';
import {
  attachCosignAttestation,
  attachCosignSignature,
  attachSigstoreBundle,
  buildImageLayout,
  cosignAttestationTag,
  cosignSignatureTag,
  parseImageReference,
  referrersFallbackTag,
  RegistryClient,
  simpleSigningPayload,
  type BuiltImage,
  type CosignMaterial,
  type Descriptor,
  type ImageFile,
} from '@airlock/oci';
import { CYCLONEDX_PREDICATE_TYPE, SLSA_PROVENANCE_V1 } from '@airlock/schemas';
import { RunnerError } from './errors.js';
import { globToRegExp, type OutputFile } from './outputs.js';
import { buildSbom, provenanceStatement, sbomStatement, type ProvenanceInput } from './provenance.js';
import { signWith, type AttestationSigner } from './signer.js';
import type { ImageSpec } from './spec.js';

/**
 * The OCI image step of `runBuild`: the selected outputs become a one-layer image whose digest depends only on
 * their bytes, the spec's image settings and the commit time; it is pushed, and provenance, an SBOM and a cosign
 * signature about its digest are signed and attached (cosign `.sig`/`.att` tags and Sigstore bundle referrers).
 */

/** How to reach the registry named by `image.repository`. */
export interface RegistryOptions {
  /** Talk plain HTTP (loopback or lab registries); default HTTPS. */
  plainHttp?: boolean;
  /** PEM CA certificate(s) trusted for the registry's TLS certificate, instead of the system store. */
  caCertPem?: string;
  /** HTTP Basic credentials (both or neither), only ever sent to `hosts`. */
  username?: string;
  password?: string;
  /**
   * The registries (`host[:port]`) the operator configured (`airlock run --registry`). When given, the spec's
   * `image.repository` must name one of them; credentials need them and are sent to no other host.
   */
  hosts?: string[];
  /** Idle timeout per request; default 60 s. */
  timeoutMs?: number;
}

export const DEFAULT_IMAGE_PATH = '/app';

/** Files the image step writes into the output directory (an output with one of these names is refused). */
export const IMAGE_FILES = {
  metadata: 'image.json',
  provenance: 'image.provenance.json',
  sbom: 'image.cdx.json',
  provenanceBundle: 'image.provenance.sigstore.json',
  sbomBundle: 'image.sbom.sigstore.json',
  signatureBundle: 'image.sig.sigstore.json',
  signaturePayload: 'image.simplesigning.json',
} as const;

export interface ImageFileResult {
  /** Path inside the image. */
  path: string;
  /** The output it came from (name relative to the output directory). */
  name: string;
  sha256: string;
  /** Octal, e.g. `0755`. */
  mode: string;
}

export interface ImageReferrer {
  kind: 'provenance' | 'sbom' | 'signature';
  /** Digest of the referrer manifest (listed in the referrers index). */
  digest: string;
  artifactType: string;
  predicateType?: string;
  /** The Sigstore bundle it carries, as written to the output directory. */
  bundle: string;
}

export interface ImageResult {
  /** `registry/path@sha256:…`: the immutable name of what was pushed. */
  reference: string;
  /** `image.repository` of the spec (also the subject name of the statements). */
  repository: string;
  registry: string;
  /** `http(s)://registry`: where it was pushed. */
  registryUrl: string;
  digest: string;
  mediaType: string;
  size: number;
  /** Tags pushed for the image itself (the signature tags are under `signature` / `attestations`). */
  tags: string[];
  configDigest: string;
  layers: { digest: string; size: number; diffId: string }[];
  /** The image's `created` time: the commit time (SOURCE_DATE_EPOCH). */
  created: string;
  files: ImageFileResult[];
  /** Unsigned statements about the image. */
  statements: { provenance: string; sbom: string };
  signed: boolean;
  /** The cosign signature (`sha256-<hex>.sig`) over the simple-signing payload. */
  signature?: { tag: string; manifestDigest: string; bundle: string; payload: string };
  /** The cosign attestations (`sha256-<hex>.att`): the provenance and SBOM DSSE envelopes. */
  attestations?: { tag: string; manifestDigest: string; predicateTypes: string[] };
  /** The Sigstore bundles attached as OCI 1.1 referrers. */
  referrers: ImageReferrer[];
  /** The distribution-spec tag-schema index listing the referrers (for registries without the referrers API). */
  referrersIndex?: { tag: string; digest?: string };
  /** `<outDir>/image.json`. */
  metadataPath: string;
  durationMs: number;
}

interface ImageTarget {
  registry: string;
  /** Repository path inside the registry (no host). */
  path: string;
  tag: string;
  url: string;
}

/** Registry hosts compare as `host[:port]`, case-insensitively; no port is not the same as any port. */
function sameRegistryHost(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** The credentials for `registry` (`host[:port]`): only when it is one of the operator's hosts. */
export function registryCredentialsFor(
  registry: string,
  options: Pick<RegistryOptions, 'username' | 'password' | 'hosts'>,
): { username: string; password: string } | undefined {
  if (options.username === undefined || options.password === undefined) return undefined;
  if (!(options.hosts ?? []).some((h) => sameRegistryHost(h, registry))) return undefined;
  return { username: options.username, password: options.password };
}

/**
 * What can be checked before the build: the repository names a registry, the options are coherent and a signer
 * can also sign the cosign payload. Throws RUNNER_SPEC_INVALID / RUNNER_SIGNING_FAILED.
 */
export function checkImageRequest(
  image: ImageSpec,
  commit: string,
  options: { signer?: AttestationSigner; registry?: RegistryOptions },
): ImageTarget {
  let parsed;
  try {
    parsed = parseImageReference(image.repository);
  } catch (cause) {
    throw new RunnerError('RUNNER_SPEC_INVALID', `image.repository: ${(cause as Error).message}`, { cause });
  }
  if (parsed.registry === undefined) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `image.repository '${image.repository}' does not name a registry: its first component must be a host with a '.' or a ':port', or 'localhost' (e.g. registry.internal:5000/${image.repository})`,
    );
  }
  if (parsed.tag !== undefined || parsed.digest !== undefined) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `image.repository '${image.repository}' must not carry a tag or digest (use image.tag)`,
    );
  }
  const r = options.registry ?? {};
  if ((r.username === undefined) !== (r.password === undefined)) {
    throw new RunnerError('RUNNER_SPEC_INVALID', 'registry credentials need both a username and a password');
  }
  if (r.username !== undefined && !r.hosts?.length) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      'registry credentials need the registry host(s) they are for (airlock run --registry HOST[:PORT]); they are never sent wherever a spec points',
    );
  }
  if (r.hosts?.length && !r.hosts.some((h) => sameRegistryHost(h, parsed.registry!))) {
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `image.repository: registry '${parsed.registry}' is not one of the registries the operator configured (${r.hosts.join(', ')})`,
    );
  }
  if (r.plainHttp && r.caCertPem !== undefined)
    throw new RunnerError('RUNNER_SPEC_INVALID', 'a registry CA certificate makes no sense with plain HTTP');
  if (options.signer && typeof options.signer.signBlob !== 'function') {
    throw new RunnerError(
      'RUNNER_SIGNING_FAILED',
      `the build spec asks for an OCI image (${image.repository}), but the signer cannot sign blobs (no signBlob method), which the image's cosign signature needs`,
    );
  }
  return {
    registry: parsed.registry,
    path: parsed.repository,
    tag: image.tag ?? commit.slice(0, 12),
    url: `${r.plainHttp ? 'http' : 'https'}://${parsed.registry}`,
  };
}

function hasGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** `outputs` semantics: exact name, a directory name meaning everything under it, or a glob. */
function matcher(pattern: string): (name: string) => boolean {
  const re = globToRegExp(pattern);
  return (name) => name === pattern || (!hasGlob(pattern) && name.startsWith(`${pattern}/`)) || re.test(name);
}

/** Which outputs go into the image, where, and with which mode. Every pattern must match something. */
export function selectImageFiles(
  image: ImageSpec,
  outputs: readonly OutputFile[],
): (ImageFileResult & { output: OutputFile })[] {
  const problems: string[] = [];
  let selected = [...outputs];
  if (image.files !== undefined) {
    const matchers = image.files.map(matcher);
    image.files.forEach((p, i) => {
      if (!outputs.some((o) => matchers[i]!(o.name)))
        problems.push(
          `image.files[${i}] '${p}' matches no declared output (outputs: ${outputs.map((o) => o.name).join(', ')})`,
        );
    });
    selected = outputs.filter((o) => matchers.some((m) => m(o.name)));
  }
  let isExecutable = (o: OutputFile) => o.executable;
  if (image.executable !== undefined) {
    const matchers = image.executable.map(matcher);
    image.executable.forEach((p, i) => {
      if (!selected.some((o) => matchers[i]!(o.name)))
        problems.push(`image.executable[${i}] '${p}' matches no file of the image`);
    });
    isExecutable = (o) => matchers.some((m) => m(o.name));
  }
  if (problems.length > 0)
    throw new RunnerError('RUNNER_SPEC_INVALID', `build spec image:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  const base = (image.path ?? DEFAULT_IMAGE_PATH).replace(/\/$/, '');
  return selected.map((o) => ({
    path: `${base}/${o.name}`,
    name: o.name,
    sha256: o.sha256,
    mode: isExecutable(o) ? '0755' : '0644',
    output: o,
  }));
}

/** A registry failure as a RunnerError: unreachable (retry later) or refused (fix something). */
function registryFailure(err: unknown, what: string, target: ImageTarget): RunnerError {
  const e = err as { code?: unknown; message?: string; details?: { status?: unknown } };
  const message = e.message ?? String(err);
  const unreachable = e.code === 'OCI_HTTP' && e.details?.status === undefined;
  if (unreachable) {
    const tlsHint =
      target.url.startsWith('https:') && /wrong version number|EPROTO|packet length|ECONNRESET/i.test(message)
        ? ' (it may be a plain-HTTP registry: then use --registry-plain-http / registry.plainHttp)'
        : '';
    return new RunnerError(
      'RUNNER_REGISTRY_UNAVAILABLE',
      `${what}: cannot reach the registry ${target.url}${tlsHint}: ${message}`,
      {
        cause: err,
        details: { registry: target.url },
      },
    );
  }
  const hint = e.code === 'OCI_UNAUTHORIZED' ? ' (check the registry username and password)' : '';
  return new RunnerError(
    'RUNNER_IMAGE_PUSH_FAILED',
    `${what} on ${target.url} failed${typeof e.code === 'string' ? ` [${e.code}]` : ''}${hint}: ${message}`,
    {
      cause: err,
      details: { registry: target.url, ...(e.details?.status !== undefined ? { status: e.details.status } : {}) },
    },
  );
}

interface BundleJson {
  verificationMaterial?: {
    certificate?: { rawBytes?: string };
    x509CertificateChain?: { certificates?: { rawBytes?: string }[] };
    tlogEntries?: {
      logIndex?: string;
      logId?: { keyId?: string };
      integratedTime?: string;
      inclusionPromise?: { signedEntryTimestamp?: string };
      canonicalizedBody?: string;
    }[];
  };
  messageSignature?: { signature?: string };
  dsseEnvelope?: { payload?: string; payloadType?: string; signatures?: { sig?: string; keyid?: string }[] };
}

function derToPem(b64: string): string {
  const lines =
    Buffer.from(b64, 'base64')
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * The annotations cosign keeps beside a signature, derived from a Sigstore bundle: the leaf certificate (PEM) and
 * the Rekor "bundle" (`{SignedEntryTimestamp, Payload: {body, integratedTime, logIndex, logID}}`, logID in hex).
 */
export function cosignMaterialFromBundle(bundle: unknown): CosignMaterial {
  const b = bundle as BundleJson;
  const out: CosignMaterial = {};
  const vm = b.verificationMaterial;
  const der = vm?.certificate?.rawBytes ?? vm?.x509CertificateChain?.certificates?.[0]?.rawBytes;
  if (typeof der === 'string' && der !== '') out.certificate = derToPem(der);
  const entry = vm?.tlogEntries?.[0];
  const set = entry?.inclusionPromise?.signedEntryTimestamp;
  if (
    entry &&
    typeof set === 'string' &&
    typeof entry.canonicalizedBody === 'string' &&
    typeof entry.logId?.keyId === 'string'
  ) {
    out.bundle = {
      SignedEntryTimestamp: set,
      Payload: {
        body: entry.canonicalizedBody,
        integratedTime: Number(entry.integratedTime),
        logIndex: Number(entry.logIndex),
        logID: Buffer.from(entry.logId.keyId, 'base64').toString('hex'),
      },
    };
  }
  return out;
}

function envelopeOf(bundle: Record<string, unknown>, what: string): NonNullable<BundleJson['dsseEnvelope']> {
  const env = (bundle as BundleJson).dsseEnvelope;
  if (
    !env ||
    typeof env.payload !== 'string' ||
    typeof env.payloadType !== 'string' ||
    !Array.isArray(env.signatures) ||
    env.signatures.length === 0
  ) {
    throw new RunnerError('RUNNER_SIGNING_FAILED', `the signer's bundle for the ${what} holds no DSSE envelope`);
  }
  return env;
}

export interface PublishImageInput {
  image: ImageSpec;
  outDir: string;
  /** Scratch directory for the OCI layout (must be missing or empty). */
  workDir: string;
  /** The outputs as copied into outDir (their bytes are read from there). */
  outputs: readonly OutputFile[];
  /** The run's SLSA predicate, reused for the image's provenance. */
  predicate: Record<string, unknown>;
  provenance: ProvenanceInput;
  signer?: AttestationSigner;
  registry?: RegistryOptions;
  progress?: (message: string) => void;
}

/**
 * Builds, pushes and (with a signer) signs and attaches the image. Signing happens before anything is pushed, so
 * a signing failure never leaves an unsigned image behind; `image.json` is written last, only on success.
 */
export async function publishImage(input: PublishImageInput): Promise<ImageResult> {
  const t0 = Date.now();
  const progress = input.progress ?? (() => undefined);
  const { image, outDir, provenance } = input;
  const source = provenance.source;
  const target = checkImageRequest(image, source.commit, {
    ...(input.signer ? { signer: input.signer } : {}),
    ...(input.registry ? { registry: input.registry } : {}),
  });
  const clash = Object.values(IMAGE_FILES).filter((n) => existsSync(join(outDir, n)));
  if (clash.length > 0) {
    throw new RunnerError(
      'RUNNER_OUTPUT_INVALID',
      `output${clash.length > 1 ? 's' : ''} ${clash.map((c) => `'${c}'`).join(', ')} collide with the files of the image step`,
    );
  }
  const files = selectImageFiles(image, input.outputs);
  const workingDir = image.workingDir ?? image.path ?? DEFAULT_IMAGE_PATH;

  progress(
    `building the image layout (${files.length} file${files.length === 1 ? '' : 's'}, created ${new Date(source.commitTime * 1000).toISOString().replace('.000Z', 'Z')})`,
  );
  mkdirSync(input.workDir, { recursive: true });
  const layoutDir = join(input.workDir, 'layout');
  let built: BuiltImage;
  try {
    built = await buildImageLayout(
      {
        files: files.map((f): ImageFile => ({
          path: f.path,
          source: join(outDir, f.name),
          mode: Number.parseInt(f.mode, 8),
        })),
        ...(image.entrypoint ? { entrypoint: image.entrypoint } : {}),
        workingDir,
        // Only what the commit fixes: the digest must not depend on where or when the runner ran.
        created: source.commitTime,
        labels: { 'org.opencontainers.image.revision': source.commit },
        tag: target.tag,
        createdBy: `airlock run ${source.commit}`,
      },
      layoutDir,
    );
  } catch (cause) {
    throw new RunnerError('RUNNER_INTERNAL', `building the image layout failed: ${(cause as Error).message}`, {
      cause,
    });
  }
  const digest = built.manifestDigest;
  const subject: Subject = { name: image.repository, digest: { sha256: digest.slice('sha256:'.length) } };
  const provenanceSt: Statement = provenanceStatement(subject, input.predicate);
  const bom = buildSbom(subject, provenance);
  const sbomSt: Statement = sbomStatement(subject, bom);

  const credentials = registryCredentialsFor(target.registry, input.registry ?? {});
  const client = new RegistryClient({
    url: target.url,
    ...(input.registry?.caCertPem !== undefined ? { ca: input.registry.caCertPem } : {}),
    ...(credentials ? { auth: credentials } : {}),
    ...(input.registry?.timeoutMs !== undefined ? { timeoutMs: input.registry.timeoutMs } : {}),
    userAgent: 'airlock-runner',
  });
  progress(`checking the registry ${target.url}`);
  try {
    await client.ping();
  } catch (err) {
    throw registryFailure(err, 'checking the registry', target);
  }

  // Sign before pushing: a signer that fails must not leave an unsigned image in the registry.
  const payload = simpleSigningPayload({ dockerReference: image.repository, manifestDigest: digest });
  let signed:
    | { provenance: Record<string, unknown>; sbom: Record<string, unknown>; signature: Record<string, unknown> }
    | undefined;
  if (input.signer) {
    const signer = input.signer;
    progress(`signing provenance, SBOM and the cosign signature of ${digest}`);
    const signBlob = signer.signBlob;
    if (typeof signBlob !== 'function')
      throw new RunnerError('RUNNER_SIGNING_FAILED', 'the signer cannot sign blobs (no signBlob method)');
    signed = {
      provenance: await signWith('image provenance', () => signer.attest(provenanceSt)),
      sbom: await signWith('image SBOM', () => signer.attest(sbomSt)),
      signature: await signWith('image signature payload', () => signBlob.call(signer, payload)),
    };
  }

  progress(`pushing ${target.registry}/${target.path}:${target.tag} (${digest})`);
  let pushed;
  try {
    pushed = await client.pushLayout(layoutDir, { repository: target.path, tag: target.tag });
  } catch (err) {
    throw registryFailure(err, `pushing ${target.path}:${target.tag}`, target);
  }
  if (pushed.digest !== digest) {
    throw new RunnerError(
      'RUNNER_IMAGE_PUSH_FAILED',
      `the registry stored ${pushed.digest}, the layout's manifest is ${digest}`,
    );
  }

  const out = (name: string) => join(outDir, name);
  const result: ImageResult = {
    reference: `${target.registry}/${target.path}@${digest}`,
    repository: image.repository,
    registry: target.registry,
    registryUrl: target.url,
    digest,
    mediaType: built.manifest.mediaType,
    size: built.manifestSize,
    tags: [target.tag],
    configDigest: built.configDigest,
    layers: built.layers.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId })),
    created: built.created,
    files: files.map(({ path, name, sha256, mode }) => ({ path, name, sha256, mode })),
    statements: { provenance: out(IMAGE_FILES.provenance), sbom: out(IMAGE_FILES.sbom) },
    signed: signed !== undefined,
    referrers: [],
    metadataPath: out(IMAGE_FILES.metadata),
    durationMs: 0,
  };

  if (signed) {
    progress(`attaching the cosign signature, 2 attestations and 3 Sigstore bundles to ${digest}`);
    const descriptor: Descriptor = built.manifest;
    const where = `attaching signatures to ${target.path}@${digest}`;
    try {
      const sigBundle = signed.signature as BundleJson;
      const signature = sigBundle.messageSignature?.signature;
      if (typeof signature !== 'string' || signature === '')
        throw new RunnerError(
          'RUNNER_SIGNING_FAILED',
          "the signer's bundle for the image signature holds no message signature",
        );
      const sig = await attachCosignSignature(client, target.path, digest, {
        payload,
        signature,
        ...cosignMaterialFromBundle(signed.signature),
      });
      result.signature = {
        tag: cosignSignatureTag(digest),
        manifestDigest: sig.manifestDigest,
        bundle: out(IMAGE_FILES.signatureBundle),
        payload: out(IMAGE_FILES.signaturePayload),
      };
      let att;
      for (const [what, bundle, predicateType] of [
        ['image provenance', signed.provenance, SLSA_PROVENANCE_V1],
        ['image SBOM', signed.sbom, CYCLONEDX_PREDICATE_TYPE],
      ] as const) {
        att = await attachCosignAttestation(client, target.path, digest, {
          envelope: Buffer.from(JSON.stringify(envelopeOf(bundle, what)), 'utf8'),
          predicateType,
          ...cosignMaterialFromBundle(bundle),
        });
      }
      result.attestations = {
        tag: cosignAttestationTag(digest),
        manifestDigest: att!.manifestDigest,
        predicateTypes: [SLSA_PROVENANCE_V1, CYCLONEDX_PREDICATE_TYPE],
      };
      let indexDigest: string | undefined;
      for (const [kind, bundle, file] of [
        ['provenance', signed.provenance, IMAGE_FILES.provenanceBundle],
        ['sbom', signed.sbom, IMAGE_FILES.sbomBundle],
        ['signature', signed.signature, IMAGE_FILES.signatureBundle],
      ] as const) {
        const r = await attachSigstoreBundle(client, target.path, {
          subject: descriptor,
          bundle: Buffer.from(JSON.stringify(bundle), 'utf8'),
        });
        indexDigest = r.fallbackIndexDigest ?? indexDigest;
        const predicateType = r.descriptor.annotations?.['dev.sigstore.bundle.predicateType'];
        result.referrers.push({
          kind,
          digest: r.manifestDigest,
          artifactType: r.descriptor.artifactType ?? '',
          ...(predicateType ? { predicateType } : {}),
          bundle: out(file),
        });
      }
      result.referrersIndex = { tag: referrersFallbackTag(digest), ...(indexDigest ? { digest: indexDigest } : {}) };
    } catch (err) {
      if (err instanceof RunnerError) throw err;
      throw registryFailure(err, where, target);
    }
  }

  // Everything is in the registry: now write the files, image.json last.
  writeJson(result.statements.provenance, provenanceSt);
  writeJson(result.statements.sbom, bom);
  if (signed) {
    writeJson(out(IMAGE_FILES.provenanceBundle), signed.provenance);
    writeJson(out(IMAGE_FILES.sbomBundle), signed.sbom);
    writeJson(out(IMAGE_FILES.signatureBundle), signed.signature);
    writeFileSync(out(IMAGE_FILES.signaturePayload), payload, { flag: 'wx', mode: 0o644 });
  }
  result.durationMs = Date.now() - t0;
  writeJson(result.metadataPath, imageMetadata(result));
  progress(`pushed ${result.reference}${signed ? ' with signature, attestations and referrers' : ' (unsigned)'}`);
  return result;
}

/** image.json: the result with file names relative to the output directory (it may be moved elsewhere). */
function imageMetadata(r: ImageResult): Record<string, unknown> {
  const rel = (p: string) => basename(p);
  const { metadataPath: _m, durationMs: _d, ...rest } = r;
  return {
    ...rest,
    statements: { provenance: rel(r.statements.provenance), sbom: rel(r.statements.sbom) },
    ...(r.signature
      ? { signature: { ...r.signature, bundle: rel(r.signature.bundle), payload: rel(r.signature.payload) } }
      : {}),
    referrers: r.referrers.map((x) => ({ ...x, bundle: rel(x.bundle) })),
  };
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
}
