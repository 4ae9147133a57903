import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON, type Bundle, type TransparencyLogEntry } from '@sigstore/bundle';
import { Verifier, toSignedEntity, type TrustMaterial } from '@sigstore/verify';
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
import { leafOf, type ParsedLeaf } from './leaf.js';
import { buildNativeTrust, verifyBundleNative, type NativeTrust } from './native-engine.js';

const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';

/** Who may have signed. Certificate bundles always need one; matching is exact or an anchored regex. */
export interface IdentityPolicy {
  /** Exact subject alternative name (URI such as a SPIFFE ID, or email). */
  subject?: string;
  /** Regular expression for the SAN; always anchored (`^(?:…)$`), never a substring match. */
  subjectRegExp?: string;
  /** Exact OIDC issuer URL (certificate extension 1.3.6.1.4.1.57264.1.8, falling back to .1.1). */
  issuer: string;
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

export interface VerificationResult {
  content: 'messageSignature' | 'dsseEnvelope';
  signer: { subjectAlternativeName?: string; issuer?: string; keyHint?: string };
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
   * Which implementation performs the Sigstore checks: `sigstore` (the stock @sigstore/verify, default) or
   * `native` (node:crypto with trust anchors pre-verified; several times faster, held to the same verdicts by
   * differential tests). The airlock checks on top are the same for both.
   */
  engine?: 'sigstore' | 'native';
}

/**
 * Verifies Sigstore bundles against a trusted root with @sigstore/verify, then performs what it leaves out:
 * an anchored identity policy, code-signing key usage on the leaf, DSSE payloadType, the in-toto subject digest
 * against the artifact, and that each tlog entry's body names the same certificate/key as the bundle.
 * Build one per trusted root and reuse it: trust material is parsed once.
 */
export class BundleVerifier {
  private readonly trust: TrustMaterial;
  private readonly verifier: Verifier;
  private readonly native?: NativeTrust;
  private readonly tlogThreshold: number;

  constructor(trustedRoot: unknown, options: BundleVerifierOptions = {}) {
    const root = parseTrustedRoot(trustedRoot);
    this.trust = buildTrustMaterial(root, options.publicKeys);
    this.tlogThreshold = options.tlogThreshold ?? 1;
    // No CT log in an air-gapped plane (ctlogThreshold 0); the log's SET is the trusted time (one timestamp).
    this.verifier = new Verifier(this.trust, {
      ctlogThreshold: 0,
      tlogThreshold: this.tlogThreshold,
      timestampThreshold: options.publicKeys ? 0 : 1,
    });
    if (options.engine === 'native') this.native = buildNativeTrust(root);
  }

