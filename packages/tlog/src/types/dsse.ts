import {
  canonicalBytes,
  decodeDsseBase64,
  INTOTO_PAYLOAD_TYPE,
  parseDsseEnvelope,
  preAuthEncoding,
  type DsseEnvelope,
} from '@airlock/core';
import { createHash } from 'node:crypto';
import { TlogError } from '../errors.js';
import { hashLeaf } from '../merkle.js';
import { parseVerifierBase64, type VerifierKey } from '../pki.js';
import { artifactKey, field, invalid, isObject, signerKey, type PreparedEntry } from './common.js';
import type { Json } from './common.js';
import { prepareSync, type Preparation } from './preparation.js';

/**
 * dsse 0.0.1 (rekor `pkg/types/dsse/v0.0.1/entry.go`). Proposed as `{proposedContent:{envelope: "<JSON>",
 * verifiers: [b64 PEM]}}`; every envelope signature must verify over the PAE with one of the verifiers. The
 * canonical spec drops proposedContent: `{envelopeHash, payloadHash, signatures:[{signature, verifier}]}`, with
 * envelopeHash = SHA-256 of the envelope string as sent, payloadHash = SHA-256 of the decoded payload, signatures
 * sorted by signature string and each verifier in canonical PEM form.
 */
export const DSSE_API_VERSION = '0.0.1';

const MAX_VERIFIERS = 16;
const MAX_SIGNATURES = 16;
const MAX_SUBJECTS = 1024;

export function prepareDsse(spec: Json): PreparedEntry {
  return prepareSync(dssePreparation(spec));
}

/** prepareDsse as a `Preparation`: it yields each envelope signature's check against each verifier in turn. */
export function* dssePreparation(spec: Json): Preparation {
  if (spec.envelopeHash !== undefined || spec.payloadHash !== undefined || spec.signatures !== undefined) {
    invalid('dsse: send spec.proposedContent only; envelopeHash, payloadHash and signatures are computed by the log');
  }
  const proposed = field(spec, 'proposedContent', 'spec');
  const envelopeText = proposed.envelope;
  if (typeof envelopeText !== 'string' || envelopeText === '')
    invalid('spec.proposedContent.envelope must be the DSSE envelope as a JSON string');
  let envelope: DsseEnvelope;
  try {
    envelope = parseDsseEnvelope(JSON.parse(envelopeText as string));
  } catch (err) {
    throw new TlogError('TLOG_INVALID_ENTRY', `spec.proposedContent.envelope: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (envelope.signatures.length > MAX_SIGNATURES) invalid(`dsse: more than ${MAX_SIGNATURES} envelope signatures`);
  const rawVerifiers = proposed.verifiers;
  if (!Array.isArray(rawVerifiers) || rawVerifiers.length === 0)
    invalid('spec.proposedContent.verifiers must be a non-empty array of base64 PEM keys or certificates');
  if (rawVerifiers.length > MAX_VERIFIERS) invalid(`spec.proposedContent.verifiers: more than ${MAX_VERIFIERS}`);
  const verifiers = rawVerifiers.map((v, i) => parseVerifierBase64(v, `spec.proposedContent.verifiers[${i}]`));

  const payload = decodeDsseBase64(envelope.payload)!;
  const pae = preAuthEncoding(envelope.payloadType, payload);
  // Rekor keys its result by signature string, so a repeated signature is logged once.
  const bySignature = new Map<string, VerifierKey>();
  for (const [i, s] of envelope.signatures.entries()) {
    if (bySignature.has(s.sig)) continue;
    const sig = decodeDsseBase64(s.sig)!;
    let match: VerifierKey | undefined;
    for (const v of verifiers) {
      const algorithm = v.key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
      if (yield { key: v.key, algorithm, message: pae, signature: sig }) {
        match = v;
        break;
      }
    }
    if (!match)
      throw new TlogError(
        'TLOG_SIGNATURE_INVALID',
        `dsse: envelope signature ${i} does not verify over the PAE with any of the ${verifiers.length} verifier(s)`,
      );
    bySignature.set(s.sig, match);
  }
  const signatures = [...bySignature.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([signature, v]) => ({ signature, verifier: Buffer.from(v.canonicalPem).toString('base64') }));

  const payloadHash = createHash('sha256').update(payload).digest('hex');
  const envelopeHash = createHash('sha256')
    .update(envelopeText as string, 'utf8')
    .digest('hex');
  const body = canonicalBytes({
    apiVersion: DSSE_API_VERSION,
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: envelopeHash },
      payloadHash: { algorithm: 'sha256', value: payloadHash },
      signatures,
    },
  });
  const indexKeys = new Set<string>([artifactKey('sha256', payloadHash), artifactKey('sha256', envelopeHash)]);
  for (const v of bySignature.values()) indexKeys.add(signerKey(v.fingerprint));
  if (envelope.payloadType === INTOTO_PAYLOAD_TYPE) for (const k of inTotoSubjectKeys(payload)) indexKeys.add(k);
  return { kind: 'dsse', apiVersion: DSSE_API_VERSION, body, leafHash: hashLeaf(body), indexKeys: [...indexKeys] };
}

/** Subject digests of an in-toto statement, for the search index (as Rekor indexes them). Best effort. */
function inTotoSubjectKeys(payload: Buffer): string[] {
  let statement: unknown;
  try {
    statement = JSON.parse(payload.toString('utf8'));
  } catch {
    return [];
  }
  if (!isObject(statement) || !Array.isArray(statement.subject)) return [];
  const keys: string[] = [];
  for (const subject of statement.subject.slice(0, MAX_SUBJECTS)) {
    if (!isObject(subject) || !isObject(subject.digest)) continue;
    for (const [alg, value] of Object.entries(subject.digest)) {
      if (/^[a-z0-9_-]{1,32}$/i.test(alg) && typeof value === 'string' && /^[0-9a-f]{16,128}$/i.test(value))
        keys.push(artifactKey(alg, value));
    }
  }
  return keys;
}
