import type { RuleResult } from './evidence.js';
import type { ProvenanceView } from './provenance.js';

export const ATTESTED_BUILDER_RULE = 'provenance.attestedBuilder';

interface NodeClaimsSeen {
  referenceValueSetId?: string;
  akName?: string;
  quoteDigest?: string;
}

/**
 * `requireAttestedBuilder`: the verified signing certificate of the provenance carries attested node claims (the
 * CA writes them only for issuers the operator trusts to assert them) with an allowed reference value set; a build
 * quote recorded in the provenance must come from the same AK and reference value set.
 */
export function attestedBuilderRule(v: ProvenanceView, allowed: readonly string[]): RuleResult {
  const raw = v.accepted.evidence.verification.signer.nodeAttestation;
  const expected = { referenceValues: allowed };
  if (raw === undefined)
    return fail(null, expected, 'unattested builder: the signing certificate carries no node attestation claims');
  const cert = parseClaims(raw);
  if (cert === undefined) return fail(raw, expected, 'the signing certificate’s node attestation claims are malformed');
  const id = cert.referenceValueSetId;
  if (id === undefined || !allowed.includes(id))
    return fail(cert, expected, `reference value set '${id ?? '(none)'}' is not one of the allowed sets`);
  const quote = buildQuoteOf(v);
  if (quote && quote.akName !== cert.akName)
    return fail(
      { certificate: cert, provenance: quote },
      expected,
      'the provenance’s build quote was signed by another AK than the attested node’s',
    );
  if (quote && quote.referenceValueSetId !== id)
    return fail(
      { certificate: cert, provenance: quote },
      expected,
      'the provenance’s build quote names another reference value set than the certificate',
    );
  return {
    rule: ATTESTED_BUILDER_RULE,
    passed: true,
    seen: quote ? { certificate: cert, provenance: quote } : cert,
    expected,
    message: `built on a node attested against reference value set '${id}'`,
  };
}

function fail(seen: unknown, expected: unknown, message: string): RuleResult {
  return { rule: ATTESTED_BUILDER_RULE, passed: false, seen, expected, message };
}

const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
const rec = (x: unknown): Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};

function parseClaims(raw: string): NodeClaimsSeen | undefined {
  let c: unknown;
  try {
    c = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof c !== 'object' || c === null) return undefined;
  const out: NodeClaimsSeen = {};
  const id = str(rec(rec(c).referenceValues).id);
  const ak = str(rec(rec(c).ak).name);
  const q = str(rec(rec(c).quote).digest);
  if (id !== undefined) out.referenceValueSetId = id;
  if (ak !== undefined) out.akName = ak;
  if (q !== undefined) out.quoteDigest = q;
  return out;
}

/** internalParameters.nodeAttestation (slsa-buildtype-airlock-v1), when the run was given an attestor. */
function buildQuoteOf(v: ProvenanceView): NodeClaimsSeen | undefined {
  const na = rec(rec(rec(v.predicate.buildDefinition).internalParameters).nodeAttestation);
  if (Object.keys(na).length === 0) return undefined;
  const out: NodeClaimsSeen = {};
  const id = str(rec(na.referenceValues).id);
  const ak = str(na.akName);
  const q = str(na.quoteDigest);
  if (id !== undefined) out.referenceValueSetId = id;
  if (ak !== undefined) out.akName = ak;
  if (q !== undefined) out.quoteDigest = q;
  return out;
}
