/**
 * Binding a build to the attested node (issue 10 §4, SLSA BuildEnv L2): before dispatch the runner gets a quote by
 * the node's attested AK over buildQuoteNonce(invocationId, specDigest), verifies it (bindBuildQuote), and records
 * it in provenance as `internalParameters.nodeAttestation`. A verifier re-checks that record on its own
 * (verifyBuildQuoteRecord): the TPM signature, the nonce against this provenance's invocation id and spec digest,
 * the PCRs against the recorded reference value set, and the AK and set against the certificate's node claims.
 */
import { createHash } from 'node:crypto';
import { fromBase64 } from '@airlock/core';
import { AttestError } from './errors.js';
import { buildQuoteNonce, checkQuote, verifyBuildQuote, type BuildQuote } from './quote-check.js';
import { checkReferenceValueSet, type ReferenceValueSet } from './reference-values.js';
import type { TpmHashName } from './tpm/constants.js';
import { parseTpm2bPublic, tpmName } from './tpm/public.js';

/** internalParameters.nodeAttestation (schemas/slsa-buildtype-airlock-v1.schema.json). */
export interface BuildQuoteRecord {
  /** `sha256:<hex>` of the TPMS_ATTEST the AK signed. */
  quoteDigest: string;
  /** The quote's extraData, hex: buildQuoteNonce(invocationId, specDigest). */
  nonce: string;
  /** TPM Name of the AK, hex: the `ak.name` of the node's attestation claims. */
  akName: string;
  /** The reference value set the quoted PCRs matched (its id is the digest of its content). */
  referenceValues: ReferenceValueSet;
  /** The AK's TPM2B_PUBLIC, base64. */
  akPublic: string;
  /** The quote itself (base64 TPMS_ATTEST and TPMT_SIGNATURE), so anyone can re-verify it. */
  quote: { attest: string; signature: string };
  /** The quoted PCR values. */
  pcrs: { bank: TpmHashName; values: Record<string, string> };
}

/** What the node's attestation claims (token claim / certificate extension) say about the node. */
export interface AttestedNodeRef {
  akName: string;
  referenceValueSetId: string;
}

const rec = (x: unknown): Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};

/** The AK name and reference value set id of node attestation claims JSON; NODE_NOT_ATTESTED when absent. */
export function attestedNodeOf(claimsJson: string | undefined, where: string): AttestedNodeRef {
  if (claimsJson === undefined)
    throw new AttestError('NODE_NOT_ATTESTED', `unattested runner: ${where} carries no node attestation claims`);
  let c: unknown;
  try {
    c = JSON.parse(claimsJson);
  } catch {
    throw new AttestError('EVIDENCE_MALFORMED', `${where}: the node attestation claims are not JSON`);
  }
  const akName = rec(rec(c).ak).name;
  const referenceValueSetId = rec(rec(c).referenceValues).id;
  if (typeof akName !== 'string' || typeof referenceValueSetId !== 'string')
    throw new AttestError(
      'EVIDENCE_MALFORMED',
      `${where}: the node attestation claims lack ak.name or referenceValues.id`,
    );
  return { akName, referenceValueSetId };
}

/** The build quote must come from the attested node's AK and match the set the node was attested against. */
function checkSameNode(akName: string, setId: string, node: AttestedNodeRef): void {
  if (akName !== node.akName)
    throw new AttestError(
      'AK_MISMATCH',
      `build quote from a different TPM: its AK ${akName} is not the attested node's AK ${node.akName}`,
    );
  if (setId !== node.referenceValueSetId)
    throw new AttestError(
      'REFERENCE_VALUE_MISMATCH',
      `the build quote matched reference value set ${setId}, the node was attested against ${node.referenceValueSetId}`,
    );
}

/** Runner side, before dispatch: verify a fresh build quote and turn it into the provenance record. */
export function bindBuildQuote(
  quote: unknown,
  expected: { invocationId: string; specDigest: string; referenceValues: ReferenceValueSet[]; node: AttestedNodeRef },
): BuildQuoteRecord {
  const q = assertBuildQuoteShape(quote);
  const checked = replayNamed(expected, () => verifyBuildQuote(q, expected));
  checkSameNode(checked.akName, checked.referenceValues.id, expected.node);
  return {
    quoteDigest: checked.quoteDigest,
    nonce: checked.quote.extraData.toString('hex'),
    akName: checked.akName,
    referenceValues: checked.referenceValues,
    akPublic: q.akPublic,
    quote: { attest: q.quote.attest, signature: q.quote.signature },
    pcrs: { bank: q.pcrs.bank, values: { ...q.pcrs.values } },
  };
}

