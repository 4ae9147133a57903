/**
 * AMD SEV-SNP attestation reports (SEV Secure Nested Paging Firmware ABI Specification, "ATTESTATION_REPORT
 * Structure", 0x4A0 = 1184 bytes): parsing, the ECDSA P-384/SHA-384 signature by the VCEK (or VLEK), and the
 * VCEK → ASK → ARK chain, with the ARK configured by the operator (AMD publishes it per product family).
 */
import { type X509Certificate, verify as cryptoVerify } from 'node:crypto';
import { fromBase64 } from '@airlock/core';
import { AttestError } from '../errors.js';
import type { SnpEvidence } from '../evidence.js';
import { certificateExtensions, derSmallInt } from '../der.js';
import { parseCertificate, parsePemBundle, verifyChain } from '../x509-chain.js';

export const SNP_REPORT_SIZE = 0x4a0;
/** Bytes covered by the signature: everything before the signature field. */
const SIGNED_LENGTH = 0x2a0;
const SIG_ALGO_ECDSA_P384_SHA384 = 1;

export interface SnpTcb {
  bootLoader: number;
  tee: number;
  snp: number;
  microcode: number;
}

export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  signatureAlgo: number;
  currentTcb: SnpTcb;
  platformInfo: bigint;
  /** 0 = VCEK, 1 = VLEK, 7 = none (AUTHOR_KEY_EN etc. in the other bits). */
  signingKey: number;
  maskChipId: boolean;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: SnpTcb;
  chipId: Buffer;
  committedTcb: SnpTcb;
  launchTcb: SnpTcb;
  /** r and s, big-endian, as ECDSA verification wants them. */
  signature: { r: Buffer; s: Buffer };
  signedBytes: Buffer;
}

/** TCB_VERSION (Milan/Genoa layout): boot loader, TEE, reserved[4], SNP, microcode — one byte each, LE order. */
function tcb(b: Buffer, off: number): SnpTcb {
  return { bootLoader: b[off]!, tee: b[off + 1]!, snp: b[off + 6]!, microcode: b[off + 7]! };
}

/** Little-endian, zero-extended 72-byte field → 48-byte big-endian integer. */
function leComponent(b: Buffer, off: number): Buffer {
  const le = b.subarray(off, off + 72);
  if (le.subarray(48).some((x) => x !== 0))
    throw new AttestError('SNP_REPORT_MALFORMED', 'SNP signature component exceeds 48 bytes');
  return Buffer.from(le.subarray(0, 48)).reverse();
}

export function parseSnpReport(buf: Buffer): SnpReport {
  if (buf.length !== SNP_REPORT_SIZE)
    throw new AttestError('SNP_REPORT_MALFORMED', `SNP report is ${buf.length} bytes, expected ${SNP_REPORT_SIZE}`);
  const version = buf.readUInt32LE(0x00);
  if (version < 2) throw new AttestError('SNP_REPORT_MALFORMED', `SNP report version ${version} is not supported`);
  const flags = buf.readUInt32LE(0x48);
  const slice = (off: number, len: number): Buffer => Buffer.from(buf.subarray(off, off + len));
  return {
    version,
    guestSvn: buf.readUInt32LE(0x04),
    policy: buf.readBigUInt64LE(0x08),
    familyId: slice(0x10, 16),
    imageId: slice(0x20, 16),
    vmpl: buf.readUInt32LE(0x30),
    signatureAlgo: buf.readUInt32LE(0x34),
    currentTcb: tcb(buf, 0x38),
    platformInfo: buf.readBigUInt64LE(0x40),
    signingKey: (flags >> 2) & 0x7,
    maskChipId: (flags & 0x2) !== 0,
    reportData: slice(0x50, 64),
    measurement: slice(0x90, 48),
    hostData: slice(0xc0, 32),
    idKeyDigest: slice(0xe0, 48),
    authorKeyDigest: slice(0x110, 48),
    reportId: slice(0x140, 32),
    reportIdMa: slice(0x160, 32),
    reportedTcb: tcb(buf, 0x180),
    chipId: slice(0x1a0, 64),
    committedTcb: tcb(buf, 0x1e0),
    launchTcb: tcb(buf, 0x1f0),
    signature: { r: leComponent(buf, 0x2a0), s: leComponent(buf, 0x2a0 + 72) },
    signedBytes: slice(0, SIGNED_LENGTH),
  };
}

export interface SnpTrust {
  /** PEM: AMD Root Key certificate(s) for the accepted product families (Milan, Genoa, …). */
  arkPem: string;
  /** PEM: ASK certificates the operator configured (the evidence may carry them too, untrusted). */
  askPem?: string;
  now?: Date;
}

export interface VerifiedSnpReport {
  report: SnpReport;
  /** The VCEK/VLEK that signed it. */
  signer: X509Certificate;
}

