import { sha256Hex } from '@airlock/core';
import type { CosignAttestation, CosignSignature, FetchedBundle } from '@airlock/oci';
import type { BundleVerifier, VerificationResult } from '@airlock/verify';
import type { RuleResult } from '../evidence.js';
import { describeSigner, type CompiledAuthority } from '../match.js';

interface BundleShape {
  messageSignature?: { signature?: unknown };
  dsseEnvelope?: { payload?: unknown; signatures?: { sig?: unknown }[] };
  verificationMaterial?: {
    certificate?: { rawBytes?: unknown };
    x509CertificateChain?: { certificates?: { rawBytes?: unknown }[] };
  };
}

/** A message-signature bundle that verified over a cosign `.sig` payload: it goes into the VSA's inputs. */
export interface VerifiedSignature {
  uri: string;
  bundleSha256: string;
  verification: VerificationResult;
}

/**
 * cosign `.att` layers carry no verification material airlock checks offline: each envelope must be the envelope of
 * a verified Sigstore bundle (same payload, a same signature), else it is an unverified claim beside the image.
 */
export function cosignAttestationRule(
  atts: readonly CosignAttestation[],
  verifiedBundles: readonly unknown[],
  where: string,
): RuleResult | undefined {
  if (atts.length === 0) return undefined;
  const verified = verifiedBundles.map((b) => (b as BundleShape).dsseEnvelope);
  const stray = atts.filter(
    (a) =>
      !a.envelope ||
      !verified.some(
        (v) =>
          v?.payload === a.envelope!.payload && a.envelope!.signatures.some((s) => v?.signatures?.[0]?.sig === s.sig),
      ),
  );
  return {
    rule: 'attestations.cosign',
    passed: stray.length === 0,
    seen: stray.length === 0 ? `${atts.length} .att envelope(s)` : { uri: where, unmatched: stray.length },
    expected: 'every .att envelope is one of the verified Sigstore bundles',
    message:
      stray.length === 0
        ? `${atts.length} cosign .att envelope(s), each a verified bundle's`
        : `${stray.length} cosign .att envelope(s) match no verified bundle`,
  };
}

/**
 * cosign `.sig` layers: each must be backed by a Sigstore message-signature bundle among the image's referrers that
 * verifies over the layer's payload (trusted root, log), with the same signature and certificate as the layer, a
 * payload naming exactly this image digest, and a signer the policy allows (`authorities`).
 */
export function cosignSignatureRule(
  sigs: readonly CosignSignature[],
  messageBundles: readonly FetchedBundle[],
  verifiers: readonly BundleVerifier[],
  authorities: readonly CompiledAuthority[],
  uriOf: (b: FetchedBundle) => string,
): { rule?: RuleResult; verified: VerifiedSignature[] } {
  if (sigs.length === 0) return { verified: [] };
  const verified: VerifiedSignature[] = [];
  const problems: string[] = [];
  for (const [i, layer] of sigs.entries()) {
    const r = checkLayer(layer, messageBundles, verifiers, uriOf);
    if (typeof r === 'string') {
      problems.push(`.sig layer ${i}: ${r}`);
      continue;
    }
    if (!authorities.some((a) => a.matches(r.verification.signer)))
      problems.push(`.sig layer ${i}: signed by ${describeSigner(r.verification.signer)}, not an allowed authority`);
    verified.push(r);
  }
  const expected = {
    signedBy: authorities.map((a) => ({ authority: a.name, ...a.describe })),
    payload: 'names this image digest',
  };
  const rule: RuleResult =
    problems.length === 0
      ? {
          rule: 'attestations.cosign-signature',
          passed: true,
          seen: verified.map((v) => ({ uri: v.uri, signedBy: describeSigner(v.verification.signer) })),
          expected,
          message: `${sigs.length} cosign .sig signature(s), each backed by a verified bundle of an allowed signer`,
        }
      : {
          rule: 'attestations.cosign-signature',
          passed: false,
          seen: { problems },
          expected,
          message: problems.join('; '),
        };
  return { rule, verified };
}

function checkLayer(
  layer: CosignSignature,
  bundles: readonly FetchedBundle[],
  verifiers: readonly BundleVerifier[],
  uriOf: (b: FetchedBundle) => string,
): VerifiedSignature | string {
  if (!layer.payloadMatchesImage)
    return `its payload names ${layer.simpleSigning?.manifestDigest ?? 'no digest'}, not the image`;
  const b = bundles.find((x) => (x.bundle as BundleShape).messageSignature?.signature === layer.signature);
  if (!b) return 'no Sigstore signature bundle among the referrers carries its signature';
  let verification: VerificationResult | undefined;
  let error = 'no verifier';
  for (const v of verifiers) {
    try {
      verification = v.verify(b.bundle, { artifact: layer.payload, allowAnyIdentity: true });
      break;
    } catch (err) {
      error = (err as Error).message;
    }
  }
  if (!verification) return `its signature bundle does not verify over the payload: ${error}`;
  const leaf = leafDer(b.bundle as BundleShape);
  if (leaf !== undefined) {
    if (layer.certificate === undefined) return 'it carries no certificate annotation';
    const der = pemCertificateDer(layer.certificate);
    if (der === undefined) return 'its certificate annotation is not a PEM certificate';
    if (!der.equals(leaf)) return 'its certificate is not the one in its signature bundle';
  }
  return { uri: uriOf(b), bundleSha256: sha256Hex(b.bytes), verification };
}

const PEM_CERTIFICATE = /^\s*-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\s*$/;

/**
 * The DER of a PEM annotation holding exactly one certificate, or undefined. Only compared byte for byte with the
 * leaf of a bundle that has just verified (a certificate already parsed and checked), so it is not parsed again.
 */
function pemCertificateDer(pem: string): Buffer | undefined {
  const body = PEM_CERTIFICATE.exec(pem)?.[1]?.replace(/\r?\n/g, '');
  if (body === undefined || body === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0)
    return undefined;
  return Buffer.from(body, 'base64');
}

function leafDer(b: BundleShape): Buffer | undefined {
  const vm = b.verificationMaterial;
  const raw = vm?.certificate?.rawBytes ?? vm?.x509CertificateChain?.certificates?.[0]?.rawBytes;
  return typeof raw === 'string' && raw !== '' ? Buffer.from(raw, 'base64') : undefined;
}
