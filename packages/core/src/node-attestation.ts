/**
 * Names shared by everything that carries attested node claims (issue 10 §4): the agent puts them in a token
 * claim, the CA copies them into certificate extensions, verifiers and the policy engine read them back. The
 * claims object itself is defined by @airlock/attest (`NodeAttestationClaims`).
 *
 * The arc is a UUID OID (ITU-T X.667, 2.25.<uuid as integer>), which needs no registration: 2.25 + UUID
 * 59a152d1-db25-4696-a0aa-67087904d637. Each leaf holds a DER UTF8String (as Fulcio's extensions .1.8+ do).
 */
export const AIRLOCK_OID_ARC = '2.25.119138931203177365605296461339232097847';
export const NODE_ATTESTATION_OID = {
  /** The whole claims object, RFC 8785 canonical JSON. */
  claims: `${AIRLOCK_OID_ARC}.1.1`,
  referenceValueSetId: `${AIRLOCK_OID_ARC}.1.2`,
  ekPublicKeyDigest: `${AIRLOCK_OID_ARC}.1.3`,
  akName: `${AIRLOCK_OID_ARC}.1.4`,
  quoteDigest: `${AIRLOCK_OID_ARC}.1.5`,
} as const;

/** The workload-token claim holding the attested node claims as canonical JSON (a string, like Fulcio's claims). */
export const NODE_ATTESTATION_TOKEN_CLAIM = 'airlock_node_attestation';

/** Upper bound for that claim: PCR values of one bank plus digests fit well below it. */
export const MAX_NODE_ATTESTATION_CLAIM_LENGTH = 16_384;
