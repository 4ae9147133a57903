import { createHash, createPublicKey, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import type { Bundle, MessageSignature, TransparencyLogEntry } from '@sigstore/bundle';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, type SignedEntity, type TrustMaterial } from '@sigstore/verify';
import type { RFC3161Timestamp } from '@sigstore/core';
import {
  INTOTO_PAYLOAD_TYPE,
  findMatchingSubject,
  preAuthEncoding,
  parseStatement,
  sha256Hex,
  type DigestSet,
  type Statement,
} from '@airlock/core';
import { VerifyError, fromSigstoreError } from './errors.js';
import { buildTrustMaterial, parseTrustedRoot } from './trusted-root.js';
import { quietParse } from './quiet-parse.js';
import { leafOf, nodeAttestationOf, type ParsedLeaf } from './leaf.js';
import { decodeBundle } from './strict-bundle.js';
import { checkWitnesses, parseWitnessPolicy, type WitnessPolicy } from './witness.js';

const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';

/**
 * Who may have signed. Certificate bundles always need one; each of subject and issuer is matched exactly or by
 * an anchored regular expression (exactly one of the two forms each).
 */
export interface IdentityPolicy {
  /** Exact subject alternative name (URI such as a SPIFFE ID, or email). */
  subject?: string;
  /** Regular expression for the SAN; always anchored (`^(?:…)$`), never a substring match. */
  subjectRegExp?: string;
  /** Exact OIDC issuer URL (certificate extension 1.3.6.1.4.1.57264.1.8, falling back to .1.1). */
  issuer?: string;
  /** Regular expression for the OIDC issuer URL; anchored like `subjectRegExp`. */
  issuerRegExp?: string;
}

export interface VerifyBundleOptions {
  /** The artifact bytes. Required for message signatures; for DSSE its sha256 must equal an in-toto subject. */
  artifact?: Buffer;
  /** The artifact's digests, when the bytes are not at hand (DSSE only). */
  artifactDigest?: DigestSet;
  /** Required for certificate-signed bundles unless `allowAnyIdentity` is set. */
  policy?: IdentityPolicy;
  /** Accept any signer identity (only for tooling that applies its own policy afterwards). */
  allowAnyIdentity?: boolean;
  /** DSSE payload type to insist on (default: in-toto). */
  expectedPayloadType?: string;
  /** in-toto predicate type to insist on. */
  expectedPredicateType?: string;
  /** Subject name to match (with the digest), when a statement names several artifacts. */
  subjectName?: string;
}

export interface VerifiedTlogEntry {
  logIndex: number;
  integratedTime: number;
  logId: string;
  kind: string;
}

/** A verified time the signature existed at: an RFC 3161 token, or a v1 log entry's SET-backed integrated time. */
export interface VerifiedTimestamp {
  source: 'timestamp-authority' | 'transparency-log';
  time: string;
}

export interface VerificationResult {
  content: 'messageSignature' | 'dsseEnvelope';
  /** The verified timestamps (at least the threshold; the certificate was valid at each). */
  timestamps: VerifiedTimestamp[];
  signer: {
    subjectAlternativeName?: string;
    issuer?: string;
    keyHint?: string;
    /** Attested node claims (canonical JSON) from the verified leaf's extension under the project's OID arc. */
    nodeAttestation?: string;
  };
  certificate?: { serialNumber: string; notBefore: string; notAfter: string };
  tlogEntries: VerifiedTlogEntry[];
  payloadType?: string;
  payload?: Buffer;
  statement?: Statement;
}

export interface BundleVerifierOptions {
  /** Out-of-band public keys (PEM, by hint) for key-signed bundles. */
  publicKeys?: Record<string, string>;
  /** Minimum number of verified transparency-log entries (default 1: a bundle that was never logged fails). */
  tlogThreshold?: number;
  /**
   * Minimum number of verified timestamps: RFC 3161 tokens from a trusted TSA plus SET-backed integrated times of
   * v1 log entries (default 1 for certificate bundles, 0 for key bundles, which have no validity window).
   */
  timestampThreshold?: number;
  /**
   * Minimum number of verified signed certificate timestamps (RFC 6962 SCTs from the trusted root's `ctlogs`) in
   * the signing certificate (default 0: the plane's CA logs to no CT log). SCTs a certificate carries are checked
   * whatever the threshold: one that does not verify refuses the bundle.
   */
  ctlogThreshold?: number;
  /** Require C2SP witness cosignatures on every log entry's checkpoint (Ed25519 vkeys, at least `threshold`). */
  witnesses?: WitnessPolicy;
}

