import type { ResourceDescriptor, Statement } from '@airlock/core';
import type { VerificationResult } from '@airlock/verify';
import type { AdvisoryIndex } from './osv.js';
import type { SnapshotSource } from './snapshots.js';

/** One Sigstore bundle the caller has verified with @airlock/verify's BundleVerifier (signature, chain, log). */
export interface AttestationEvidence {
  /** Where the bundle came from (file path, OCI reference): the VSA's inputAttestations[].uri. */
  uri: string;
  /** sha256 of the bundle's bytes as read: the VSA's inputAttestations[].digest. */
  bundleDigest: { sha256: string };
  /** BundleVerifier.verify's result; a DSSE in-toto bundle carries `statement`. */
  verification: VerificationResult;
}

export interface Evidence {
  /** The artifact (file or image manifest) every attestation must be about. */
  artifact: { digest: { sha256: string }; name?: string; uri?: string };
  attestations: readonly AttestationEvidence[];
  /** Needed by policy.dependencies (and lets advisories name blobs without a purl). */
  snapshots?: SnapshotSource;
  /** Needed by policy.advisories: the OSV files of policy.advisories.osvDirectory, indexed. */
  advisories?: AdvisoryIndex;
}

export interface RuleResult {
  /** Stable rule name, e.g. `provenance.builderId`. */
  rule: string;
  passed: boolean;
  seen: unknown;
  expected: unknown;
  message: string;
}

/** What the report shows about the build (taken from the accepted provenance). */
export interface BuildFacts {
  builderId?: string;
  buildType?: string;
  sourceUri?: string;
  commit?: string;
  ref?: string;
  mirrorSnapshot?: string;
  reproducibility?: string;
  provenanceTime?: string;
  dependencies?: number;
}

export interface Verdict {
  result: 'PASS' | 'FAIL';
  rules: RuleResult[];
  policy: { uri: string; digest: { sha256: string } };
  artifact: Evidence['artifact'];
  /** Every bundle the evaluation was given, by digest. */
  inputAttestations: { uri: string; digest: { sha256: string } }[];
  /** For the VSA: `FAILED`, or the SLSA Build level the policy actually checked (see levels.ts). */
  verifiedLevels: string[];
  levelReason: string;
  facts: BuildFacts;
  /** Evaluation time (ISO 8601), the `now` given. */
  evaluatedAt: string;
}

/** SLSA v1 provenance predicate fields the rules read (untrusted shape: every access is checked). */
export interface ProvenancePredicate {
  buildDefinition?: {
    buildType?: unknown;
    externalParameters?: unknown;
    internalParameters?: unknown;
    resolvedDependencies?: unknown;
  };
  runDetails?: {
    builder?: { id?: unknown; builderDependencies?: unknown };
    metadata?: { finishedOn?: unknown; startedOn?: unknown };
    byproducts?: unknown;
  };
}

/** An attestation with a statement, accepted for a rule (signed by an allowed authority, about the artifact). */
export interface Accepted {
  evidence: AttestationEvidence;
  statement: Statement;
}

export type Dependency = ResourceDescriptor;
