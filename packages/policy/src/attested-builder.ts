import { AttestError, verifyBuildQuoteRecord, type BuildQuoteRecord } from '@airlock/attest';
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
 * CA writes them only for issuers the operator trusts to assert them) with an allowed reference value set, and the
 * provenance records the build quote made before dispatch (internalParameters.nodeAttestation), re-verified here:
 * signed by the certificate's AK, over buildQuoteNonce(this invocation id, this spec digest), its PCRs matching
 * the recorded reference value set, which is intact and is the certificate's.
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
  const record = rec(rec(v.predicate.buildDefinition).internalParameters).nodeAttestation;
  if (record === undefined)
    return fail(
      cert,
      expected,
      'the provenance records no build quote (internalParameters.nodeAttestation): the build was not bound to the attested node',
    );
  const build = buildIdsOf(v);
  if (build === undefined || cert.akName === undefined)
    return fail(cert, expected, 'the provenance lacks its invocation id or spec digest, or the claims their AK name');
  let quote: BuildQuoteRecord;
  try {
    quote = verifyBuildQuoteRecord(record, {
      ...build,
      node: { akName: cert.akName, referenceValueSetId: id },
    });
  } catch (err) {
    const code = err instanceof AttestError ? err.code : 'ERROR';
    return fail(
      { certificate: cert, provenance: quoteSeen(record) },
      expected,
      `the provenance’s build quote is refused (${code}): ${(err as Error).message}`,
    );
  }
  return {
    rule: ATTESTED_BUILDER_RULE,
    passed: true,
    seen: { certificate: cert, provenance: quoteSeen(quote) },
    expected,
    message: `built on a node attested against reference value set '${id}'; build quote ${quote.quoteDigest} binds invocation ${build.invocationId}`,
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

/** The ids the build quote's nonce must bind: runDetails.metadata.invocationId and the spec digest. */
function buildIdsOf(v: ProvenanceView): { invocationId: string; specDigest: string } | undefined {
  const invocationId = str(rec(rec(v.predicate.runDetails).metadata).invocationId);
  const specDigest = str(rec(rec(v.externalParameters.spec).digest).sha256);
  return invocationId !== undefined && specDigest !== undefined ? { invocationId, specDigest } : undefined;
}

function quoteSeen(record: unknown): NodeClaimsSeen {
  const na = rec(record);
  const out: NodeClaimsSeen = {};
  const id = str(rec(na.referenceValues).id);
  const ak = str(na.akName);
  const q = str(na.quoteDigest);
  if (id !== undefined) out.referenceValueSetId = id;
  if (ak !== undefined) out.akName = ak;
  if (q !== undefined) out.quoteDigest = q;
  return out;
}
