/**
 * The evidence interface shared by every attester (TPM quote today; SEV-SNP reports and TDX quotes parse and verify
 * through the same `Evidence` union). Binary fields travel base64 (standard alphabet); digests as lower-case hex.
 */
import type { TpmHashName } from './tpm/constants.js';

/** Public identity material of a TPM-attested node: what the verifier needs to issue a challenge. */
export interface TpmIdentity {
  /** The EK certificate, DER, base64 (from NV index 0x1c00002 for an RSA EK, 0x1c0000a / 0x1c00016 for ECC). */
  ekCertificate: string;
  /** Untrusted intermediate certificates (DER, base64) the node offers to help build the chain. */
  ekIntermediates?: string[];
  /** The EK's TPM2B_PUBLIC, base64 (its template decides how the credential is protected). */
  ekPublic: string;
  /** The AK's TPM2B_PUBLIC, base64. */
  akPublic: string;
}

/** What the verifier sends to the node: a fresh nonce to quote over and a credential only the AK's TPM can open. */
export interface AttestationChallenge {
  id: string;
  /** Hex; becomes the quote's qualifying data (extraData). */
  nonce: string;
  pcrSelection: { bank: TpmHashName; pcrs: number[] };
  /** TPM2_MakeCredential output for (EK, AK name), base64. */
  credential: { blob: string; encryptedSecret: string };
  expiresAt: string;
}

export interface TpmEvidence {
  kind: 'tpm2';
  challengeId: string;
  identity: TpmIdentity;
  /** The secret TPM2_ActivateCredential recovered, base64. */
  activatedCredential: string;
  quote: {
    /** Marshalled TPMS_ATTEST, base64. */
    attest: string;
    /** Marshalled TPMT_SIGNATURE, base64. */
    signature: string;
  };
  /** The PCR values the node reports (checked against the quote's pcrDigest). */
  pcrs: { bank: TpmHashName; values: Record<string, string> };
}

/** An AMD SEV-SNP attestation report with the certificates that sign it. */
export interface SnpEvidence {
  kind: 'sev-snp';
  /** The 1184-byte ATTESTATION_REPORT, base64. */
  report: string;
  /** VCEK (or VLEK) certificate, PEM; the ASK may be included, the ARK is configured by the verifier. */
  certificates: string;
}

/** An Intel TDX DCAP quote v4 (its PCK chain travels inside the quote's certification data). */
export interface TdxEvidence {
  kind: 'tdx';
  /** The quote, base64. */
  quote: string;
}

export type Evidence = TpmEvidence | SnpEvidence | TdxEvidence;

/**
 * The attesting side, as the workload agent uses it: publish the node's identity once, then answer each challenge
 * with evidence. Two calls because credential activation needs the AK's name before the challenge exists.
 */
export interface NodeAttestor {
  identity(): Promise<TpmIdentity>;
  attest(challenge: AttestationChallenge): Promise<TpmEvidence>;
}
