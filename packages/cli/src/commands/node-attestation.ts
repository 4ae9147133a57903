/**
 * `identity agent --tpm-tcti/--tpm-socket --ek-ca --reference-values`: the operator's TPM node attestation for the
 * agent. Adapts @airlock/attest (TpmAttester on this host, NodeAttestationVerifier with the operator's EK CA and
 * reference values) to the agent's NodeAttestation seam.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { NodeAttestation } from '@airlock/agent';
import {
  buildQuoteNonce,
  canonicalClaims,
  NodeAttestationVerifier,
  TpmAttester,
  type AttestationChallenge,
  type ReferenceValueSet,
  type TpmEvidence,
  type TpmIdentity,
} from '@airlock/attest';
import { UsageError } from '../output.js';

export interface TpmAttestationFlags {
  tpmTcti?: string;
  tpmSocket?: string;
  ekCa?: string;
  referenceValues?: string;
  tpmWorkDir?: string;
}

/** undefined when no TPM flag is given; a UsageError when only some of them are. */
export function tpmNodeAttestation(
  flags: TpmAttestationFlags,
  dataDir: string,
): NodeAttestation<TpmIdentity, AttestationChallenge, TpmEvidence> | undefined {
  const tcti = flags.tpmTcti ?? (flags.tpmSocket !== undefined ? `swtpm:path=${flags.tpmSocket}` : undefined);
  if (tcti === undefined && flags.ekCa === undefined && flags.referenceValues === undefined) return undefined;
  if (tcti === undefined || flags.ekCa === undefined || flags.referenceValues === undefined)
    throw new UsageError('node attestation needs all of --tpm-socket (or --tpm-tcti), --ek-ca and --reference-values');
  if (flags.tpmTcti !== undefined && flags.tpmSocket !== undefined)
    throw new UsageError('give one of --tpm-socket, --tpm-tcti');
  const verifier = new NodeAttestationVerifier({
    manufacturerRoots: fs.readFileSync(flags.ekCa, 'utf8'),
    referenceValues: readReferenceValues(flags.referenceValues),
  });
  const attestor = new TpmAttester({ tcti, workDir: flags.tpmWorkDir ?? path.join(dataDir, 'agent-tpm') });
  return {
    attestor,
    challenge: (identity) => verifier.challenge(identity),
    verify: (evidence) => {
      const { claims } = verifier.verify(evidence);
      return {
        nodeId: claims.ek.publicKeyDigest,
        referenceValueSetId: claims.referenceValues.id,
        claimsJson: canonicalClaims(claims).toString('utf8'),
      };
    },
    // The agent computes the nonce from the build's ids: callers never choose what the AK signs.
    buildQuote: (build) =>
      attestor.quote(buildQuoteNonce(build.invocationId, build.specDigest).toString('hex'), verifier.pcrSelection),
  };
}

/** The operator's reference value sets: a JSON array (or {referenceValues: [...]}); the verifier checks each id. */
export function readReferenceValues(file: string): ReferenceValueSet[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--reference-values ${file}: ${(err as Error).message}`);
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { referenceValues?: unknown } | null)?.referenceValues;
  if (!Array.isArray(list) || list.length === 0)
    throw new UsageError(`--reference-values ${file}: expected a non-empty array of reference value sets`);
  return list as ReferenceValueSet[];
}