/**
 * Verifier side (policy `requireAttestedBuilder`): re-check a recorded build quote against the provenance it sits
 * in and the node claims of the certificate that signed that provenance. Throws an AttestError naming the reason.
 */
export function verifyBuildQuoteRecord(
  record: unknown,
  expected: { invocationId: string; specDigest: string; node: AttestedNodeRef },
): BuildQuoteRecord {
  const r = assertRecordShape(record);
  checkReferenceValueSet(r.referenceValues);
  const quoted = Object.keys(r.pcrs.values).map(Number);
  if (quoted.some((p) => !Number.isInteger(p) || p < 0 || p > 23))
    throw new AttestError('EVIDENCE_MALFORMED', 'nodeAttestation.pcrs: PCR indices must be 0..23');
  const ak = parseTpm2bPublic(fromBase64(r.akPublic));
  const checked = replayNamed(expected, () =>
    checkQuote({
      ak,
      quote: r.quote,
      pcrs: r.pcrs,
      nonce: buildQuoteNonce(expected.invocationId, expected.specDigest),
      selection: { hash: r.pcrs.bank, pcrs: quoted.sort((a, b) => a - b) },
      referenceValues: [r.referenceValues],
    }),
  );
  const digest = `sha256:${createHash('sha256').update(checked.attest).digest('hex')}`;
  const akName = tpmName(ak).toString('hex');
  if (digest !== r.quoteDigest || akName !== r.akName || checked.quote.extraData.toString('hex') !== r.nonce)
    throw new AttestError(
      'EVIDENCE_MALFORMED',
      'nodeAttestation: quoteDigest, akName or nonce do not describe the recorded quote',
    );
  checkSameNode(akName, r.referenceValues.id, expected.node);
  return r;
}

/** A nonce mismatch on a build quote means a quote made for another build (or none): say so. */
function replayNamed<T>(build: { invocationId: string; specDigest: string }, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof AttestError) || err.code !== 'QUOTE_NONCE_MISMATCH') throw err;
    throw new AttestError(
      'QUOTE_NONCE_MISMATCH',
      `replayed build quote: its nonce is not buildQuoteNonce(invocation ${build.invocationId}, spec ${build.specDigest.slice(0, 12)}…) (${err.message})`,
      { cause: err },
    );
  }
}

/** A build quote arrives from the agent's socket: check its shape before use. */
function assertBuildQuoteShape(x: unknown): BuildQuote {
  const r = rec(x);
  const q = rec(r.quote);
  const p = rec(r.pcrs);
  if (
    typeof r.akPublic !== 'string' ||
    typeof q.attest !== 'string' ||
    typeof q.signature !== 'string' ||
    typeof p.bank !== 'string' ||
    Object.values(rec(p.values)).some((v) => typeof v !== 'string')
  )
    throw new AttestError('EVIDENCE_MALFORMED', 'build quote needs akPublic, quote.attest, quote.signature and pcrs');
  return x as BuildQuote;
}

function assertRecordShape(x: unknown): BuildQuoteRecord {
  const bad = (what: string): never => {
    throw new AttestError('EVIDENCE_MALFORMED', `nodeAttestation: ${what}`);
  };
  const r = rec(x);
  for (const k of ['quoteDigest', 'nonce', 'akName', 'akPublic'] as const)
    if (typeof r[k] !== 'string') bad(`${k} must be a string`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(r.akPublic as string)) bad('akPublic is not base64');
  const q = rec(r.quote);
  if (typeof q.attest !== 'string' || typeof q.signature !== 'string')
    bad('quote needs attest and signature (the build quote itself is required to verify it)');
  const p = rec(r.pcrs);
  const values = rec(p.values);
  if (typeof p.bank !== 'string' || !['sha1', 'sha256', 'sha384', 'sha512'].includes(p.bank))
    bad('pcrs.bank is not a supported bank');
  if (Object.values(values).some((v) => typeof v !== 'string')) bad('pcrs.values must be hex strings');
  const set = rec(r.referenceValues);
  if (typeof set.id !== 'string' || typeof set.bank !== 'string' || Object.keys(rec(set.pcrs)).length === 0)
    bad('referenceValues needs id, bank and pcrs');
  return {
    ...(r as unknown as BuildQuoteRecord),
    referenceValues: { ...(set as unknown as ReferenceValueSet), name: typeof set.name === 'string' ? set.name : '' },
  };
}
