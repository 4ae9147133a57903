/**
 * NodeAttestationVerifier: the issuer side of TPM node attestation. Per node: check the EK certificate against the
 * configured manufacturer CA, challenge the AK↔EK binding with MakeCredential and a fresh nonce, then accept a quote
 * only if the AK signed it over that nonce and the quoted PCRs equal one configured reference value set.
 */
import { createHash, randomBytes, randomUUID, type X509Certificate } from 'node:crypto';
import { fromBase64, sha256Hex, toBase64 } from '@airlock/core';
import type { NodeAttestationClaims } from './claims.js';
import { AttestError } from './errors.js';
import type { AttestationChallenge, TpmEvidence, TpmIdentity } from './evidence.js';
import type { ReferenceValueSet } from './reference-values.js';
import { checkQuote, selectionOf } from './quote-check.js';
import { makeCredential } from './tpm/credential.js';
import { verifyEkCertificate } from './tpm/ek.js';
import {
  assertAttestationKey,
  parseTpm2bPublic,
  publicKeyObject,
  spkiDer,
  tpmName,
  type TpmPublic,
} from './tpm/public.js';
import { buffersEqual, type PcrSelection, type TpmQuote } from './tpm/quote.js';
import { parsePemBundle } from './x509-chain.js';

export interface NodeAttestationVerifierOptions {
  /** PEM: the TPM manufacturers' root CAs the operator trusts (swtpm's local root CA in tests). */
  manufacturerRoots: string;
  /** PEM: manufacturer intermediates the operator configured (optional; nodes may also present them). */
  manufacturerIntermediates?: string;
  /** Accepted reference value sets (all in one PCR bank); a quote must match one of them exactly. */
  referenceValues: ReferenceValueSet[];
  /** When set, only these EKs (`sha256:<hex>` of the EK SubjectPublicKeyInfo) may attest: registered nodes. */
  allowedEkPublicKeyDigests?: string[];
  /** Seconds a challenge stays answerable (default 60). */
  challengeTtlSeconds?: number;
  /** Outstanding challenges kept at most (default 1024); more are refused rather than evicting others. */
  maxPendingChallenges?: number;
  now?: () => Date;
}

export interface AttestedNode {
  claims: NodeAttestationClaims;
  ekCertificate: X509Certificate;
  akPublic: TpmPublic;
}

interface ParsedIdentity {
  raw: TpmIdentity;
  ekCert: X509Certificate;
  ekPublic: TpmPublic;
  akPublic: TpmPublic;
  akName: Buffer;
}

interface Pending {
  identity: ParsedIdentity;
  nonce: Buffer;
  secret: Buffer;
  expiresAt: number;
}

const digestOf = (b: Buffer): string => `sha256:${sha256Hex(b)}`;

function sameIdentity(a: TpmIdentity, b: TpmIdentity): boolean {
  return a.ekCertificate === b.ekCertificate && a.ekPublic === b.ekPublic && a.akPublic === b.akPublic;
}

export class NodeAttestationVerifier {
  private readonly roots: X509Certificate[];
  private readonly intermediates: X509Certificate[];
  private readonly selection: PcrSelection;
  private readonly pending = new Map<string, Pending>();
  private readonly now: () => Date;

  constructor(private readonly opts: NodeAttestationVerifierOptions) {
    this.roots = parsePemBundle(opts.manufacturerRoots, 'manufacturer root', 'EK_CERT_UNTRUSTED');
    if (this.roots.length === 0) throw new AttestError('EK_CERT_UNTRUSTED', 'no manufacturer root CA configured');
    this.intermediates = parsePemBundle(
      opts.manufacturerIntermediates ?? '',
      'manufacturer intermediate',
      'EK_CERT_UNTRUSTED',
    );
    this.selection = selectionOf(opts.referenceValues);
    this.now = opts.now ?? (() => new Date());
  }

  /** PCRs every quote must cover: the union of the reference value sets' PCRs. */
  get pcrSelection(): AttestationChallenge['pcrSelection'] {
    return { bank: this.selection.hash, pcrs: [...this.selection.pcrs] };
  }

  /** Checks the node's identity and issues a single-use challenge bound to its EK and AK. */
  challenge(identity: TpmIdentity): AttestationChallenge {
    const parsed = this.parseIdentity(identity);
    const now = this.now().getTime();
    for (const [id, p] of this.pending) if (p.expiresAt < now) this.pending.delete(id);
    if (this.pending.size >= (this.opts.maxPendingChallenges ?? 1024))
      throw new AttestError('TOO_MANY_CHALLENGES', 'too many outstanding attestation challenges; retry later');
    const nonce = randomBytes(32);
    const secret = randomBytes(32);
    const made = makeCredential(parsed.ekPublic, secret, parsed.akName);
    const expiresAt = now + (this.opts.challengeTtlSeconds ?? 60) * 1000;
    const id = randomUUID();
    this.pending.set(id, { identity: parsed, nonce, secret, expiresAt });
    return {
      id,
      nonce: nonce.toString('hex'),
      pcrSelection: { bank: this.selection.hash, pcrs: [...this.selection.pcrs] },
      credential: { blob: toBase64(made.credentialBlob), encryptedSecret: toBase64(made.encryptedSecret) },
      expiresAt: new Date(expiresAt).toISOString(),
    };
  }