/**
 * Verifies Sigstore bundles against a trusted root with @sigstore/verify, then performs what it leaves out:
 * a message signature's digest against the artifact, an anchored identity policy, code-signing key usage on the
 * leaf, DSSE payloadType, the in-toto subject digest against the artifact, and that each tlog entry's body names
 * the bundle's certificate or the configured key. Build one per trusted root and reuse it: trust material is
 * parsed once.
 */
export class BundleVerifier {
  private readonly trust: TrustMaterial;
  private readonly verifier: Verifier;
  private readonly tlogThreshold: number;
  private readonly witnesses: { keys: ReturnType<typeof parseWitnessPolicy>; threshold: number } | undefined;

  constructor(trustedRoot: unknown, options: BundleVerifierOptions = {}) {
    this.witnesses = options.witnesses && {
      keys: parseWitnessPolicy(options.witnesses),
      threshold: options.witnesses.threshold,
    };
    const root = parseTrustedRoot(trustedRoot);
    this.trust = buildTrustMaterial(root, options.publicKeys);
    this.tlogThreshold = options.tlogThreshold ?? 1;
    const timestampThreshold = options.timestampThreshold ?? (options.publicKeys ? 0 : 1);
    if (!Number.isInteger(timestampThreshold) || timestampThreshold < 0)
      throw new VerifyError('VERIFY_TIMESTAMP', `timestamp threshold must be a non-negative integer`);
    const ctlogThreshold = options.ctlogThreshold ?? 0;
    if (!Number.isInteger(ctlogThreshold) || ctlogThreshold < 0)
      throw new VerifyError('VERIFY_CERTIFICATE', `ctlog threshold must be a non-negative integer`);
    // No CT log in an air-gapped plane (ctlogThreshold 0 unless the operator asks for SCTs). Trusted times: the
    // TSA's tokens and v1 entries' SETs.
    this.verifier = new Verifier(this.trust, {
      ctlogThreshold,
      tlogThreshold: this.tlogThreshold,
      timestampThreshold,
    });
  }

