import { X509Certificate as NodeX509 } from 'node:crypto';
import type { Bundle } from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import { encodeOidContent, NODE_ATTESTATION_OID } from '@airlock/core';
import { VerifyError } from './errors.js';
import { MemoCertificate } from './memo-certificate.js';
import { quietParse } from './quiet-parse.js';

/**
 * The signing certificate of a bundle, parsed once per verification: by OpenSSL (node:crypto) for signatures,
 * validity and EKU, and by @sigstore/core's ASN.1 reader for the extensions node:crypto does not expose
 * (KeyUsage bits, SAN as @sigstore/verify reads it, the Fulcio issuer OIDs).
 */
export interface ParsedLeaf {
  der: Buffer;
  node: NodeX509;
  /** Also the certificate @sigstore/verify checks (the chain and identity of this one verification). */
  cert: MemoCertificate;
  notBefore: number;
  notAfter: number;
}

export function leafOf(bundle: Bundle): ParsedLeaf | undefined {
  const m = bundle.verificationMaterial.content;
  const der =
    m.$case === 'certificate'
      ? m.certificate.rawBytes
      : m.$case === 'x509CertificateChain'
        ? m.x509CertificateChain.certificates[0]?.rawBytes
        : undefined;
  if (!der) return undefined;
  const buf = Buffer.from(der);
  try {
    const node = new NodeX509(buf);
    const cert = quietParse(() => MemoCertificate.fromDer(buf));
    cert.adoptKey(buf, node.publicKey);
    return {
      der: buf,
      node,
      cert,
      notBefore: Date.parse(node.validFrom),
      notAfter: Date.parse(node.validTo),
    };
  } catch (cause) {
    throw new VerifyError('VERIFY_CERTIFICATE', `signing certificate cannot be parsed: ${(cause as Error).message}`, {
      cause,
    });
  }
}

const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

export interface CertificateIdentity {
  subjectAlternativeName?: string;
  issuer?: string;
}

/**
 * The identity a Fulcio certificate names — SAN and OIDC issuer, read as @sigstore/verify reads them (issuer
 * extension .1.8, else .1.1). A description only, nothing is verified: signers use it to tell the user which
 * identity policy will verify what they just signed.
 */
export function certificateIdentity(der: Uint8Array): CertificateIdentity {
  const cert = X509Certificate.parse(Buffer.from(der));
  const v2 = cert.extension(OID_ISSUER_V2);
  const issuer = v2
    ? v2.valueObj.subs?.[0]?.value.toString('ascii')
    : cert.extension(OID_ISSUER_V1)?.value.toString('ascii');
  const san = cert.subjectAltName;
  return { ...(san !== undefined ? { subjectAlternativeName: san } : {}), ...(issuer !== undefined ? { issuer } : {}) };
}

const NODE_CLAIMS_OID = encodeOidContent(NODE_ATTESTATION_OID.claims);

/**
 * The attested node claims extension (DER UTF8String of canonical JSON) of a leaf, if it carries one. Matched by
 * the OID's encoded bytes: @sigstore/core's OID parser garbles the arc's 128-bit component.
 */
export function nodeAttestationOf(leaf: ParsedLeaf): string | undefined {
  const ext = leaf.cert.extensions.find((e) => e.subs[0]?.value.equals(NODE_CLAIMS_OID));
  const octets = ext?.subs[ext.subs.length - 1]?.value;
  if (!octets || octets[0] !== 0x0c) return undefined;
  const utf8 = readDerLength(octets, 1);
  return utf8 ? octets.subarray(utf8.start, utf8.start + utf8.length).toString('utf8') : undefined;
}

/** A DER definite length at `pos`: where the content starts and how long it is, or undefined if it overruns. */
function readDerLength(b: Buffer, pos: number): { start: number; length: number } | undefined {
  const first = b[pos];
  if (first === undefined) return undefined;
  let length = first;
  let start = pos + 1;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (b[start + i] ?? 0);
    start += n;
  }
  return start + length === b.length ? { start, length } : undefined;
}
