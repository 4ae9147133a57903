/**
 * Intel TDX DCAP quotes, version 4 (Intel TDX DCAP Quote Generation Library and Quote Verification Library,
 * "Quote Format"): header (48 bytes) + TD quote body (584 bytes) + signature data. Verified here: the PCK
 * certificate chain to the configured Intel SGX Root CA, the QE report's signature by the PCK key, the QE report
 * binding the attestation key (report_data = SHA-256(attestation key || QE auth data)), and the quote's signature
 * by the attestation key. Not verified here: TCB status (TCB Info), QE identity and CRLs — collateral from Intel PCS.
 */
import { createHash, createPublicKey, type KeyObject, verify as cryptoVerify, type X509Certificate } from 'node:crypto';
import { fromBase64 } from '@airlock/core';
import { AttestError } from '../errors.js';
import type { TdxEvidence } from '../evidence.js';
import { parsePemBundle, verifyChain } from '../x509-chain.js';
import { padTo64 } from './snp.js';

const HEADER = 48;
const BODY = 584;
const QE_REPORT = 384;
const TEE_TYPE_TDX = 0x81;
const ATT_KEY_ECDSA_P256 = 2;
const CERT_QE_REPORT = 6;
const CERT_PCK_CHAIN = 5;

export interface TdxQuoteBody {
  teeTcbSvn: Buffer;
  mrSeam: Buffer;
  mrSignerSeam: Buffer;
  seamAttributes: Buffer;
  tdAttributes: Buffer;
  xfam: Buffer;
  mrTd: Buffer;
  mrConfigId: Buffer;
  mrOwner: Buffer;
  mrOwnerConfig: Buffer;
  rtmrs: [Buffer, Buffer, Buffer, Buffer];
  reportData: Buffer;
}

export interface TdxQuote {
  version: number;
  attestationKeyType: number;
  teeType: number;
  qeVendorId: Buffer;
  userData: Buffer;
  body: TdxQuoteBody;
  /** Header + body: what the attestation key signs. */
  signedBytes: Buffer;
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: Buffer;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  /** PEM: PCK leaf, intermediate (platform/processor CA), root. */
  pckChainPem: string;
}

class LeReader {
  private off = 0;
  constructor(private readonly b: Buffer) {}
  take(n: number, what: string): Buffer {
    if (this.off + n > this.b.length)
      throw new AttestError('TDX_QUOTE_MALFORMED', `TDX quote truncated in ${what} (offset ${this.off}, need ${n})`);
    const v = Buffer.from(this.b.subarray(this.off, this.off + n));
    this.off += n;
    return v;
  }
  u16(what: string): number {
    return this.take(2, what).readUInt16LE(0);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }
}

function parseBody(b: Buffer): TdxQuoteBody {
  const r = new LeReader(b);
  const f = (n: number, what: string): Buffer => r.take(n, what);
  return {
    teeTcbSvn: f(16, 'tee_tcb_svn'),
    mrSeam: f(48, 'mrseam'),
    mrSignerSeam: f(48, 'mrsignerseam'),
    seamAttributes: f(8, 'seam_attributes'),
    tdAttributes: f(8, 'td_attributes'),
    xfam: f(8, 'xfam'),
    mrTd: f(48, 'mrtd'),
    mrConfigId: f(48, 'mrconfigid'),
    mrOwner: f(48, 'mrowner'),
    mrOwnerConfig: f(48, 'mrownerconfig'),
    rtmrs: [f(48, 'rtmr0'), f(48, 'rtmr1'), f(48, 'rtmr2'), f(48, 'rtmr3')],
    reportData: f(64, 'report_data'),
  };
}