  verify(bundleJson: unknown, options: VerifyBundleOptions = {}): VerificationResult {
    const bundle = decodeBundle(bundleJson);
    const isDsse = bundle.content.$case === 'dsseEnvelope';
    if (!isDsse && !options.artifact) {
      throw new VerifyError(
        'VERIFY_ARTIFACT_REQUIRED',
        'a message-signature bundle can only be verified against the artifact bytes',
      );
    }
    // Before anything else: the digest the bundle (and so its log entry) records must be the artifact's, or the
    // log would vouch for another artifact than the one the signature is checked over.
    if (bundle.content.$case === 'messageSignature')
      checkMessageDigest(bundle.content.messageSignature, options.artifact!);
    const material = bundle.verificationMaterial.content;
    const isCertificate = material.$case !== 'publicKey';
    if (isCertificate && !options.policy && !options.allowAnyIdentity) {
      throw new VerifyError(
        'VERIFY_POLICY',
        'an identity policy (certificate identity and OIDC issuer) is required for certificate-signed bundles',
      );
    }
    if (options.policy) compilePolicy(options.policy); // a malformed policy is refused before any bundle check

    // Check the signature itself first, so a damaged signature is reported as such rather than as a log-body
    // mismatch (the log entry records the original signature).
    const leaf = leafOf(bundle);
    if (leaf) verifyContentSignature(bundle, options.artifact, leaf.node.publicKey);

    let identity: { subjectAlternativeName?: string; issuer?: string };
    let entity: SignedEntity;
    try {
      // The same leaf, parsed once here with memoised encodings (see MemoCertificate): toSignedEntity is not
      // given the certificate to parse a second copy of.
      entity = leaf ? leafEntity(bundle, options.artifact, leaf) : toSignedEntity(bundle, options.artifact);
      const signer = this.verifier.verify(entity);
      identity = {
        subjectAlternativeName: signer.identity?.subjectAlternativeName,
        issuer: signer.identity?.extensions?.issuer,
      };
    } catch (err) {
      throw fromSigstoreError(err);
    }

    // @sigstore/verify takes tree size and root from the signed checkpoint and ignores the proof's own copies; a
    // disagreement between the two means the bundle was altered, so refuse it.
    for (const entry of bundle.verificationMaterial.tlogEntries) checkProofMatchesCheckpoint(entry);
    if (this.witnesses) {
      for (const entry of bundle.verificationMaterial.tlogEntries)
        checkWitnesses(entry, this.witnesses.keys, this.witnesses.threshold);
    }

    const result: VerificationResult = {
      content: bundle.content.$case,
      timestamps: verifiedTimestamps(bundle, entity),
      signer: {},
      tlogEntries: bundle.verificationMaterial.tlogEntries.map(describeEntry),
    };

    if (material.$case === 'publicKey') {
      result.signer.keyHint = material.publicKey.hint;
      const configured = this.trust.publicKey(material.publicKey.hint).publicKey;
      for (const entry of bundle.verificationMaterial.tlogEntries) checkBodyNamesKey(entry, configured);
    }

    if (leaf) {
      checkCodeSigningUsage(leaf);
      const san = identity.subjectAlternativeName;
      const issuer = identity.issuer;
      if (san !== undefined) result.signer.subjectAlternativeName = san;
      if (issuer !== undefined) result.signer.issuer = issuer;
      const nodeAttestation = nodeAttestationOf(leaf);
      if (nodeAttestation !== undefined) result.signer.nodeAttestation = nodeAttestation;
      result.certificate = {
        serialNumber: leaf.node.serialNumber,
        notBefore: new Date(leaf.notBefore).toISOString(),
        notAfter: new Date(leaf.notAfter).toISOString(),
      };
      if (options.policy) checkPolicy(options.policy, san, issuer);
      for (const entry of bundle.verificationMaterial.tlogEntries) checkBodyNamesCertificate(entry, leaf.der);
    }

    if (bundle.content.$case === 'dsseEnvelope') {
      const env = bundle.content.dsseEnvelope;
      const expectedType = options.expectedPayloadType ?? INTOTO_PAYLOAD_TYPE;
      if (env.payloadType !== expectedType) {
        throw new VerifyError(
          'VERIFY_PAYLOAD_TYPE',
          `DSSE payloadType is '${env.payloadType}', expected '${expectedType}'`,
        );
      }
      result.payloadType = env.payloadType;
      result.payload = Buffer.from(env.payload);
      if (env.payloadType === INTOTO_PAYLOAD_TYPE) {
        let statement: Statement;
        try {
          statement = parseStatement(env.payload);
        } catch (cause) {
          throw new VerifyError('VERIFY_STATEMENT', (cause as Error).message, { cause });
        }
        if (options.expectedPredicateType && statement.predicateType !== options.expectedPredicateType) {
          throw new VerifyError(
            'VERIFY_STATEMENT',
            `predicateType is '${statement.predicateType}', expected '${options.expectedPredicateType}'`,
          );
        }
        const digest =
          options.artifactDigest ?? (options.artifact ? { sha256: sha256Hex(options.artifact) } : undefined);
        if (digest) {
          try {
            findMatchingSubject(statement, digest, options.subjectName);
          } catch (cause) {
            throw new VerifyError('VERIFY_SUBJECT_MISMATCH', (cause as Error).message, { cause });
          }
        }
        result.statement = statement;
      }
    }
    return result;
  }
}

/**
 * The signed entity @sigstore/verify checks, with the leaf parsed once (not given to toSignedEntity to parse a
 * second copy). The signature has just been checked over the same bytes with the leaf's key by
 * verifyContentSignature: where @sigstore/verify's own check is the very same one, it is answered from that.
 */
function leafEntity(bundle: Bundle, artifact: Buffer | undefined, leaf: ParsedLeaf): SignedEntity {
  const entity = quietParse(() => toSignedEntity(withoutLeaf(bundle), artifact));
  const key = leaf.node.publicKey;
  const signature = sameCheck(bundle, key) ? alreadyChecked(entity.signature, key) : entity.signature;
  return { ...entity, signature, key: { $case: 'certificate', certificate: leaf.cert } };
}

/**
 * Whether @sigstore/verify's signature check with `key` is exactly verifyContentSignature's (same bytes, key and
 * digest). DSSE: it passes no algorithm, which is OpenSSL's default (SHA-256 for EC keys, none for Ed25519), and we
 * pass 'sha256' / null. Message signature: it passes the messageDigest's algorithm, we 'sha256' (EC keys only).
 */
function sameCheck(bundle: Bundle, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  if (bundle.content.$case === 'dsseEnvelope') return type === 'ec' || type === 'ed25519';
  return type === 'ec' && bundle.content.messageSignature.messageDigest?.algorithm === HashAlgorithm.SHA2_256;
}

type SignatureContent = SignedEntity['signature'];

