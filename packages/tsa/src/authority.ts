import './reflect-polyfill.js';
import { createHash, randomBytes, sign as cryptoSign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  CMSVersion,
  ContentInfo,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  id_signedData,
} from '@peculiar/asn1-cms';
import {
  Accuracy,
  MessageImprint,
  PKIStatus,
  PKIStatusInfo,
  TimeStampReq,
  TimeStampResp,
  TSTInfo,
  id_ct_tstInfo,
} from '@peculiar/asn1-tsp';
import type { X509Certificate } from '@peculiar/x509';
import { AttributeSet, EssCertIdV2, EssCertIdV2s, OidValue, SigningCertificateV2 } from './ess.js';
import { TsaError } from './errors.js';
import type { TsaMaterial } from './material.js';

/** sigstore/timestamp-authority's default policy when the request names none. */
export const DEFAULT_TSA_POLICY = '1.3.6.1.4.1.57264.2';

const OID = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha1: '1.3.14.3.2.26',
  md5: '1.2.840.113549.2.5',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
} as const;

/** Hashes a TSA accepts (as sigstore/timestamp-authority: SHA-2 only), by OID, with their digest lengths. */
const HASHES: Record<string, { name: 'sha256' | 'sha384' | 'sha512'; length: number }> = {
  [OID.sha256]: { name: 'sha256', length: 32 },
  [OID.sha384]: { name: 'sha384', length: 48 },
  [OID.sha512]: { name: 'sha512', length: 64 },
};

/** `hashAlgorithm` names of the JSON request; SHA-1 and MD5 map to their OIDs only to be refused as weak. */
const JSON_HASH_NAMES: Record<string, string> = {
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
  sha1: OID.sha1,
  md5: OID.md5,
};

/** A parsed timestamp request, from either wire form. */
export interface TimestampRequest {
  hashAlgorithmOid: string;
  hashedMessage: Buffer;
  nonce?: bigint;
  /** Include the TSA certificate in the token (RFC 3161 `certReq`). */
  certReq: boolean;
  policy?: string;
}

/** Parses a DER `TimeStampReq` (`application/timestamp-query`). */
export function parseTimestampQuery(der: Buffer): TimestampRequest {
  let req: TimeStampReq;
  try {
    req = AsnConvert.parse(der, TimeStampReq);
  } catch (cause) {
    throw new TsaError('TSA_REQUEST_INVALID', 'body is not a DER TimeStampReq', { cause });
  }
  return checked({
    hashAlgorithmOid: req.messageImprint.hashAlgorithm.algorithm,
    hashedMessage: Buffer.from(req.messageImprint.hashedMessage.buffer),
    ...(req.nonce ? { nonce: bigintOf(req.nonce) } : {}),
    certReq: req.certReq === true,
    ...(req.reqPolicy ? { policy: req.reqPolicy } : {}),
  });
}

/**
 * Parses sigstore/timestamp-authority's JSON request, which sigstore-js sends:
 * `{"artifactHash": b64, "hashAlgorithm": "sha256", "nonce"?: int, "certificates"?: bool, "tsaPolicyOID"?: oid}`.
 */
