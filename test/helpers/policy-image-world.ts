/**
 * Images in a real registry as the runner leaves them, for the image-verification tests (library and CLI): a pushed
 * one-layer image; provenance + SBOM made by the runner's builders, signed, attached as Sigstore-bundle referrers and
 * as cosign `.att` layers; a cosign `.sig` layer over the simple-signing payload, with its signature bundle as a
 * referrer (cosignMaterialFromBundle is the runner's own).
 */
import type { Statement } from '@airlock/core';
import {
  attachCosignAttestation,
  attachCosignSignature,
  attachSigstoreBundle,
  MEDIA_TYPES,
  sha256Digest,
  simpleSigningPayload,
  type RegistryClient,
} from '@airlock/oci';
import type { AirlockSigner } from '@airlock/sign';
import {
  buildSbom,
  cosignMaterialFromBundle,
  provenancePredicate,
  provenanceStatement,
  sbomStatement,
} from '@airlock/runner';
import { CYCLONEDX_PREDICATE_TYPE, SLSA_PROVENANCE_V1 } from '@airlock/policy';
import { provenanceInput, type World } from './policy-world.js';

/** Pushes a one-layer image under `repo:tag` (distinct bytes per repo) and returns its manifest digest. */
export async function pushImage(client: RegistryClient, repo: string, tag: string): Promise<string> {
  const config = await client.pushBlob(repo, Buffer.from(`{"architecture":"amd64","os":"linux","repo":"${repo}"}`));
  const layer = await client.pushBlob(repo, Buffer.from(`layer bytes of ${repo}\n`));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerTar, digest: layer.digest, size: layer.size }],
    }),
  );
  await client.putManifest(repo, tag, manifest, MEDIA_TYPES.ociManifest);
  return sha256Digest(manifest);
}

/** Signs and attaches what the runner attaches: provenance + SBOM (referrers and `.att`), `.sig` + its bundle. */
export async function signImage(
  w: World,
  client: RegistryClient,
  repo: string,
  digest: string,
  signers: { attestations: AirlockSigner; signature: AirlockSigner },
  /** Rewrites the `.sig` layer's certificate annotation (tests of that cross-check). */
  sigCertificate?: (pem: string | undefined) => string | undefined,
): Promise<void> {
  const subject = { name: `${client.host}/${repo}`, digest: { sha256: digest.slice('sha256:'.length) } };
  const input = provenanceInput(w, { finishedOn: new Date().toISOString() });
  const statements: [Statement, string][] = [
    [provenanceStatement(subject, provenancePredicate(input, 3600)), SLSA_PROVENANCE_V1],
    [sbomStatement(subject, buildSbom(subject, input)), CYCLONEDX_PREDICATE_TYPE],
  ];
  for (const [statement, predicateType] of statements) {
    const bundle = await signers.attestations.attest(statement);
    await attachSigstoreBundle(client, repo, { subject: digest, bundle });
    await attachCosignAttestation(client, repo, digest, {
      envelope: Buffer.from(JSON.stringify(bundle.dsseEnvelope)),
      predicateType,
      ...cosignMaterialFromBundle(bundle),
    });
  }
  const payload = simpleSigningPayload({ dockerReference: `${client.host}/${repo}`, manifestDigest: digest });
  const sigBundle = await signers.signature.signBlob(payload);
  const signature = (sigBundle as { messageSignature?: { signature?: string } }).messageSignature!.signature!;
  const material = cosignMaterialFromBundle(sigBundle);
  if (sigCertificate) {
    const certificate = sigCertificate(material.certificate);
    delete material.certificate;
    if (certificate !== undefined) material.certificate = certificate;
  }
  await attachCosignSignature(client, repo, digest, { payload, signature, ...material });
  await attachSigstoreBundle(client, repo, { subject: digest, bundle: sigBundle });
}