/**
 * A signature whose check with `key` has just passed (verifyContentSignature): asked again with that same key (the
 * signer's key is the leaf's KeyObject, see MemoCertificate.adoptKey), the same verification is not run twice.
 * Any other key is checked as before.
 */
function alreadyChecked(content: SignatureContent, key: KeyObject): SignatureContent {
  return {
    signature: content.signature,
    compareSignature: (s) => content.compareSignature(s),
    compareDigest: (d) => content.compareDigest(d),
    verifySignature: (k) => k === key || content.verifySignature(k),
  };
}

/** The bundle as toSignedEntity sees it when the leaf is supplied separately (its key part is replaced). */
function withoutLeaf(bundle: Bundle): Bundle {
  const content = { $case: 'publicKey' as const, publicKey: { hint: '' } };
  return { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, content } };
}

function verifyContentSignature(bundle: Bundle, artifact: Buffer | undefined, key: KeyObject): void {
  const alg = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  let ok: boolean;
  if (bundle.content.$case === 'dsseEnvelope') {
    const env = bundle.content.dsseEnvelope;
    if (env.signatures.length !== 1)
      throw new VerifyError(
        'VERIFY_BUNDLE_MALFORMED',
        `DSSE envelope must carry exactly one signature, has ${env.signatures.length}`,
      );
    ok = cryptoVerify(
      alg,
      preAuthEncoding(env.payloadType, Buffer.from(env.payload)),
      key,
      Buffer.from(env.signatures[0]!.sig),
    );
  } else {
    ok = cryptoVerify(alg, artifact!, key, Buffer.from(bundle.content.messageSignature.signature));
  }
  if (!ok)
    throw new VerifyError(
      'VERIFY_SIGNATURE',
      'signature does not verify with the signing key (artifact or signature altered)',
    );
}

function checkProofMatchesCheckpoint(entry: TransparencyLogEntry): void {
  const proof = entry.inclusionProof;
  if (!proof) return;
  const lines = (proof.checkpoint?.envelope ?? '').split('\n');
  const size = lines[1];
  const root = lines[2] ? Buffer.from(lines[2], 'base64') : undefined;
  if (size !== String(proof.treeSize) || !root || !root.equals(Buffer.from(proof.rootHash))) {
    throw new VerifyError(
      'VERIFY_TLOG_PROOF',
      'inclusion proof tree size or root hash differs from its signed checkpoint',
    );
  }
}

/**
 * The times @sigstore/verify has just checked: every RFC 3161 token (each must verify; the tokens it parsed for
 * that, in bundle order) and every SET.
 */
function verifiedTimestamps(bundle: Bundle, entity: SignedEntity): VerifiedTimestamp[] {
  const tokens: RFC3161Timestamp[] = [];
  for (const t of entity.timestamps) if (t.$case === 'timestamp-authority') tokens.push(t.timestamp);
  return [
    ...tokens.map((t) => ({
      source: 'timestamp-authority' as const,
      time: t.signingTime.toISOString(),
    })),
    ...bundle.verificationMaterial.tlogEntries
      .filter((e) => e.inclusionPromise !== undefined)
      .map((e) => ({
        source: 'transparency-log' as const,
        time: new Date(Number(e.integratedTime) * 1000).toISOString(),
      })),
  ];
}

function describeEntry(e: TransparencyLogEntry): VerifiedTlogEntry {
  return {
    logIndex: Number(e.logIndex),
    integratedTime: Number(e.integratedTime),
    logId: Buffer.from(e.logId?.keyId ?? []).toString('hex'),
    kind: e.kindVersion?.kind ?? '',
  };
}

