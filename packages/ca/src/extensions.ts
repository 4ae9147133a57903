import './reflect-polyfill.js';
import {
  canonicalize,
  MAX_NODE_ATTESTATION_CLAIM_LENGTH,
  NODE_ATTESTATION_OID,
  NODE_ATTESTATION_TOKEN_CLAIM,
} from '@airlock/core';
import { BUILD_CLAIM_NAMES, MAX_BUILD_CLAIM_LENGTH, type BuildClaimName, type TrustedIssuer } from '@airlock/identity';
import { Extension } from '@peculiar/x509';
import { derUtf8String } from './der.js';
import { CaError } from './errors.js';

/**
 * Fulcio certificate extension OIDs (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
 * `.1` is the deprecated raw-bytes issuer; `.8` onwards are DER UTF8String.
 */
export const FULCIO_OID = {
  issuer: '1.3.6.1.4.1.57264.1.1',
  issuerV2: '1.3.6.1.4.1.57264.1.8',
  buildSignerUri: '1.3.6.1.4.1.57264.1.9',
  buildSignerDigest: '1.3.6.1.4.1.57264.1.10',
  runnerEnvironment: '1.3.6.1.4.1.57264.1.11',
  sourceRepositoryUri: '1.3.6.1.4.1.57264.1.12',
  sourceRepositoryDigest: '1.3.6.1.4.1.57264.1.13',
  sourceRepositoryRef: '1.3.6.1.4.1.57264.1.14',
  sourceRepositoryIdentifier: '1.3.6.1.4.1.57264.1.15',
  sourceRepositoryOwnerUri: '1.3.6.1.4.1.57264.1.16',
  sourceRepositoryOwnerIdentifier: '1.3.6.1.4.1.57264.1.17',
  buildConfigUri: '1.3.6.1.4.1.57264.1.18',
  buildConfigDigest: '1.3.6.1.4.1.57264.1.19',
  buildTrigger: '1.3.6.1.4.1.57264.1.20',
  runInvocationUri: '1.3.6.1.4.1.57264.1.21',
  sourceRepositoryVisibilityAtSigning: '1.3.6.1.4.1.57264.1.22',
  deploymentEnvironment: '1.3.6.1.4.1.57264.1.23',
} as const;

/**
 * Token claim → extension OID. A claim present in a verified token is copied verbatim (DER UTF8String) into the
 * certificate. The claim names are defined by `@airlock/identity` (`BUILD_CLAIM_NAMES`), which our issuer emits.
 */
export const BUILD_CLAIM_OIDS: Readonly<Record<BuildClaimName, string>> = {
  build_signer_uri: FULCIO_OID.buildSignerUri,
  build_signer_digest: FULCIO_OID.buildSignerDigest,
  runner_environment: FULCIO_OID.runnerEnvironment,
  source_repository_uri: FULCIO_OID.sourceRepositoryUri,
  source_repository_digest: FULCIO_OID.sourceRepositoryDigest,
  source_repository_ref: FULCIO_OID.sourceRepositoryRef,
  source_repository_identifier: FULCIO_OID.sourceRepositoryIdentifier,
  source_repository_owner_uri: FULCIO_OID.sourceRepositoryOwnerUri,
  source_repository_owner_identifier: FULCIO_OID.sourceRepositoryOwnerIdentifier,
  build_config_uri: FULCIO_OID.buildConfigUri,
  build_config_digest: FULCIO_OID.buildConfigDigest,
  build_trigger: FULCIO_OID.buildTrigger,
  run_invocation_uri: FULCIO_OID.runInvocationUri,
  source_repository_visibility_at_signing: FULCIO_OID.sourceRepositoryVisibilityAtSigning,
  deployment_environment: FULCIO_OID.deploymentEnvironment,
};

/** The issuer extensions Fulcio always writes: `.1` (raw bytes) and `.8` (DER UTF8String). */
export function issuerExtensions(issuerUrl: string): Extension[] {
  return [
    new Extension(FULCIO_OID.issuer, false, Buffer.from(issuerUrl, 'utf8')),
    new Extension(FULCIO_OID.issuerV2, false, derUtf8String(issuerUrl)),
  ];
}