export function parseJsonTimestampRequest(body: unknown): TimestampRequest {
  const bad = (what: string): never => {
    throw new TsaError('TSA_REQUEST_INVALID', `timestamp request: ${what}`);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('not a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.artifactHash !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b.artifactHash))
    bad('artifactHash must be a base64 string');
  const name = typeof b.hashAlgorithm === 'string' ? b.hashAlgorithm.toLowerCase() : bad('hashAlgorithm missing');
  const oid = JSON_HASH_NAMES[name];
  if (!oid) throw new TsaError('TSA_HASH_ALGORITHM', `hash algorithm '${name}' is not supported`);
  if (b.certificates !== undefined && typeof b.certificates !== 'boolean') bad('certificates must be a boolean');
  if (b.tsaPolicyOID !== undefined && (typeof b.tsaPolicyOID !== 'string' || !/^\d+(\.\d+)+$/.test(b.tsaPolicyOID)))
    bad('tsaPolicyOID must be a dotted object identifier');
  let nonce: bigint | undefined;
  if (b.nonce !== undefined && b.nonce !== null) {
    const ok =
      (typeof b.nonce === 'number' && Number.isSafeInteger(b.nonce) && b.nonce >= 0) ||
      (typeof b.nonce === 'string' && /^\d{1,49}$/.test(b.nonce));
    if (!ok) bad('nonce must be a non-negative integer');
    nonce = BigInt(b.nonce as number | string);
  }
  return checked({
    hashAlgorithmOid: oid,
    hashedMessage: Buffer.from(b.artifactHash as string, 'base64'),
    ...(nonce !== undefined ? { nonce } : {}),
    certReq: b.certificates === true,
    ...(typeof b.tsaPolicyOID === 'string' ? { policy: b.tsaPolicyOID } : {}),
  });
}

/** Refuses weak or unknown hashes and an imprint of the wrong length (as the reference's VerifyRequest). */
function checked(req: TimestampRequest): TimestampRequest {
  const hash = HASHES[req.hashAlgorithmOid];
  if (!hash) {
    const weak = req.hashAlgorithmOid === OID.sha1 || req.hashAlgorithmOid === OID.md5;
    throw new TsaError(
      'TSA_HASH_ALGORITHM',
      `hash algorithm ${req.hashAlgorithmOid} is ${weak ? 'too weak' : 'not supported'}; use SHA-256, SHA-384 or SHA-512`,
    );
  }
  if (req.hashedMessage.length !== hash.length)
    throw new TsaError(
      'TSA_REQUEST_INVALID',
      `message imprint is ${req.hashedMessage.length} bytes, a ${hash.name} digest is ${hash.length}`,
    );
  return req;
}

function bigintOf(bytes: ArrayBuffer): bigint {
  const hex = Buffer.from(bytes).toString('hex');
  return hex ? BigInt(`0x${hex}`) : 0n;
}

/** A non-negative integer as the content octets of a DER INTEGER (minimal, with a 0x00 guard for the sign bit). */
function integerBytes(n: bigint): ArrayBuffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const buf = Buffer.from(hex, 'hex');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
}

function ab(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
}

/**
 * An RFC 3161 timestamp authority: signs `TSTInfo`s with its ECDSA P-256 key in a CMS SignedData whose signed
 * attributes carry contentType, messageDigest and ESS signingCertificateV2 (RFC 5035), so `openssl ts -verify`
 * and @sigstore/verify both accept the token. Serial numbers are random 159-bit integers.
 */
export class TimestampAuthority {
  private readonly leafDer: Buffer;
  private readonly leaf: Certificate;

  constructor(private readonly material: TsaMaterial) {
    this.leafDer = Buffer.from(material.chain[0]!.rawData);
    this.leaf = AsnConvert.parse(this.leafDer, Certificate);
  }

  /** The chain, leaf first, root last (for `timestampAuthorities[].certChain` and `/certchain`). */
  get chain(): X509Certificate[] {
    return this.material.chain;
  }

  get chainDer(): Buffer[] {
    return this.material.chain.map((c) => Buffer.from(c.rawData));
  }

  get chainPem(): string {
    return this.material.chain.map((c) => c.toString('pem') + '\n').join('');
  }

  /** Answers a request with a DER `TimeStampResp` (status granted). `now` is the clock (tests backdate it). */
  respond(request: TimestampRequest, now: Date = new Date()): Buffer {
    const req = checked(request);
    // GeneralizedTime without fractions; the accuracy field says ±1 s (as the reference TSA).
    const genTime = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const tstInfo = new TSTInfo({
      version: 1,
      policy: req.policy ?? DEFAULT_TSA_POLICY,
      messageImprint: new MessageImprint({
        hashAlgorithm: new AlgorithmIdentifier({ algorithm: req.hashAlgorithmOid }),
        hashedMessage: new OctetString(ab(req.hashedMessage)),
      }),
      serialNumber: integerBytes(BigInt(`0x${randomBytes(20).toString('hex')}`) >> 1n),
      genTime,
      accuracy: new Accuracy({ seconds: 1 }),
      ordering: false,
      ...(req.nonce !== undefined ? { nonce: integerBytes(req.nonce) } : {}),
    });
    const tstDer = Buffer.from(AsnConvert.serialize(tstInfo));
    const token = new ContentInfo({
      contentType: id_signedData,
      content: AsnConvert.serialize(this.signedData(tstDer, req.certReq)),
    });
    return Buffer.from(
      AsnConvert.serialize(
        new TimeStampResp({ status: new PKIStatusInfo({ status: PKIStatus.granted }), timeStampToken: token }),
      ),
    );
  }

  private signedData(tstDer: Buffer, includeCertificate: boolean): SignedData {
    const attrs = this.signedAttributes(tstDer);
    const signedDer = Buffer.from(AsnConvert.serialize(new AttributeSet(attrs)));
    const signature = cryptoSign('sha256', signedDer, this.material.key);
    const sha256 = new AlgorithmIdentifier({ algorithm: OID.sha256 });
    const signerInfo = new SignerInfo({
      version: CMSVersion.v1,
      sid: new SignerIdentifier({
        issuerAndSerialNumber: new IssuerAndSerialNumber({
          issuer: this.leaf.tbsCertificate.issuer,
          serialNumber: this.leaf.tbsCertificate.serialNumber,
        }),
      }),
      digestAlgorithm: sha256,
      signedAttrs: attrs,
      signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID.ecdsaWithSha256 }),
      signature: new OctetString(ab(signature)),
    });
    return new SignedData({
      version: CMSVersion.v3,
      digestAlgorithms: new DigestAlgorithmIdentifiers([sha256]),
      encapContentInfo: new EncapsulatedContentInfo({
        eContentType: id_ct_tstInfo,
        eContent: new EncapsulatedContent({ single: new OctetString(ab(tstDer)) }),
      }),
      ...(includeCertificate
        ? { certificates: new CertificateSet([new CertificateChoices({ certificate: this.leaf })]) }
        : {}),
      signerInfos: new SignerInfos([signerInfo]),
    });
  }

  /** contentType, messageDigest, signingCertificateV2, in DER SET OF order (sorted by their encodings). */
  private signedAttributes(tstDer: Buffer): Attribute[] {
    const attr = (attrType: string, value: ArrayBuffer): Attribute => new Attribute({ attrType, attrValues: [value] });
    const certId = new EssCertIdV2({
      certHash: new OctetString(ab(createHash('sha256').update(this.leafDer).digest())),
    });
    const attrs = [
      attr(OID.contentType, AsnConvert.serialize(new OidValue(id_ct_tstInfo))),
      attr(OID.messageDigest, AsnConvert.serialize(new OctetString(ab(createHash('sha256').update(tstDer).digest())))),
      attr(
        OID.signingCertificateV2,
        AsnConvert.serialize(new SigningCertificateV2({ certs: new EssCertIdV2s([certId]) })),
      ),
    ];
    return attrs
      .map((a) => ({ a, der: Buffer.from(AsnConvert.serialize(a)) }))
      .sort((x, y) => Buffer.compare(x.der, y.der))
      .map((x) => x.a);
  }
}