export function parseTdxQuote(buf: Buffer): TdxQuote {
  const r = new LeReader(buf);
  const header = r.take(HEADER, 'header');
  const version = header.readUInt16LE(0);
  const attestationKeyType = header.readUInt16LE(2);
  const teeType = header.readUInt32LE(4);
  if (version !== 4) throw new AttestError('TDX_QUOTE_MALFORMED', `TDX quote version ${version} is not 4`);
  if (teeType !== TEE_TYPE_TDX)
    throw new AttestError('TDX_QUOTE_MALFORMED', `TEE type 0x${teeType.toString(16)} is not TDX`);
  if (attestationKeyType !== ATT_KEY_ECDSA_P256)
    throw new AttestError(
      'TDX_QUOTE_MALFORMED',
      `attestation key type ${attestationKeyType} is not ECDSA-256-with-P-256`,
    );
  const body = parseBody(r.take(BODY, 'TD quote body'));
  const sigLen = r.u32('signature data length');
  const sigData = new LeReader(r.take(sigLen, 'signature data'));
  const signature = sigData.take(64, 'quote signature');
  const attestationKey = sigData.take(64, 'attestation key');
  const outerType = sigData.u16('certification data type');
  if (outerType !== CERT_QE_REPORT)
    throw new AttestError('TDX_QUOTE_MALFORMED', `certification data type ${outerType} is not 6 (QE report)`);
  const outer = new LeReader(sigData.take(sigData.u32('certification data size'), 'certification data'));
  const qeReport = outer.take(QE_REPORT, 'QE report');
  const qeReportSignature = outer.take(64, 'QE report signature');
  const qeAuthData = outer.take(outer.u16('QE auth data size'), 'QE auth data');
  const innerType = outer.u16('PCK certification data type');
  if (innerType !== CERT_PCK_CHAIN)
    throw new AttestError('TDX_QUOTE_MALFORMED', `PCK certification data type ${innerType} is not 5 (PEM chain)`);
  const pck = outer.take(outer.u32('PCK chain size'), 'PCK chain');
  return {
    version,
    attestationKeyType,
    teeType,
    qeVendorId: header.subarray(12, 28),
    userData: header.subarray(28, 48),
    body,
    signedBytes: buf.subarray(0, HEADER + BODY),
    signature,
    attestationKey,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckChainPem: pck.toString('latin1').replace(/\0+$/, ''),
  };
}

function p256Raw(xy: Buffer): KeyObject {
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: xy.subarray(0, 32).toString('base64url'),
      y: xy.subarray(32).toString('base64url'),
    },
    format: 'jwk',
  });
}

export interface TdxTrust {
  /** PEM: Intel SGX Root CA (https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem). */
  rootPem: string;
  now?: Date;
}

export interface VerifiedTdxQuote {
  quote: TdxQuote;
  pck: X509Certificate;
}

export function verifyTdxEvidence(
  evidence: TdxEvidence,
  trust: TdxTrust,
  expected: { reportData?: Buffer } = {},
): VerifiedTdxQuote {
  const quote = parseTdxQuote(fromBase64(evidence.quote));
  const chain = parsePemBundle(quote.pckChainPem, 'PCK certificate', 'TDX_CHAIN_UNTRUSTED');
  const [pck, ...intermediates] = chain;
  if (!pck) throw new AttestError('TDX_CHAIN_UNTRUSTED', 'the quote carries no PCK certificate');
  const roots = parsePemBundle(trust.rootPem, 'Intel SGX Root CA', 'TDX_CHAIN_UNTRUSTED');
  verifyChain(pck, intermediates, roots, {
    now: trust.now ?? new Date(),
    what: 'PCK certificate',
    code: 'TDX_CHAIN_UNTRUSTED',
  });
  const ecdsa = (key: KeyObject, data: Buffer, sig: Buffer): boolean =>
    cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  if (!ecdsa(pck.publicKey, quote.qeReport, quote.qeReportSignature))
    throw new AttestError('TDX_SIGNATURE_INVALID', "the QE report's signature does not verify with the PCK key");
  const bound = createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest();
  const qeReportData = quote.qeReport.subarray(320, 384);
  if (!qeReportData.subarray(0, 32).equals(bound) || qeReportData.subarray(32).some((x) => x !== 0))
    throw new AttestError('TDX_SIGNATURE_INVALID', 'the QE report does not bind the attestation key');
  if (!ecdsa(p256Raw(quote.attestationKey), quote.signedBytes, quote.signature))
    throw new AttestError('TDX_SIGNATURE_INVALID', "the quote's signature does not verify with the attestation key");
  if (expected.reportData && !quote.body.reportData.equals(padTo64(expected.reportData)))
    throw new AttestError(
      'TDX_REPORT_DATA_MISMATCH',
      "the TD's REPORTDATA is not the expected nonce binding (replayed quote)",
    );
  return { quote, pck };
}
