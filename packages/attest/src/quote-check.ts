/**
 * The quote checks shared by node attestation (NodeAttestationVerifier) and build-bound quotes (verifyBuildQuote):
 * signature by the AK → nonce → PCR selection and digest → one reference value set matches exactly.
 */
import { canonicalize, fromBase64 } from '@airlock/core';
import { createHash } from 'node:crypto';
import { AttestError } from './errors.js';
import { checkReferenceValueSet, type ReferenceValueSet } from './reference-values.js';
import { parseTpm2bPublic, tpmName, type TpmPublic } from './tpm/public.js';
import { buffersEqual, computePcrDigest, parseQuote, type PcrSelection, type TpmQuote } from './tpm/quote.js';
import { parseTpmtSignature, verifyTpmSignature } from './tpm/signature.js';
import type { TpmEvidence } from './evidence.js';

export interface CheckedQuote {
  attest: Buffer;
  quote: TpmQuote;
  /** The selected PCRs' values, as verified against the quote. */
  values: Map<number, Buffer>;
  referenceValues: ReferenceValueSet;
}

function decode(b64: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new AttestError('EVIDENCE_MALFORMED', `${what} is not base64`);
  return fromBase64(b64);
}

export function checkQuote(input: {
  ak: TpmPublic;
  quote: TpmEvidence['quote'];
  pcrs: TpmEvidence['pcrs'];
  nonce: Buffer;
  selection: PcrSelection;
  referenceValues: ReferenceValueSet[];
}): CheckedQuote {
  const attest = decode(input.quote.attest, 'quote.attest');
  const quote = parseQuote(attest);
  const sig = parseTpmtSignature(decode(input.quote.signature, 'quote.signature'));
  if (!verifyTpmSignature(input.ak, sig, attest))
    throw new AttestError(
      'QUOTE_SIGNATURE_INVALID',
      "the quote's signature does not verify with the activated AK (quote from a different TPM or altered)",
    );
  if (!buffersEqual(quote.extraData, input.nonce))
    throw new AttestError(
      'QUOTE_NONCE_MISMATCH',
      `quote nonce ${quote.extraData.toString('hex')} is not this challenge's nonce (replayed quote)`,
    );
  const values = checkPcrs(quote, input.pcrs, input.selection, sig.hash);
  return { attest, quote, values, referenceValues: matchReferenceValues(values, input.referenceValues) };
}

/** The quote must cover exactly the requested PCRs, and the reported values must hash to its pcrDigest. */
function checkPcrs(
  quote: TpmQuote,
  pcrs: TpmEvidence['pcrs'],
  want: PcrSelection,
  digestAlg: PcrSelection['hash'],
): Map<number, Buffer> {
  const got = quote.pcrSelect.filter((s) => s.pcrs.length > 0);
  if (got.length !== 1 || got[0]!.hash !== want.hash || got[0]!.pcrs.join(',') !== want.pcrs.join(','))
    throw new AttestError('PCR_SELECTION_MISMATCH', `quote covers ${describe(got)}, expected ${describe([want])}`);
  if (pcrs.bank !== want.hash)
    throw new AttestError('PCR_SELECTION_MISMATCH', `reported PCR bank ${String(pcrs.bank)} is not ${want.hash}`);
  const values = new Map<number, Buffer>();
  for (const [k, v] of Object.entries(pcrs.values)) {
    if (!/^[0-9a-f]+$/i.test(v)) throw new AttestError('EVIDENCE_MALFORMED', `PCR ${k}: value is not hex`);
    values.set(Number(k), Buffer.from(v, 'hex'));
  }
  const digest = computePcrDigest([want], { [want.hash]: Object.fromEntries(values) }, digestAlg);
  if (!buffersEqual(digest, quote.pcrDigest))
    throw new AttestError('PCR_DIGEST_MISMATCH', "the reported PCR values do not hash to the quote's pcrDigest");
  return new Map([...values].filter(([pcr]) => want.pcrs.includes(pcr)));
}

function matchReferenceValues(values: Map<number, Buffer>, sets: ReferenceValueSet[]): ReferenceValueSet {
  const mismatches: string[] = [];
  for (const set of sets) {
    checkReferenceValueSet(set);
    const bad = Object.entries(set.pcrs).filter(([k, v]) => values.get(Number(k))?.toString('hex') !== v);
    if (bad.length === 0) return set;
    const [k, v] = bad[0]!;
    const seen = values.get(Number(k))?.toString('hex');
    mismatches.push(`set "${set.name}" (${set.id}): PCR ${set.bank}:${k} is ${seen}, reference ${v}`);
  }
  throw new AttestError(
    'REFERENCE_VALUE_MISMATCH',
    `quoted PCRs match no reference value set: ${mismatches.join('; ')}`,
  );
}

function describe(sel: PcrSelection[]): string {
  return sel.map((s) => `${s.hash}:${s.pcrs.join(',')}`).join(' + ') || 'no PCRs';
}

/** The PCR selection reference value sets require: the union of their PCRs (one bank). */
export function selectionOf(sets: ReferenceValueSet[]): PcrSelection {
  if (sets.length === 0) throw new AttestError('REFERENCE_VALUES_INVALID', 'no reference value sets configured');
  sets.forEach(checkReferenceValueSet);
  const banks = new Set(sets.map((s) => s.bank));
  if (banks.size !== 1) throw new AttestError('REFERENCE_VALUES_INVALID', 'reference value sets must use one PCR bank');
  const pcrs = new Set(sets.flatMap((s) => Object.keys(s.pcrs).map(Number)));
  return { hash: sets[0]!.bank, pcrs: [...pcrs].sort((a, b) => a - b) };
}

/**
 * The qualifying data a runner quotes with to bind a build to the attested node (issue 10 §4): sha256 of the
 * RFC 8785 JSON of { invocationId, specDigest }. Anyone holding the provenance can recompute it.
 */
export function buildQuoteNonce(invocationId: string, specDigest: string): Buffer {
  return createHash('sha256').update(canonicalize({ invocationId, specDigest })).digest();
}

export interface BuildQuote {
  /** The AK's TPM2B_PUBLIC, base64 — an AK already bound to a certified EK by node attestation. */
  akPublic: string;
  quote: TpmEvidence['quote'];
  pcrs: TpmEvidence['pcrs'];
}

/**
 * Verifies a quote the runner made during a build with nonce = buildQuoteNonce(invocationId, specDigest), using
 * the AK from the node's attestation claims. The caller must check that this AK's name equals the attested
 * `ak.name` in the builder's certificate claims (returned as `akName` for that comparison).
 */
export function verifyBuildQuote(
  q: BuildQuote,
  expected: { invocationId: string; specDigest: string; referenceValues: ReferenceValueSet[] },
): CheckedQuote & { akName: string; quoteDigest: string } {
  const ak = parseTpm2bPublic(decode(q.akPublic, 'akPublic'));
  const checked = checkQuote({
    ak,
    quote: q.quote,
    pcrs: q.pcrs,
    nonce: buildQuoteNonce(expected.invocationId, expected.specDigest),
    selection: selectionOf(expected.referenceValues),
    referenceValues: expected.referenceValues,
  });
  return {
    ...checked,
    akName: tpmName(ak).toString('hex'),
    quoteDigest: `sha256:${createHash('sha256').update(checked.attest).digest('hex')}`,
  };
}
