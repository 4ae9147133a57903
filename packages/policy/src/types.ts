/** The policy document (schemas/policy.v1.schema.json). */
export interface PolicyDocument {
  apiVersion: 'airlock.dev/policy/v1';
  name?: string;
  description?: string;
  trustedRoots?: string[];
  authorities: Record<string, Authority>;
  attestations?: RequiredAttestation[];
  provenance?: ProvenanceRules;
  dependencies?: DependencyRules;
  sbom?: SbomRules;
  advisories?: AdvisoryRules;
}

export interface KeylessIdentity {
  subject?: string;
  subjectRegExp?: string;
  issuer?: string;
  issuerRegExp?: string;
}

export interface Authority {
  keyless?: KeylessIdentity;
  publicKey?: { hint: string; path: string };
}

export interface RequiredAttestation {
  predicateType: string;
  authorities: string[];
}

export interface ProvenanceRules {
  authorities: string[];
  builderIds?: string[];
  buildTypes?: string[];
  source?: {
    uris?: string[];
    refs?: { branches?: string[]; tags?: string[]; semverTags?: string };
    commit?: string;
    requireCommit?: boolean;
  };
  reproducible?: boolean;
  maxAge?: string;
  externalParameters?: Record<string, string[]>;
  toolchainDigests?: string[];
  requireAttestedBuilder?: { referenceValues: string[] };
}

export interface DependencyRules {
  syncAuthorities: string[];
}

export interface SbomRules {
  authorities: string[];
  coverDependencies?: boolean;
}

export interface AdvisoryRules {
  osvDirectory: string;
  ignore?: string[];
}