/** Extensions for the build claims the token carries; a present but ill-formed claim is refused (CA_CLAIM_INVALID). */
export function buildClaimExtensions(claims: Readonly<Record<string, unknown>>): Extension[] {
  const out: Extension[] = [];
  for (const name of BUILD_CLAIM_NAMES) {
    const value = claims[name];
    if (value === undefined) continue;
    if (
      typeof value !== 'string' ||
      value.length === 0 ||
      value.length > MAX_BUILD_CLAIM_LENGTH ||
      hasControlCharacter(value)
    ) {
      throw new CaError(
        'CA_CLAIM_INVALID',
        `token claim ${name} must be a non-empty string of at most ${MAX_BUILD_CLAIM_LENGTH} characters without control characters`,
      );
    }
    out.push(new Extension(BUILD_CLAIM_OIDS[name], false, derUtf8String(value)));
  }
  return out;
}

/**
 * Extensions for attested node claims under the project's OID arc. Who may assert them is the operator's choice:
 * only an issuer configured with `attestationClaims: true`; the claim from any other issuer is refused (not
 * dropped), so a foreign or misconfigured issuer shows up instead of silently signing unattested certificates.
 */
export function nodeAttestationExtensions(
  claims: Readonly<Record<string, unknown>>,
  issuer: Pick<TrustedIssuer, 'issuerUrl' | 'attestationClaims'>,
): Extension[] {
  const raw = claims[NODE_ATTESTATION_TOKEN_CLAIM];
  if (raw === undefined) return [];
  if (issuer.attestationClaims !== true) {
    throw new CaError(
      'CA_CLAIM_UNTRUSTED',
      `issuer ${issuer.issuerUrl} is not trusted to assert node attestation claims (${NODE_ATTESTATION_TOKEN_CLAIM})`,
    );
  }
  const parsed = parseNodeAttestationClaim(raw);
  return [
    new Extension(NODE_ATTESTATION_OID.claims, false, derUtf8String(canonicalize(parsed.all))),
    new Extension(NODE_ATTESTATION_OID.referenceValueSetId, false, derUtf8String(parsed.referenceValueSetId)),
    new Extension(NODE_ATTESTATION_OID.ekPublicKeyDigest, false, derUtf8String(parsed.ekPublicKeyDigest)),
    new Extension(NODE_ATTESTATION_OID.akName, false, derUtf8String(parsed.akName)),
    new Extension(NODE_ATTESTATION_OID.quoteDigest, false, derUtf8String(parsed.quoteDigest)),
  ];
}

interface ParsedNodeClaims {
  all: unknown;
  referenceValueSetId: string;
  ekPublicKeyDigest: string;
  akName: string;
  quoteDigest: string;
}

function parseNodeAttestationClaim(raw: unknown): ParsedNodeClaims {
  const invalid = (why: string): CaError =>
    new CaError('CA_CLAIM_INVALID', `token claim ${NODE_ATTESTATION_TOKEN_CLAIM} ${why}`);
  if (typeof raw !== 'string' || raw.length > MAX_NODE_ATTESTATION_CLAIM_LENGTH)
    throw invalid(`must be a JSON string of at most ${MAX_NODE_ATTESTATION_CLAIM_LENGTH} characters`);
  let all: unknown;
  try {
    all = JSON.parse(raw);
  } catch {
    throw invalid('is not JSON');
  }
  const c = all as {
    referenceValues?: { id?: unknown };
    ek?: { publicKeyDigest?: unknown };
    ak?: { name?: unknown };
    quote?: { digest?: unknown };
  } | null;
  const fields = {
    referenceValueSetId: c?.referenceValues?.id,
    ekPublicKeyDigest: c?.ek?.publicKeyDigest,
    akName: c?.ak?.name,
    quoteDigest: c?.quote?.digest,
  };
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value !== 'string' || value.length === 0 || value.length > 256 || hasControlCharacter(value))
      throw invalid(`lacks a well-formed ${name}`);
  }
  return { all, ...(fields as Omit<ParsedNodeClaims, 'all'>) };
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
