/**
 * The seam for node attestation (issue 10 §4): before it serves any workload the agent proves its host. The TPM
 * (or SEV-SNP/TDX) side lives elsewhere (@airlock/attest); the agent only knows this one-method interface and a
 * verifier for the evidence, both given by the operator's configuration.
 */
export interface NodeEvidence {
  /** Evidence format, e.g. `tpm2-quote`. */
  kind: string;
  /** The format's own encoding of the evidence. */
  payload: unknown;
}

export interface NodeAttestor {
  /** Produces evidence bound to `nonce` (a fresh random value per attestation: replays fail). */
  attest(nonce: Uint8Array): Promise<NodeEvidence>;
}

/** What a verified node proved; its claims are recorded with every issuance the agent logs. */
export interface NodeAttestationResult {
  /** Stable id of the attested node (e.g. the EK/AK digest). */
  nodeId: string;
  claims?: Record<string, string>;
}

export interface NodeAttestation {
  attestor: NodeAttestor;
  /** Checks evidence against the nonce and the reference values; throws when the host is not acceptable. */
  verify(evidence: NodeEvidence, nonce: Uint8Array): Promise<NodeAttestationResult>;
}
