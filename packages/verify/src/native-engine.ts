import {
  X509Certificate as NodeX509,
  createPublicKey,
  verify as cryptoVerify,
  createHash,
  type KeyObject,
} from 'node:crypto';
import type { Bundle, TransparencyLogEntry } from '@sigstore/bundle';
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import { X509Certificate } from '@sigstore/core';
import { canonicalBytes } from '@airlock/core';
import { VerifyError } from './errors.js';
import type { ParsedLeaf } from './leaf.js';

/**
 * A second, native implementation of the Sigstore bundle checks @sigstore/verify@3 performs (timestamps from
 * SETs, certificate chain at each timestamp, SET, checkpoint signature, RFC 6962 inclusion, log-body
 * comparison), built on OpenSSL through node:crypto and with the trust anchors parsed and chain-checked once.
 * It exists for throughput (admission control, bulk import); differential tests hold it to the same verdicts
 * as @sigstore/verify on every tampering we know of. The signature itself is checked by the caller.
 */

interface NativeTlog {
  logId: Buffer;
  baseUrl: string;
  key: KeyObject;
  start: number;
  end: number;
}

interface NativeCa {
  /** Intermediate(s) first, root last; each issued by the next, root self-signed (checked at load). */
  chain: NodeX509[];
  /** [notBefore, notAfter] in ms, per chain certificate. */
  validity: Array<[number, number]>;
  pathLen: Array<number | undefined>;
  start: number;
  end: number;
}

export interface NativeTrust {
  tlogs: NativeTlog[];
  cas: NativeCa[];
}

const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

function window(v: { start?: Date; end?: Date } | undefined): { start: number; end: number } {
  return { start: v?.start ? v.start.getTime() : 0, end: v?.end ? v.end.getTime() : Number.POSITIVE_INFINITY };
}

export function buildNativeTrust(root: TrustedRoot): NativeTrust {
  const tlogs: NativeTlog[] = root.tlogs.map((t) => {
    const raw = t.publicKey?.rawBytes;
    if (!raw) throw new VerifyError('VERIFY_TRUSTED_ROOT', 'trusted root: tlog without a public key');
    const logId = t.logId?.keyId ? Buffer.from(t.logId.keyId) : createHash('sha256').update(raw).digest();
    return {
      logId,
      baseUrl: t.baseUrl,
      key: createPublicKey({ key: Buffer.from(raw), format: 'der', type: 'spki' }),
      ...window(t.publicKey?.validFor),
    };
  });
  const cas: NativeCa[] = root.certificateAuthorities.map((ca, i) => {
    const chain = (ca.certChain?.certificates ?? []).map((c) => new NodeX509(Buffer.from(c.rawBytes)));
    if (chain.length === 0)
      throw new VerifyError('VERIFY_TRUSTED_ROOT', `trusted root: certificateAuthorities[${i}] has no certificates`);
    for (let j = 0; j < chain.length; j++) {
      const cert = chain[j]!;
      const issuer = chain[j + 1] ?? cert;
      if (!cert.ca)
        throw new VerifyError(
          'VERIFY_TRUSTED_ROOT',
          `trusted root: certificateAuthorities[${i}] certificate ${j} is not a CA`,
        );
      if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
        throw new VerifyError(
          'VERIFY_TRUSTED_ROOT',
          `trusted root: certificateAuthorities[${i}] chain is broken at certificate ${j}`,
        );
      }
    }
    const pathLen = chain
      .map((c) => X509Certificate.parse(c.raw).extBasicConstraints?.pathLenConstraint)
      .map((v) => (v === undefined ? undefined : Number(v)));
    const validity = chain.map((c): [number, number] => [Date.parse(c.validFrom), Date.parse(c.validTo)]);
    return { chain, validity, pathLen, ...window(ca.validFor) };
  });
  return { tlogs, cas };
}

export interface NativeVerificationResult {
  subjectAlternativeName?: string;
  issuer?: string;
}

export interface NativeVerifyOptions {
  tlogThreshold: number;
  /** The bundle's signing certificate, already parsed by the caller. */
  leaf: ParsedLeaf | undefined;
  /** Out-of-band key lookup for key-signed bundles. */
  publicKey?: (hint: string) => KeyObject;
}

