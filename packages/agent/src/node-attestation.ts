/**
 * The seam for node attestation (issue 10 §4): before it serves any workload the agent proves its host. It has the
 * shape of @airlock/attest's NodeAttestor (`identity()` once, `attest(challenge)` per attestation) and its
 * verifier (`challenge(identity)`, `verify(evidence)`): the verifier, configured by the operator, issues a fresh
 * single-use challenge (nonce + credential to activate), so replayed evidence fails. The agent only runs the
 * exchange; the TPM (or SEV-SNP/TDX) specifics stay behind these four calls.
 */
export interface NodeAttestor<I = unknown, C = unknown, E = unknown> {
  identity(): Promise<I>;
  attest(challenge: C): Promise<E>;
}

/** What a verified node proved: attached to every token the agent issues and logged with every issuance. */
export interface NodeAttestationResult {
  /** Stable id of the attested node (e.g. the EK public-key digest). */
  nodeId: string;
  /** Reference value set the quote matched. */
  referenceValueSetId: string;
  /** The full claims as canonical JSON: the token's `airlock_node_attestation` claim (the CA copies it). */
  claimsJson: string;
}

export interface NodeAttestation<I = unknown, C = unknown, E = unknown> {
  attestor: NodeAttestor<I, C, E>;
  /** A fresh challenge for this node identity (throws when the identity is not acceptable, e.g. an unknown EK CA). */
  challenge(identity: I): C | Promise<C>;
  /** Checks evidence answering the challenge against the reference values; throws when the host is not acceptable. */
  verify(evidence: E): NodeAttestationResult | Promise<NodeAttestationResult>;
  /** A quote by the attested AK binding one build (nonce = buildQuoteNonce(invocationId, specDigest)). */
  buildQuote?(build: { invocationId: string; specDigest: string }): Promise<unknown>;
}

/** Runs one attestation exchange. */
export async function attestWith<I, C, E>(na: NodeAttestation<I, C, E>): Promise<NodeAttestationResult> {
  const identity = await na.attestor.identity();
  const challenge = await na.challenge(identity);
  return na.verify(await na.attestor.attest(challenge));
}
