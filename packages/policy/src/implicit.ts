import { canonicalize } from '@airlock/core';
import { SLSA_PROVENANCE_V1 } from './constants.js';
import { PolicyError } from './errors.js';
import { parsePolicy, type LoadedPolicy } from './load.js';
import type { PolicyDocument, ProvenanceRules } from './types.js';

/**
 * The shortcut flags of `airlock verify`, named as slsa-verifier and `gh attestation verify` name them. Each becomes
 * a rule of an implicit policy, validated exactly like a policy file.
 */
export interface ShortcutFlags {
  sourceUri?: string;
  /** A full ref: `refs/heads/<branch>` or `refs/tags/<tag>` (gh `--source-ref`). */
  sourceRef?: string;
  sourceBranch?: string;
  sourceTag?: string;
  /** slsa-verifier `--source-versioned-tag`: `v1` accepts v1.x.y, `v1.2` accepts v1.2.y, `v1.2.3` only itself. */
  sourceVersionedTag?: string;
  builderId?: string;
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  certificateOidcIssuerRegexp?: string;
  /** Default: SLSA provenance v1. Another type is required as a further attestation, besides the provenance. */
  predicateType?: string;
  trustedRoot?: string;
  maxAge?: string;
}

/** The implicit policy for the flags; its `uri` is `airlock:implicit-policy` and its digest that of its JSON. */
export function implicitPolicy(flags: ShortcutFlags): LoadedPolicy {
  const identity = {
    ...(flags.certificateIdentity !== undefined ? { subject: flags.certificateIdentity } : {}),
    ...(flags.certificateIdentityRegexp !== undefined ? { subjectRegExp: flags.certificateIdentityRegexp } : {}),
    ...(flags.certificateOidcIssuer !== undefined ? { issuer: flags.certificateOidcIssuer } : {}),
    ...(flags.certificateOidcIssuerRegexp !== undefined ? { issuerRegExp: flags.certificateOidcIssuerRegexp } : {}),
  };
  const provenance: ProvenanceRules = { authorities: ['signer'] };
  if (flags.builderId !== undefined) provenance.builderIds = [flags.builderId];
  const source: NonNullable<ProvenanceRules['source']> = {};
  if (flags.sourceUri !== undefined) source.uris = [flags.sourceUri];
  const refs = refRules(flags);
  if (refs) source.refs = refs;
  if (Object.keys(source).length > 0) provenance.source = source;
  if (flags.maxAge !== undefined) provenance.maxAge = flags.maxAge;
  const otherType = flags.predicateType !== undefined && flags.predicateType !== SLSA_PROVENANCE_V1;
  // Like `gh attestation verify --predicate-type`: another type alone needs no provenance; provenance flags do.
  const needsProvenance = !otherType || Object.keys(provenance).length > 1;
  const doc: PolicyDocument = {
    apiVersion: 'airlock.dev/policy/v1',
    name: 'implicit policy from command-line flags',
    ...(flags.trustedRoot !== undefined ? { trustedRoots: [flags.trustedRoot] } : {}),
    authorities: { signer: { keyless: identity } },
    ...(needsProvenance ? { provenance } : {}),
    ...(otherType ? { attestations: [{ predicateType: flags.predicateType!, authorities: ['signer'] }] } : {}),
  };
  try {
    return parsePolicy(canonicalize(doc), 'airlock:implicit-policy');
  } catch (err) {
    // Name the flags, not the generated document's fields.
    throw new PolicyError(
      'POLICY_INVALID',
      `the verification flags do not make a valid policy: ${flagWords((err as Error).message)}`,
      {
        cause: err,
      },
    );
  }
}

function refRules(flags: ShortcutFlags): NonNullable<ProvenanceRules['source']>['refs'] | undefined {
  const given = [flags.sourceRef, flags.sourceBranch, flags.sourceTag, flags.sourceVersionedTag].filter(
    (x) => x !== undefined,
  );
  if (given.length === 0) return undefined;
  if (given.length > 1)
    throw new PolicyError(
      'POLICY_INVALID',
      'give at most one of --source-ref, --source-branch, --source-tag, --source-versioned-tag',
    );
  if (flags.sourceBranch !== undefined) return { branches: [flags.sourceBranch] };
  if (flags.sourceTag !== undefined) return { tags: [flags.sourceTag] };
  if (flags.sourceVersionedTag !== undefined) return { semverTags: versionedTagRange(flags.sourceVersionedTag) };
  const ref = flags.sourceRef!;
  if (ref.startsWith('refs/heads/')) return { branches: [ref.slice('refs/heads/'.length)] };
  if (ref.startsWith('refs/tags/')) return { tags: [ref.slice('refs/tags/'.length)] };
  throw new PolicyError('POLICY_INVALID', `--source-ref '${ref}' must be refs/heads/<branch> or refs/tags/<tag>`);
}

/** `v1` → `^1.0.0`, `v1.2` → `~1.2.0`, `v1.2.3` → `1.2.3`. */
export function versionedTagRange(tag: string): string {
  const m = /^v?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?$/.exec(tag);
  if (!m) throw new PolicyError('POLICY_INVALID', `--source-versioned-tag '${tag}' is not vMAJOR[.MINOR[.PATCH]]`);
  if (m[3] !== undefined) return `${m[1]}.${m[2]}.${m[3]}`;
  if (m[2] !== undefined) return `~${m[1]}.${m[2]}.0`;
  return `^${m[1]}.0.0`;
}

const FLAG_OF: Record<string, string> = {
  'policy.authorities.signer.keyless: give exactly one of subject, subjectRegExp':
    'give exactly one of --certificate-identity, --certificate-identity-regexp',
  'policy.authorities.signer.keyless: give exactly one of issuer, issuerRegExp':
    'give exactly one of --certificate-oidc-issuer, --certificate-oidc-issuer-regexp',
};

const FIELD_FLAGS: [string, string][] = [
  ['policy.provenance.maxAge', '--max-age'],
  ['policy.provenance.source.uris[0]', '--source-uri'],
  ['policy.provenance.source.refs.branches[0]', '--source-branch'],
  ['policy.provenance.source.refs.tags[0]', '--source-tag'],
  ['policy.provenance.builderIds[0]', '--builder-id'],
  ['policy.attestations[0].predicateType', '--predicate-type'],
  ['policy.authorities.signer.keyless.subjectRegExp', '--certificate-identity-regexp'],
  ['policy.authorities.signer.keyless.issuerRegExp', '--certificate-oidc-issuer-regexp'],
  ['policy.authorities.signer.keyless.subject', '--certificate-identity'],
  ['policy.authorities.signer.keyless.issuer', '--certificate-oidc-issuer'],
  ['policy.trustedRoots[0]', '--trusted-root'],
];

function flagWords(message: string): string {
  const lines = message.split('\n  - ').slice(1);
  return (lines.length > 0 ? lines : [message])
    .map(
      (l) =>
        FLAG_OF[l] ??
        FIELD_FLAGS.reduce(
          (acc, [field, flag]) => (acc.startsWith(`${field}:`) ? `${flag}${acc.slice(field.length)}` : acc),
          l,
        ),
    )
    .join('; ');
}