  verify(bundleJson: unknown, options: VerifyBundleOptions = {}): VerificationResult {
    const bundle = parseBundle(bundleJson);
    const isDsse = bundle.content.$case === 'dsseEnvelope';
    if (!isDsse && !options.artifact) {
      throw new VerifyError(
        'VERIFY_ARTIFACT_REQUIRED',
        'a message-signature bundle can only be verified against the artifact bytes',
      );
    }
    const material = bundle.verificationMaterial.content;
    const isCertificate = material.$case !== 'publicKey';
    if (isCertificate && !options.policy && !options.allowAnyIdentity) {
      throw new VerifyError(
        'VERIFY_POLICY',
        'an identity policy (certificate identity and OIDC issuer) is required for certificate-signed bundles',
      );
    }

    // Check the signature itself first, so a damaged signature is reported as such rather than as a log-body
    // mismatch (the log entry records the original signature).
    const leaf = leafOf(bundle);
    if (leaf) verifyContentSignature(bundle, options.artifact, leaf.node.publicKey);

    let identity: { subjectAlternativeName?: string; issuer?: string } | undefined;
    if (this.native) {
      if (material.$case === 'publicKey') checkKeySignature(bundle, options.artifact, this.trust);
      identity = verifyBundleNative(bundle, this.native, {
        tlogThreshold: this.tlogThreshold,
        leaf,
        publicKey: (hint) => this.trust.publicKey(hint).publicKey,
      });
    } else {
      try {
        const signer = this.verifier.verify(toSignedEntity(bundle, options.artifact));
        identity = {
          subjectAlternativeName: signer.identity?.subjectAlternativeName,
          issuer: signer.identity?.extensions?.issuer,
        };
      } catch (err) {
        throw fromSigstoreError(err);
      }
    }

    // Both engines take tree size and root from the signed checkpoint and ignore the proof's own copies; a
    // disagreement between the two means the bundle was altered, so refuse it.
    for (const entry of bundle.verificationMaterial.tlogEntries) checkProofMatchesCheckpoint(entry);

    const result: VerificationResult = {
      content: bundle.content.$case,
      signer: {},
      tlogEntries: bundle.verificationMaterial.tlogEntries.map(describeEntry),
    };

    if (material.$case === 'publicKey') result.signer.keyHint = material.publicKey.hint;

    if (leaf) {
      checkCodeSigningUsage(leaf);
      const san = identity.subjectAlternativeName;
      const issuer = identity.issuer;
      if (san !== undefined) result.signer.subjectAlternativeName = san;
      if (issuer !== undefined) result.signer.issuer = issuer;
      result.certificate = {
        serialNumber: leaf.node.serialNumber,
        notBefore: new Date(leaf.notBefore).toISOString(),
        notAfter: new Date(leaf.notAfter).toISOString(),
      };
      if (options.policy) checkPolicy(options.policy, san, issuer);
      for (const entry of bundle.verificationMaterial.tlogEntries) checkBodyNamesSigner(entry, leaf.der);
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

function parseBundle(json: unknown): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (cause) {
    throw new VerifyError('VERIFY_BUNDLE_MALFORMED', `not a valid Sigstore bundle: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function checkKeySignature(bundle: Bundle, artifact: Buffer | undefined, trust: TrustMaterial): void {
  const material = bundle.verificationMaterial.content;
  if (material.$case !== 'publicKey') return;
  verifyContentSignature(bundle, artifact, trust.publicKey(material.publicKey.hint).publicKey);
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

export function checkPolicy(policy: IdentityPolicy, san: string | undefined, issuer: string | undefined): void {
  if (!policy.subject && !policy.subjectRegExp) {
    throw new VerifyError('VERIFY_POLICY', 'identity policy names no subject (exact or regular expression)');
  }
  const pattern = policy.subject !== undefined ? escapeRegExp(policy.subject) : policy.subjectRegExp!;
  const re = new RegExp(`^(?:${pattern})$`);
  if (san === undefined || !re.test(san)) {
    throw new VerifyError(
      'VERIFY_POLICY',
      `certificate identity '${san ?? '(none)'}' does not match ${policy.subject !== undefined ? `'${policy.subject}'` : `/${pattern}/`}`,
      {
        details: { subjectAlternativeName: san },
      },
    );
  }
  if (issuer !== policy.issuer) {
    throw new VerifyError(
      'VERIFY_POLICY',
      `certificate OIDC issuer '${issuer ?? '(none)'}' is not '${policy.issuer}'`,
      { details: { issuer } },
    );
  }
}

/**
 * @sigstore/verify@3 compares the signature and digest in a log entry's body with the bundle but not the key:
 * a log entry for the same signature made under another certificate would pass. Compare it.
 */
function checkBodyNamesSigner(entry: TransparencyLogEntry, leafDer: Buffer): void {
  let body: { kind?: string; spec?: Record<string, unknown> };
  try {
    body = JSON.parse(Buffer.from(entry.canonicalizedBody).toString('utf8'));
  } catch (cause) {
    throw new VerifyError('VERIFY_TLOG_BODY', 'transparency log entry body is not JSON', { cause });
  }
  const pems: string[] = [];
  if (body.kind === 'hashedrekord') {
    const c = (
      (body.spec?.signature as Record<string, unknown> | undefined)?.publicKey as Record<string, unknown> | undefined
    )?.content;
    if (typeof c === 'string') pems.push(c);
  } else if (body.kind === 'dsse') {
    for (const s of (body.spec?.signatures as Array<Record<string, unknown>> | undefined) ?? []) {
      if (typeof s.verifier === 'string') pems.push(s.verifier);
    }
  } else {
    return; // other kinds (intoto) carry keys differently; @sigstore/verify has checked signature and hash.
  }
  const matches = pems.some((b64) => {
    try {
      const der = pemToDer(Buffer.from(b64, 'base64').toString('utf8'));
      return der.equals(leafDer);
    } catch {
      return false;
    }
  });
  if (!matches) {
    throw new VerifyError(
      'VERIFY_TLOG_BODY',
      'transparency log entry was made with a different certificate than the bundle carries',
    );
  }
}

function pemToDer(pem: string): Buffer {
  if (!pem.includes('-----BEGIN')) return Buffer.from(pem, 'base64');
  return Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}
