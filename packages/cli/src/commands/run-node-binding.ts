/**
 * `airlock run --reference-values FILE`: bind the build to the attested node before dispatch (issue 10 §4, SLSA
 * BuildEnv L2). The identity agent holds the AK its node attestation certified, so the quote comes from it: one
 * request returns this runner's token (whose node claims name the AK and reference value set) and a quote over
 * buildQuoteNonce(invocationId, specDigest). The quote is verified here, against the operator's reference values
 * and the token's claims, before anything is checked out.
 */
import { requestAgentToken } from '@airlock/agent';
import { attestedNodeOf, AttestError, bindBuildQuote } from '@airlock/attest';
import { NODE_ATTESTATION_TOKEN_CLAIM } from '@airlock/core';
import type { NodeBinding } from '@airlock/runner';
import { UsageError } from '../output.js';
import { readReferenceValues } from './node-attestation.js';

export function agentNodeBinding(
  referenceValuesFile: string | undefined,
  agentSocket: string | undefined,
  subject: string | undefined,
): NodeBinding | undefined {
  if (referenceValuesFile === undefined) return undefined;
  if (agentSocket === undefined)
    throw new UsageError(
      '--reference-values needs --agent-socket (or $AIRLOCK_AGENT_SOCKET): the build quote comes from the agent holding the attested AK',
    );
  const referenceValues = readReferenceValues(referenceValuesFile);
  return {
    async bind(build) {
      const answer = await requestAgentToken(agentSocket, {
        ...(subject !== undefined ? { subject } : {}),
        buildQuote: build,
      });
      const where = `the token from the agent at ${agentSocket}`;
      const node = attestedNodeOf(tokenClaim(answer.token), where);
      if (answer.buildQuote === undefined)
        throw new AttestError(
          'NODE_NOT_ATTESTED',
          `unattested runner: the agent at ${agentSocket} made no build quote`,
        );
      return bindBuildQuote(answer.buildQuote, { ...build, referenceValues, node });
    },
  };
}

function tokenClaim(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    const v = payload[NODE_ATTESTATION_TOKEN_CLAIM];
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