  /** Verifies evidence answering one of this verifier's challenges (consumed whether it passes or not). */
  verify(evidence: TpmEvidence): AttestedNode {
    assertEvidenceShape(evidence);
    const pending = this.take(evidence.challengeId);
    const id = pending.identity;
    if (!sameIdentity(evidence.identity, id.raw))
      throw new AttestError(
        'AK_MISMATCH',
        'evidence names a different EK or AK than the one the challenge was issued for',
      );
    if (!buffersEqual(decode(evidence.activatedCredential, 'activatedCredential'), pending.secret))
      throw new AttestError(
        'ACTIVATION_FAILED',
        'credential activation failed: the AK is not resident in the TPM that owns the certified EK',
      );
    const {
      attest,
      quote,
      values,
      referenceValues: set,
    } = checkQuote({
      ak: id.akPublic,
      quote: evidence.quote,
      pcrs: evidence.pcrs,
      nonce: pending.nonce,
      selection: this.selection,
      referenceValues: this.opts.referenceValues,
    });
    return { claims: this.claims(id, attest, quote, values, set), ekCertificate: id.ekCert, akPublic: id.akPublic };
  }

  private parseIdentity(identity: TpmIdentity): ParsedIdentity {
    const ekPublic = parseTpm2bPublic(decode(identity.ekPublic, 'ekPublic'));
    const intermediates = (identity.ekIntermediates ?? []).map((c, i) => decode(c, `ekIntermediates[${i}]`));
    const ekCert = verifyEkCertificate(
      decode(identity.ekCertificate, 'ekCertificate'),
      intermediates,
      ekPublic,
      { roots: this.roots, intermediates: this.intermediates },
      this.now(),
    );
    const allowed = this.opts.allowedEkPublicKeyDigests;
    const ekDigest = digestOf(spkiDer(publicKeyObject(ekPublic)));
    if (allowed && !allowed.includes(ekDigest))
      throw new AttestError('EK_NOT_ALLOWED', `EK ${ekDigest} is not a registered node`);
    const akPublic = parseTpm2bPublic(decode(identity.akPublic, 'akPublic'));
    assertAttestationKey(akPublic);
    return { raw: identity, ekCert, ekPublic, akPublic, akName: tpmName(akPublic) };
  }

  private take(challengeId: string): Pending {
    const pending = this.pending.get(challengeId);
    if (!pending)
      throw new AttestError(
        'CHALLENGE_UNKNOWN',
        `challenge ${JSON.stringify(String(challengeId).slice(0, 64))} is unknown or already used (replayed evidence)`,
      );
    this.pending.delete(challengeId);
    if (pending.expiresAt < this.now().getTime())
      throw new AttestError(
        'CHALLENGE_EXPIRED',
        `challenge ${challengeId} expired at ${new Date(pending.expiresAt).toISOString()}`,
      );
    return pending;
  }

  private claims(
    id: ParsedIdentity,
    attest: Buffer,
    quote: TpmQuote,
    values: Map<number, Buffer>,
    set: ReferenceValueSet,
  ): NodeAttestationClaims {
    return {
      version: 1,
      type: 'tpm2',
      ek: {
        certificateDigest: digestOf(id.ekCert.raw),
        publicKeyDigest: digestOf(spkiDer(publicKeyObject(id.ekPublic))),
        issuer: id.ekCert.issuer.replace(/\n/g, ', '),
      },
      ak: { name: id.akName.toString('hex'), publicKeyDigest: digestOf(spkiDer(publicKeyObject(id.akPublic))) },
      pcrs: {
        bank: this.selection.hash,
        values: Object.fromEntries(
          [...values].sort(([a], [b]) => a - b).map(([k, v]) => [String(k), v.toString('hex')]),
        ),
      },
      referenceValues: { id: set.id, name: set.name },
      quote: {
        digest: `sha256:${createHash('sha256').update(attest).digest('hex')}`,
        nonce: quote.extraData.toString('hex'),
        resetCount: quote.clock.resetCount,
        restartCount: quote.clock.restartCount,
        firmwareVersion: quote.firmwareVersion.toString(16).padStart(16, '0'),
      },
      attestedAt: this.now().toISOString(),
    };
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Evidence arrives over the wire: check its shape before touching it, so a malformed one fails with a code. */
function assertEvidenceShape(e: unknown): asserts e is TpmEvidence {
  const bad = (what: string): never => {
    throw new AttestError('EVIDENCE_MALFORMED', `TPM evidence: ${what}`);
  };
  if (!isObject(e) || e.kind !== 'tpm2') bad('kind must be "tpm2"');
  const ev = e as Record<string, unknown>;
  if (typeof ev.challengeId !== 'string') bad('challengeId must be a string');
  if (typeof ev.activatedCredential !== 'string') bad('activatedCredential must be a string');
  const id = ev.identity;
  if (!isObject(id) || ['ekCertificate', 'ekPublic', 'akPublic'].some((k) => typeof id[k] !== 'string'))
    bad('identity needs ekCertificate, ekPublic and akPublic strings');
  const q = ev.quote;
  if (!isObject(q) || typeof q.attest !== 'string' || typeof q.signature !== 'string')
    bad('quote needs attest and signature strings');
  const p = ev.pcrs;
  if (
    !isObject(p) ||
    typeof p.bank !== 'string' ||
    !isObject(p.values) ||
    Object.values(p.values).some((v) => typeof v !== 'string')
  )
    bad('pcrs needs a bank and string values');
}

function decode(b64: unknown, what: string): Buffer {
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
    throw new AttestError('EVIDENCE_MALFORMED', `${what} is not base64`);
  return fromBase64(b64);
}
