import { findMatchingSubject, makeStatement, validateStatement, type Statement } from '@airlock/core';
import { SLSA_VSA_V1 } from './constants.js';
import { PolicyError } from './errors.js';
import type { Verdict } from './evidence.js';

/** SLSA Verification Summary v1 predicate (https://slsa.dev/spec/v1.0/verification_summary). */
export interface VsaPredicate {
  verifier: { id: string; version?: Record<string, string> };
  timeVerified: string;
  resourceUri: string;
  policy: { uri: string; digest: { sha256: string } };
  inputAttestations: { uri: string; digest: { sha256: string } }[];
  verificationResult: 'PASSED' | 'FAILED';
  verifiedLevels: string[];
  slsaVersion: string;
}

export interface VsaInput {
  verdict: Verdict;
  /** The verifier's identity URI (the identity it signs the VSA as) and versions. */
  verifier: { id: string; version?: Record<string, string> };
  /** The artifact as the consumer names it (file name, image reference). */
  resourceUri: string;
  /** Subject name (default: the artifact's name, else resourceUri). */
  subjectName?: string;
}

/** The VSA statement for a verdict; its only subject is the artifact's digest. Pure: signing happens elsewhere. */
export function buildVsa(input: VsaInput): Statement<VsaPredicate> {
  const v = input.verdict;
  const predicate: VsaPredicate = {
    verifier: { id: input.verifier.id, ...(input.verifier.version ? { version: { ...input.verifier.version } } : {}) },
    timeVerified: v.evaluatedAt,
    resourceUri: input.resourceUri,
    policy: { uri: v.policy.uri, digest: { sha256: v.policy.digest.sha256 } },
    inputAttestations: v.inputAttestations.map((a) => ({ uri: a.uri, digest: { sha256: a.digest.sha256 } })),
    verificationResult: v.result === 'PASS' ? 'PASSED' : 'FAILED',
    verifiedLevels: [...v.verifiedLevels],
    slsaVersion: '1.0',
  };
  const name = input.subjectName ?? v.artifact.name ?? input.resourceUri;
  return makeStatement([{ name, digest: { sha256: v.artifact.digest.sha256 } }], SLSA_VSA_V1, predicate);
}

export interface VsaExpectation {
  /** The artifact the VSA must be about. */
  subjectDigest: { sha256: string };
  /** sha256 of the policy file the VSA must have been issued under (an older policy is refused). */
  policyDigest: string;
  /** The verifier id the VSA must name (its signature identity is checked by the caller with BundleVerifier). */
  verifierId?: string;
  /** A level the VSA must claim at least (same track), e.g. SLSA_BUILD_LEVEL_3. */
  minimumLevel?: string;
}

/**
 * Checks a VSA statement whose signature the caller verified: a SLSA VSA v1 about this digest, under this policy
 * digest, from this verifier, PASSED, at the level asked for. Throws POLICY_VSA_INVALID for a malformed statement
 * and POLICY_VSA_MISMATCH for a valid one that says something else.
 */
export function checkVsa(statement: unknown, expect: VsaExpectation): VsaPredicate {
  const p = parseVsa(statement);
  const mismatch = (msg: string): never => {
    throw new PolicyError('POLICY_VSA_MISMATCH', msg);
  };
  try {
    findMatchingSubject(statement as Statement, { sha256: expect.subjectDigest.sha256 });
  } catch {
    mismatch(`the VSA is not about sha256:${expect.subjectDigest.sha256}`);
  }
  if (p.policy.digest?.sha256 !== expect.policyDigest.replace(/^sha256:/, ''))
    mismatch(
      `the VSA was issued under policy sha256:${p.policy.digest?.sha256 ?? '(none)'}, not sha256:${expect.policyDigest.replace(/^sha256:/, '')}`,
    );
  if (expect.verifierId !== undefined && p.verifier.id !== expect.verifierId)
    mismatch(`the VSA names verifier '${p.verifier.id}', not '${expect.verifierId}'`);
  if (p.verificationResult !== 'PASSED') mismatch(`the VSA records verificationResult ${p.verificationResult}`);
  if (expect.minimumLevel !== undefined && !meetsLevel(p.verifiedLevels, expect.minimumLevel))
    mismatch(`the VSA claims ${p.verifiedLevels.join(', ') || 'no level'}, ${expect.minimumLevel} is required`);
  return p;
}

function parseVsa(statement: unknown): VsaPredicate {
  const invalid = (msg: string): never => {
    throw new PolicyError('POLICY_VSA_INVALID', `not a SLSA VSA v1: ${msg}`);
  };
  try {
    validateStatement(statement);
  } catch (cause) {
    invalid((cause as Error).message);
  }
  const s = statement as Statement;
  if (s.predicateType !== SLSA_VSA_V1) invalid(`predicateType is '${s.predicateType}'`);
  const p = (s.predicate ?? {}) as Partial<VsaPredicate>;
  if (typeof p.verifier?.id !== 'string') invalid('verifier.id is required');
  if (typeof p.resourceUri !== 'string') invalid('resourceUri is required');
  if (typeof p.policy?.uri !== 'string') invalid('policy.uri is required');
  if (p.verificationResult !== 'PASSED' && p.verificationResult !== 'FAILED')
    invalid('verificationResult must be PASSED or FAILED');
  if (!Array.isArray(p.verifiedLevels) || !p.verifiedLevels.every((l) => typeof l === 'string'))
    invalid('verifiedLevels must be an array of strings');
  return p as VsaPredicate;
}

/** `SLSA_BUILD_LEVEL_3` meets `SLSA_BUILD_LEVEL_2`: same track, level at least as high. */
function meetsLevel(levels: readonly string[], required: string): boolean {
  const m = /^(SLSA_[A-Z_]+_LEVEL_)(\d+)$/.exec(required);
  if (!m) return levels.includes(required);
  return levels.some((l) => l.startsWith(m[1]!) && Number(l.slice(m[1]!.length)) >= Number(m[2]));
}