/** The leaf must be a code-signing certificate: KeyUsage digitalSignature and EKU codeSigning. */
function checkCodeSigningUsage(leaf: ParsedLeaf): void {
  if (!leaf.cert.extKeyUsage?.digitalSignature) {
    throw new VerifyError('VERIFY_KEY_USAGE', 'signing certificate lacks the digitalSignature key usage');
  }
  const eku = leaf.node.keyUsage ?? [];
  if (!eku.includes(EKU_CODE_SIGNING)) {
    throw new VerifyError('VERIFY_KEY_USAGE', 'signing certificate lacks the codeSigning extended key usage');
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An anchored matcher for an exact value or a regular expression; an invalid expression is a policy error. */
function anchored(what: string, exact: string | undefined, pattern: string | undefined): RegExp {
  const source = exact !== undefined ? escapeRegExp(exact) : pattern!;
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (cause) {
    throw new VerifyError('VERIFY_POLICY', `${what} regular expression is invalid: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Checks the policy's own shape: one subject form and one issuer form, and valid regular expressions. */
export function compilePolicy(policy: IdentityPolicy): { subject: RegExp; issuer: RegExp } {
  const forms = (a: unknown, b: unknown): number => Number(a !== undefined) + Number(b !== undefined);
  if (forms(policy.subject, policy.subjectRegExp) !== 1) {
    throw new VerifyError('VERIFY_POLICY', 'identity policy must name its subject exactly or by regular expression');
  }
  if (forms(policy.issuer, policy.issuerRegExp) !== 1) {
    throw new VerifyError('VERIFY_POLICY', 'identity policy must name its issuer exactly or by regular expression');
  }
  return {
    subject: anchored('identity', policy.subject, policy.subjectRegExp),
    issuer: anchored('issuer', policy.issuer, policy.issuerRegExp),
  };
}

export function checkPolicy(policy: IdentityPolicy, san: string | undefined, issuer: string | undefined): void {
  const re = compilePolicy(policy);
  if (san === undefined || !re.subject.test(san)) {
    const wanted = policy.subject !== undefined ? `'${policy.subject}'` : `/${policy.subjectRegExp}/`;
    throw new VerifyError('VERIFY_POLICY', `certificate identity '${san ?? '(none)'}' does not match ${wanted}`, {
      details: { subjectAlternativeName: san },
    });
  }
  if (issuer === undefined || !re.issuer.test(issuer)) {
    const wanted = policy.issuer !== undefined ? `'${policy.issuer}'` : `/${policy.issuerRegExp}/`;
    throw new VerifyError('VERIFY_POLICY', `certificate OIDC issuer '${issuer ?? '(none)'}' does not match ${wanted}`, {
      details: { issuer },
    });
  }
}

const DIGEST_ALGORITHMS: Partial<Record<HashAlgorithm, string>> = {
  [HashAlgorithm.SHA2_256]: 'sha256',
  [HashAlgorithm.SHA2_384]: 'sha384',
  [HashAlgorithm.SHA2_512]: 'sha512',
};

/**
 * @sigstore/verify checks the signature over the artifact and compares the log body's digest with the bundle's
 * messageDigest, but never the messageDigest with the artifact: a signer holding the key can make one ECDSA
 * signature valid over the artifact and over another digest, and have the log record that other digest.
 */
function checkMessageDigest(signature: MessageSignature, artifact: Buffer): void {
  const md = signature.messageDigest;
  const alg = md ? DIGEST_ALGORITHMS[md.algorithm] : undefined;
  if (!md || !alg) {
    throw new VerifyError(
      'VERIFY_MESSAGE_DIGEST',
      `messageSignature.messageDigest algorithm ${md ? HashAlgorithm[md.algorithm] : '(none)'} is not SHA2_256, SHA2_384 or SHA2_512`,
    );
  }
  const bundleDigest = `${alg}:${Buffer.from(md.digest).toString('hex')}`;
  const artifactDigest = `${alg}:${createHash(alg).update(artifact).digest('hex')}`;
  if (bundleDigest !== artifactDigest) {
    throw new VerifyError(
      'VERIFY_MESSAGE_DIGEST',
      `messageSignature.messageDigest ${bundleDigest} is not the artifact's digest ${artifactDigest}`,
      { details: { bundleDigest, artifactDigest } },
    );
  }
}

interface BodySigner {
  kind: 'certificate' | 'publicKey';
  der: Buffer;
}

function pemSigners(b64: unknown[]): BodySigner[] {
  const out: BodySigner[] = [];
  for (const v of b64) {
    if (typeof v !== 'string') continue;
    const pem = Buffer.from(v, 'base64').toString('utf8');
    const cert = pemBody(pem, 'CERTIFICATE');
    const key = pemBody(pem, 'PUBLIC KEY');
    if (cert) out.push({ kind: 'certificate', der: cert });
    else if (key) out.push({ kind: 'publicKey', der: key });
  }
  return out;
}

/**
 * The verifiers of a Rekor v2 entry: `spec.hashedRekordV002.signature.verifier` or each of
 * `spec.dsseV002.signatures[].verifier`, as `{x509Certificate|publicKey: {rawBytes}}`.
 */
function v2Signers(spec: Record<string, unknown> | undefined): BodySigner[] {
  const hr = spec?.hashedRekordV002 as Record<string, unknown> | undefined;
  const dsse = spec?.dsseV002 as Record<string, unknown> | undefined;
  const verifiers = hr
    ? [(hr.signature as Record<string, unknown> | undefined)?.verifier]
    : ((dsse?.signatures as Array<Record<string, unknown>> | undefined) ?? []).map((sig) => sig.verifier);
  return verifiers.flatMap((v) => v2Verifier(v as Record<string, unknown> | undefined));
}

function v2Verifier(verifier: Record<string, unknown> | undefined): BodySigner[] {
  const out: BodySigner[] = [];
  for (const kind of ['x509Certificate', 'publicKey'] as const) {
    const raw = (verifier?.[kind] as Record<string, unknown> | undefined)?.rawBytes;
    if (typeof raw === 'string')
      out.push({ kind: kind === 'x509Certificate' ? 'certificate' : 'publicKey', der: Buffer.from(raw, 'base64') });
  }
  return out;
}

/**
 * The certificates or public keys a log entry body names as its signer: hashedrekord 0.0.1 and dsse 0.0.1 carry
 * base64 PEM, Rekor v2's hashedrekord 0.0.2 carries DER in its `verifier`.
 */
function bodySigners(entry: TransparencyLogEntry): BodySigner[] | undefined {
  let body: { kind?: string; apiVersion?: string; spec?: Record<string, unknown> };
  try {
    body = JSON.parse(Buffer.from(entry.canonicalizedBody).toString('utf8'));
  } catch (cause) {
    throw new VerifyError('VERIFY_TLOG_BODY', 'transparency log entry body is not JSON', { cause });
  }
  if ((body.kind === 'hashedrekord' || body.kind === 'dsse') && body.apiVersion === '0.0.2')
    return v2Signers(body.spec);
  if (body.kind === 'hashedrekord') {
    const signature = body.spec?.signature as Record<string, unknown> | undefined;
    return pemSigners([(signature?.publicKey as Record<string, unknown> | undefined)?.content]);
  }
  if (body.kind === 'dsse') {
    return pemSigners(
      ((body.spec?.signatures as Array<Record<string, unknown>> | undefined) ?? []).map((s) => s.verifier),
    );
  }
  return undefined; // other kinds (intoto) carry keys differently; @sigstore/verify has checked signature and hash.
}

/**
 * @sigstore/verify@3 compares the signature and digest in a log entry's body with the bundle but not the key:
 * a log entry for the same signature made under another certificate would pass. Compare it.
 */
function checkBodyNamesCertificate(entry: TransparencyLogEntry, leafDer: Buffer): void {
  const signers = bodySigners(entry);
  if (signers === undefined) return;
  // A Rekor v2 entry may name the certificate's public key instead of the certificate (sigstore-js' public
  // fixtures do): the same signing key is bound, and the certificate binds it to the identity.
  let leafSpki: Buffer | undefined;
  const names = (s: BodySigner): boolean => {
    if (s.kind === 'certificate') return s.der.equals(leafDer);
    leafSpki ??= new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'der' });
    return s.der.equals(leafSpki);
  };
  if (!signers.some(names)) {
    throw new VerifyError(
      'VERIFY_TLOG_BODY',
      'transparency log entry was made with a different certificate than the bundle carries',
    );
  }
}

/**
 * The same for key-signed bundles: the log entry must name the configured key. A signer can make one ECDSA
 * signature that verifies under two keys, so "the signature verifies with the configured key" does not imply it.
 */
function checkBodyNamesKey(entry: TransparencyLogEntry, configured: KeyObject): void {
  const signers = bodySigners(entry);
  if (signers === undefined) return;
  const want = configured.export({ type: 'spki', format: 'der' });
  const names = (s: BodySigner): boolean => {
    if (s.kind !== 'publicKey') return false;
    try {
      return createPublicKey({ key: s.der, format: 'der', type: 'spki' })
        .export({ type: 'spki', format: 'der' })
        .equals(want);
    } catch {
      return false;
    }
  };
  if (!signers.some(names)) {
    throw new VerifyError(
      'VERIFY_TLOG_BODY',
      'transparency log entry was made with a different public key than the configured verification key',
    );
  }
}

/** The DER inside a PEM document with the given label, or undefined when it is not one. */
function pemBody(pem: string, label: string): Buffer | undefined {
  const m = new RegExp(`^-----BEGIN ${label}-----\\s*([A-Za-z0-9+/=\\s]+?)\\s*-----END ${label}-----\\s*$`).exec(pem);
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : undefined;
}
