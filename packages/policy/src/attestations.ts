import { findMatchingSubject } from '@airlock/core';
import type { Accepted, AttestationEvidence, Evidence, RuleResult } from './evidence.js';
import { describeSigner, type CompiledAuthority } from './match.js';
import type { LoadedPolicy } from './load.js';

/** True when the statement names the artifact's sha256 among its subjects. */
export function aboutArtifact(a: AttestationEvidence, artifact: Evidence['artifact']): boolean {
  const s = a.verification.statement;
  if (!s) return false;
  try {
    findMatchingSubject(s, artifact.digest);
    return true;
  } catch {
    return false;
  }
}

/** Every bundle given must be an in-toto statement about this artifact: a stray bundle is refused, not ignored. */
export function subjectRule(evidence: Evidence): RuleResult {
  const stray = evidence.attestations.filter((a) => !aboutArtifact(a, evidence.artifact)).map((a) => a.uri);
  const expected = `every attestation names sha256:${evidence.artifact.digest.sha256}`;
  return stray.length === 0
    ? {
        rule: 'attestations.subject',
        passed: true,
        seen: `${evidence.attestations.length} attestation(s) about the artifact`,
        expected,
        message: 'every attestation is about the artifact',
      }
    : {
        rule: 'attestations.subject',
        passed: false,
        seen: { notAboutArtifact: stray },
        expected,
        message: `${stray.length} attestation(s) are not in-toto statements about the artifact: ${stray.join(', ')}`,
      };
}

export function authoritiesNamed(policy: LoadedPolicy, names: readonly string[]): CompiledAuthority[] {
  return names.map((n) => policy.authorities.get(n)!);
}

export interface Selection {
  rule: RuleResult;
  accepted: Accepted[];
}

/**
 * The attestations of the given predicate type(s) about the artifact, signed by one of `authorities`. The rule fails
 * when there is none, saying whether none exists at all or who signed the ones that do.
 */
export function selectAttestations(
  rule: string,
  what: string,
  evidence: Evidence,
  isType: (predicateType: string) => boolean,
  authorities: readonly CompiledAuthority[],
): Selection {
  const ofType = evidence.attestations.filter(
    (a) =>
      a.verification.statement && isType(a.verification.statement.predicateType) && aboutArtifact(a, evidence.artifact),
  );
  const accepted = ofType
    .filter((a) => authorities.some((auth) => auth.matches(a.verification.signer)))
    .map((a) => ({ evidence: a, statement: a.verification.statement! }));
  const expected = { signedBy: authorities.map((a) => ({ authority: a.name, ...a.describe })) };
  if (accepted.length > 0)
    return {
      accepted,
      rule: {
        rule,
        passed: true,
        seen: accepted.map((a) => ({ uri: a.evidence.uri, signedBy: describeSigner(a.evidence.verification.signer) })),
        expected,
        message: `${what} signed by ${authorities.find((x) => x.matches(accepted[0]!.evidence.verification.signer))!.name}`,
      },
    };
  const seen =
    ofType.length === 0 ? 'none' : ofType.map((a) => ({ uri: a.uri, signedBy: describeSigner(a.verification.signer) }));
  return {
    accepted,
    rule: {
      rule,
      passed: false,
      seen,
      expected,
      message:
        ofType.length === 0
          ? `no ${what} about the artifact`
          : `${what} is signed by ${ofType.map((a) => describeSigner(a.verification.signer)).join(', ')}, not by an allowed authority (${authorities.map((a) => a.name).join(', ')})`,
    },
  };
}
