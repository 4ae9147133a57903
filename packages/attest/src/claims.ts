/**
 * The attested node identity as claims (schemas/node-attestation-claims.v1.schema.json): what the issuer puts in
 * workload tokens, the CA copies into certificate extensions and the runner records in provenance.
 */
import { canonicalBytes } from '@airlock/core';
import type { Assignable, NodeAttestationClaimsV1 } from '@airlock/schemas';
import type { TpmHashName } from './tpm/constants.js';

export const NODE_ATTESTATION_CLAIMS_SCHEMA = 'https://airlock.dev/schemas/node-attestation-claims.v1.schema.json';

export interface NodeAttestationClaims {
  version: 1;
  type: 'tpm2';
  ek: {
    /** `sha256:<hex>` of the EK certificate (DER). */
    certificateDigest: string;
    /** `sha256:<hex>` of the EK's SubjectPublicKeyInfo (DER): stable across certificate re-issuance. */
    publicKeyDigest: string;
    /** Issuer DN of the EK certificate (the TPM manufacturer's CA). */
    issuer: string;
  };
  ak: {
    /** TPM Name of the AK (nameAlg || H(TPMT_PUBLIC)), hex. */
    name: string;
    publicKeyDigest: string;
  };
  pcrs: { bank: TpmHashName; values: Record<string, string> };
  referenceValues: { id: string; name: string };
  quote: {
    /** `sha256:<hex>` of the TPMS_ATTEST the AK signed. */
    digest: string;
    /** The verifier's nonce, hex. */
    nonce: string;
    resetCount: number;
    restartCount: number;
    firmwareVersion: string;
  };
  attestedAt: string;
}

/** Compile-time check: the refined claims type stays within the one generated from the schema. */
export type NodeAttestationClaimsMatchSchema = Assignable<NodeAttestationClaims, NodeAttestationClaimsV1>;

/** Object identifiers for certificate extensions carrying these claims: defined in @airlock/core (shared with the CA). */
export { AIRLOCK_OID_ARC, NODE_ATTESTATION_OID } from '@airlock/core';

/** The canonical bytes that go into the `claims` extension or a token claim. */
export function canonicalClaims(claims: NodeAttestationClaims): Buffer {
  return canonicalBytes(claims);
}