export function verifyBundleNative(
  bundle: Bundle,
  trust: NativeTrust,
  options: NativeVerifyOptions,
): NativeVerificationResult {
  const entries = bundle.verificationMaterial.tlogEntries;
  // 1. Trusted times: only entries with an inclusion promise (SET) vouch for their integratedTime.
  const times = entries
    .filter((e) => e.inclusionPromise && e.integratedTime && e.integratedTime !== '0')
    .map((e) => Number(e.integratedTime) * 1000);
  const material = bundle.verificationMaterial.content;
  let result: NativeVerificationResult = {};

  // 2. The signing key: a certificate chaining to a trusted CA at every trusted time, or an out-of-band key.
  if (material.$case === 'publicKey') {
    if (!options.publicKey)
      throw new VerifyError('VERIFY_PUBLIC_KEY', 'key-signed bundle but no verification key configured');
    options.publicKey(material.publicKey.hint);
  } else {
    if (times.length < 1) throw new VerifyError('VERIFY_TIMESTAMP', `expected 1 timestamps, got ${times.length}`);
    const leaf = options.leaf;
    if (!leaf) throw new VerifyError('VERIFY_BUNDLE_MALFORMED', 'bundle has no signing certificate');
    for (const t of times) verifyChainAt(leaf, trust, t);
    result = identityOf(leaf);
  }

  // 3. Log entries: inclusion (SET and/or proof with a signed checkpoint), then the body against the bundle.
  for (const entry of entries) {
    verifyInclusion(entry, trust);
    verifyBody(entry, bundle);
  }
  if (entries.length < options.tlogThreshold)
    throw new VerifyError(
      'VERIFY_TLOG_MISSING',
      `expected ${options.tlogThreshold} tlog entries, got ${entries.length}`,
    );
  return result;
}

function verifyChainAt(leaf: ParsedLeaf, trust: NativeTrust, t: number): void {
  for (const ca of trust.cas) {
    if (t < ca.start || t > ca.end) continue;
    const idx = ca.chain.findIndex((c) => leaf.node.checkIssued(c) && leaf.node.verify(c.publicKey));
    if (idx < 0) continue;
    const path = ca.chain.slice(idx);
    // pathLen of the i-th CA above the leaf must allow the CAs below it (as @sigstore/verify checks).
    if (
      path.some((_, i) => {
        const pl = ca.pathLen[idx + i];
        return pl !== undefined && pl < i;
      })
    ) {
      throw new VerifyError('VERIFY_CERTIFICATE', 'path length constraint exceeded');
    }
    const chainValid = ca.validity.slice(idx).every(([from, to]) => from <= t && t <= to);
    if (!(leaf.notBefore <= t && t <= leaf.notAfter) || !chainValid) {
      throw new VerifyError(
        'VERIFY_CERTIFICATE',
        `certificate is not valid or expired at ${new Date(t).toISOString()}`,
      );
    }
    return;
  }
  throw new VerifyError(
    'VERIFY_CERTIFICATE',
    'Failed to verify certificate chain: no trusted CA issued the signing certificate',
  );
}

function identityOf(leaf: ParsedLeaf): NativeVerificationResult {
  const cert = leaf.cert;
  const v2 = cert.extension(OID_ISSUER_V2);
  const issuer = v2
    ? v2.valueObj.subs?.[0]?.value.toString('ascii')
    : cert.extension(OID_ISSUER_V1)?.value.toString('ascii');
  const san = cert.subjectAltName;
  return { ...(san !== undefined ? { subjectAlternativeName: san } : {}), ...(issuer !== undefined ? { issuer } : {}) };
}

function verifyInclusion(entry: TransparencyLogEntry, trust: NativeTrust): void {
  let verified = false;
  const logId = Buffer.from(entry.logId?.keyId ?? []);
  if (entry.inclusionPromise) {
    const t = Number(entry.integratedTime) * 1000;
    const payload = canonicalBytes({
      body: Buffer.from(entry.canonicalizedBody).toString('base64'),
      integratedTime: Number(entry.integratedTime),
      logIndex: Number(entry.logIndex),
      logID: logId.toString('hex'),
    });
    const sig = Buffer.from(entry.inclusionPromise.signedEntryTimestamp);
    const ok = trust.tlogs.some(
      (tl) => tl.logId.equals(logId) && tl.start <= t && t <= tl.end && verifySig(payload, tl.key, sig),
    );
    if (!ok) throw new VerifyError('VERIFY_TLOG_PROMISE', 'inclusion promise could not be verified');
    verified = true;
  }
  if (entry.inclusionProof) {
    const proof = entry.inclusionProof;
    const { size, root } = verifyCheckpoint(proof.checkpoint?.envelope ?? '', trust);
    verifyMerkleInclusion(
      Buffer.from(entry.canonicalizedBody),
      BigInt(proof.logIndex),
      size,
      proof.hashes.map((h) => Buffer.from(h)),
      root,
    );
    verified = true;
  }
  if (!verified) throw new VerifyError('VERIFY_TLOG_MISSING', 'inclusion could not be verified');
}

function verifySig(data: Buffer, key: KeyObject, sig: Buffer): boolean {
  try {
    return cryptoVerify(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key, sig);
  } catch {
    return false;
  }
}

const SIG_LINE = /\u2014 (\S+) (\S+)\n/g;