/** Verifies the report's signature with the first certificate in `evidence.certificates` and that cert's chain. */
export function verifySnpEvidence(
  evidence: SnpEvidence,
  trust: SnpTrust,
  expected: { reportData?: Buffer } = {},
): VerifiedSnpReport {
  const report = parseSnpReport(fromBase64(evidence.report));
  if (report.signatureAlgo !== SIG_ALGO_ECDSA_P384_SHA384)
    throw new AttestError('SNP_REPORT_MALFORMED', `SNP signature algorithm ${report.signatureAlgo} is not ECDSA P-384`);
  if (report.signingKey > 1)
    throw new AttestError('SNP_SIGNATURE_INVALID', 'SNP report is not signed (SIGNING_KEY = none)');
  const certs = evidence.certificates.includes('BEGIN CERTIFICATE')
    ? parsePemBundle(evidence.certificates, 'SNP certificate', 'SNP_CHAIN_UNTRUSTED')
    : [parseCertificate(fromBase64(evidence.certificates), 'VCEK', 'SNP_CHAIN_UNTRUSTED')];
  const [signer, ...rest] = certs;
  if (!signer) throw new AttestError('SNP_CHAIN_UNTRUSTED', 'no VCEK/VLEK certificate in the evidence');
  const asks = [...parsePemBundle(trust.askPem ?? '', 'ASK', 'SNP_CHAIN_UNTRUSTED'), ...rest];
  const arks = parsePemBundle(trust.arkPem, 'ARK', 'SNP_CHAIN_UNTRUSTED');
  const what = report.signingKey === 1 ? 'VLEK' : 'VCEK';
  verifyChain(signer, asks, arks, { now: trust.now ?? new Date(), what, code: 'SNP_CHAIN_UNTRUSTED' });
  const key = signer.publicKey;
  if (key.asymmetricKeyDetails?.namedCurve !== 'secp384r1')
    throw new AttestError('SNP_CHAIN_UNTRUSTED', `${what} key is not an ECDSA P-384 key`);
  const sig = Buffer.concat([report.signature.r, report.signature.s]);
  if (!cryptoVerify('sha384', report.signedBytes, { key, dsaEncoding: 'ieee-p1363' }, sig))
    throw new AttestError('SNP_SIGNATURE_INVALID', `the SNP report's signature does not verify with the ${what}`);
  if (report.signingKey === 0) checkVcekBinding(report, signer);
  // REPORT_DATA is the guest's 64 bytes (the verifier's nonce, or a hash binding it); checked after the signature.
  if (expected.reportData && !report.reportData.equals(padTo64(expected.reportData)))
    throw new AttestError(
      'SNP_REPORT_DATA_MISMATCH',
      "the report's REPORT_DATA is not the expected nonce binding (replayed report)",
    );
  return { report, signer };
}

/** AMD's VCEK extensions (AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface Specification"). */
export const VCEK_OID = {
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  hwId: '1.3.6.1.4.1.3704.1.4',
} as const;

/**
 * A VCEK is derived for one chip at one TCB: the report's REPORTED_TCB must be the TCB the VCEK was issued for, and
 * its CHIP_ID the VCEK's hwID (unless the guest policy masks the chip id).
 */
function checkVcekBinding(report: SnpReport, vcek: X509Certificate): void {
  const ext = certificateExtensions(vcek.raw);
  const spl = (oid: string): number | undefined => {
    const v = ext.get(oid);
    return v ? derSmallInt(v) : undefined;
  };
  const want: [string, string, number][] = [
    ['boot loader', VCEK_OID.blSpl, report.reportedTcb.bootLoader],
    ['TEE', VCEK_OID.teeSpl, report.reportedTcb.tee],
    ['SNP', VCEK_OID.snpSpl, report.reportedTcb.snp],
    ['microcode', VCEK_OID.ucodeSpl, report.reportedTcb.microcode],
  ];
  for (const [name, oid, value] of want) {
    const got = spl(oid);
    if (got !== value)
      throw new AttestError(
        'SNP_CHAIN_UNTRUSTED',
        `VCEK ${name} SPL ${got ?? 'missing'} differs from the report's REPORTED_TCB ${value}`,
      );
  }
  const hwId = ext.get(VCEK_OID.hwId);
  if (!report.maskChipId && !(hwId && hwId.equals(report.chipId)))
    throw new AttestError('SNP_CHAIN_UNTRUSTED', "the VCEK's hwID is not the report's CHIP_ID");
}

/** A shorter value (e.g. a 32-byte hash) sits at the start of the 64-byte field, zero-padded. */
export function padTo64(b: Buffer): Buffer {
  if (b.length > 64) throw new AttestError('SNP_REPORT_MALFORMED', 'report data is longer than 64 bytes');
  return Buffer.concat([b, Buffer.alloc(64 - b.length)]);
}