function verifyCheckpoint(envelope: string, trust: NativeTrust): { size: bigint; root: Buffer } {
  const split = envelope.indexOf('\n\n');
  if (split < 0) throw new VerifyError('VERIFY_TLOG_PROOF', 'missing checkpoint separator');
  const note = envelope.slice(0, split + 1);
  const sigs = [...envelope.slice(split + 2).matchAll(SIG_LINE)].map(([, name, b64]) => {
    const bytes = Buffer.from(b64!, 'base64');
    if (bytes.length < 5) throw new VerifyError('VERIFY_TLOG_PROOF', 'malformed checkpoint signature');
    return { name: name!, hint: bytes.subarray(0, 4), sig: bytes.subarray(4) };
  });
  if (sigs.length === 0) throw new VerifyError('VERIFY_TLOG_PROOF', 'no signatures found in checkpoint');
  const data = Buffer.from(note, 'utf8');
  // Same selection rule as @sigstore/verify: key hint = first 4 bytes of the log ID, and the name must occur
  // in the log's base URL.
  const ok = sigs.some((s) =>
    trust.tlogs.some(
      (tl) =>
        tl.logId.subarray(0, 4).equals(s.hint) && tl.baseUrl.match(s.name) !== null && verifySig(data, tl.key, s.sig),
    ),
  );
  if (!ok) throw new VerifyError('VERIFY_TLOG_PROOF', 'invalid checkpoint signature');
  const lines = note.trimEnd().split('\n');
  if (lines.length < 3) throw new VerifyError('VERIFY_TLOG_PROOF', 'too few lines in checkpoint header');
  let size: bigint;
  try {
    size = BigInt(lines[1]!);
  } catch {
    throw new VerifyError('VERIFY_TLOG_PROOF', 'checkpoint size is not a number');
  }
  return { size, root: Buffer.from(lines[2]!, 'base64') };
}

const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** RFC 9162 §2.1.3.2 inclusion verification, against the checkpoint's size and root. */
function verifyMerkleInclusion(leaf: Buffer, index: bigint, size: bigint, hashes: Buffer[], root: Buffer): void {
  if (index < 0n || index >= size) throw new VerifyError('VERIFY_TLOG_PROOF', `invalid index: ${index}`);
  const inner = (index ^ (size - 1n)).toString(2).replace(/^0+/, '').length;
  const border = (index >> BigInt(inner)).toString(2).split('1').length - 1;
  if (hashes.length !== inner + border) throw new VerifyError('VERIFY_TLOG_PROOF', 'invalid hash count');
  let h = sha256(LEAF, leaf);
  for (let i = 0; i < inner; i++)
    h = (index >> BigInt(i)) & 1n ? sha256(NODE, hashes[i]!, h) : sha256(NODE, h, hashes[i]!);
  for (let i = inner; i < hashes.length; i++) h = sha256(NODE, hashes[i]!, h);
  if (!h.equals(root))
    throw new VerifyError('VERIFY_TLOG_PROOF', 'calculated root hash does not match inclusion proof');
}

function verifyBody(entry: TransparencyLogEntry, bundle: Bundle): void {
  const fail = (m: string): never => {
    throw new VerifyError('VERIFY_TLOG_BODY', m);
  };
  let body: { kind?: unknown; apiVersion?: unknown; spec?: Record<string, unknown> };
  try {
    body = JSON.parse(Buffer.from(entry.canonicalizedBody).toString('utf8'));
  } catch {
    return fail('log entry body is not JSON');
  }
  const kind = entry.kindVersion?.kind;
  const version = entry.kindVersion?.version;
  if (kind !== body.kind || version !== body.apiVersion)
    fail(
      `kind/version mismatch - expected: ${kind}/${version}, received: ${String(body.kind)}/${String(body.apiVersion)}`,
    );
  const spec = body.spec ?? {};
  if (kind === 'dsse' && version === '0.0.1') {
    if (bundle.content.$case !== 'dsseEnvelope') return fail('dsse log entry for a non-DSSE bundle');
    const env = bundle.content.dsseEnvelope;
    const sigs = spec.signatures as Array<{ signature?: string }> | undefined;
    if (sigs?.length !== 1) fail('signature count mismatch');
    if (!Buffer.from(sigs![0]!.signature ?? '', 'base64').equals(Buffer.from(env.signatures[0]?.sig ?? [])))
      fail('tlog entry signature mismatch');
    const payloadHash = (spec.payloadHash as { value?: string } | undefined)?.value ?? '';
    if (!Buffer.from(payloadHash, 'hex').equals(sha256(Buffer.from(env.payload)))) fail('DSSE payload hash mismatch');
  } else if (kind === 'hashedrekord' && version === '0.0.1') {
    if (bundle.content.$case !== 'messageSignature')
      return fail('hashedrekord log entry for a non-message-signature bundle');
    const ms = bundle.content.messageSignature;
    const sig = (spec.signature as { content?: string } | undefined)?.content ?? '';
    if (!Buffer.from(sig, 'base64').equals(Buffer.from(ms.signature))) fail('signature mismatch');
    const digest = (spec.data as { hash?: { value?: string } } | undefined)?.hash?.value ?? '';
    if (!Buffer.from(digest, 'hex').equals(Buffer.from(ms.messageDigest?.digest ?? []))) fail('digest mismatch');
  } else {
    fail(`unsupported kind: ${String(kind)}/${String(version)}`);
  }
}
