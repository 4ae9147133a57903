/**
 * A certificate issuer for tests whose leaves carry RFC 6962 signed certificate timestamps, as Fulcio's do: the
 * issuer makes a precertificate (critical poison extension 1.3.6.1.4.1.11129.2.4.3), each test CT log signs the
 * precertificate's TBS with the poison removed (RFC 6962 §3.2, `PreCert { issuer_key_hash, tbs_certificate }`), and
 * the final certificate is that TBS plus the SCT list extension (1.3.6.1.4.1.11129.2.4.2). Certificates are built
 * with @peculiar/x509 / @peculiar/asn1-x509 and signed with node:crypto; only the SCT list itself is TLS encoding
 * (RFC 5246 §4), which no ASN.1 library writes. Knobs let a test make the SCTs wrong in one way each.
 */
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it before it loads
import { createHash, generateKeyPairSync, KeyObject, sign, webcrypto } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Certificate, DirectoryString, Extension } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';

export const OID_SCT_LIST = '1.3.6.1.4.1.11129.2.4.2';
export const OID_CT_POISON = '1.3.6.1.4.1.11129.2.4.3';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
const NULL_DER = new Uint8Array([0x05, 0x00]);
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** Node's WebCrypto handed to @peculiar/x509 per call (its global provider stays untouched). */
const x509Crypto = webcrypto as unknown as NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
type WebKey = Awaited<ReturnType<typeof x509Crypto.subtle.importKey>>;
interface WebKeyPair {
  privateKey: WebKey;
  publicKey: WebKey;
}

/** A test CT log: its P-256 key and RFC 6962 log id (sha256 of the SubjectPublicKeyInfo). */
export interface TestCtLog {
  privateKey: KeyObject;
  publicKeyDer: Buffer;
  logId: Buffer;
}

export function createTestCtLog(): TestCtLog {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' });
  return { privateKey, publicKeyDer, logId: createHash('sha256').update(publicKeyDer).digest() };
}

/** The trusted-root `ctlogs` entry for a test log. */
export function ctlogRootEntry(log: TestCtLog, validFor: { start: Date; end?: Date }): Record<string, unknown> {
  return {
    baseUrl: 'https://ct.test.invalid',
    hashAlgorithm: 'SHA2_256',
    publicKey: {
      rawBytes: log.publicKeyDer.toString('base64'),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: {
        start: validFor.start.toISOString(),
        ...(validFor.end ? { end: validFor.end.toISOString() } : {}),
      },
    },
    logId: { keyId: log.logId.toString('base64') },
  };
}

/** One SCT to embed: signed by `log` at `timestamp` over the precertificate, with `extensions` (default empty). */
export interface SctSpec {
  log: TestCtLog;
  timestamp: Date;
  extensions?: Buffer;
  /** Put this log id in the SCT instead of the signing log's (the signature is still the signing log's). */
  logIdOverride?: Buffer;
  /** Flip the last byte of the extensions after signing (they must be non-empty). */
  flipExtensionsAfterSigning?: boolean;
}

export interface SctLeafOptions {
  san: string;
  oidcIssuer: string;
  notBefore: Date;
  notAfter: Date;
  scts: SctSpec[];
  /** Leave the SCT list extension out altogether (a certificate from a CA that logs to no CT log). */
  withoutSctExtension?: boolean;
  /** Rewrite the encoded SCT list before it is embedded (e.g. truncate it). */
  tamperList?: (list: Buffer) => Buffer;
}

export interface SctLeaf {
  der: Buffer;
  pem: string;
  privateKey: KeyObject;
}

/** A self-signed test CA (P-256) issuing code-signing leaves with embedded SCTs. */
export class SctCertificateIssuer {
  private constructor(
    private readonly caKeys: WebKeyPair,
    readonly caCertDer: Buffer,
  ) {}

  static async create(name = 'airlock test CT-logged CA'): Promise<SctCertificateIssuer> {
    const keys = (await x509Crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as WebKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned(
      {
        name: `CN=${name}, O=airlock-test`,
        keys,
        serialNumber: '01',
        notBefore: new Date(Date.now() - 24 * 3600_000),
        notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
        signingAlgorithm: ECDSA,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ],
      },
      x509Crypto,
    );
    return new SctCertificateIssuer(keys, Buffer.from(ca.rawData));
  }

  /** The trusted-root `certificateAuthorities` entry for this CA. */
  rootEntry(validFrom: Date): Record<string, unknown> {
    return {
      subject: { organization: 'airlock-test', commonName: 'airlock test CT-logged CA' },
      uri: 'https://ca.test.invalid',
      certChain: { certificates: [{ rawBytes: this.caCertDer.toString('base64') }] },
      validFor: { start: validFrom.toISOString() },
    };
  }

  async issue(options: SctLeafOptions): Promise<SctLeaf> {
    const leafKeys = (await x509Crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as WebKeyPair;
    const precert = await this.precertificate(leafKeys.publicKey, options);
    const tbs = AsnConvert.parse(precert, Certificate).tbsCertificate;
    const kept = (tbs.extensions ?? []).filter((e) => e.extnID !== OID_CT_POISON);
    tbs.extensions = kept as typeof tbs.extensions;
    const preTbs = Buffer.from(AsnConvert.serialize(tbs));
    const issuerKeyHash = createHash('sha256')
      .update(new Uint8Array(new x509.X509Certificate(this.caCertDer).publicKey.rawData))
      .digest();
    let list = sctList(options.scts.map((s) => encodeSct(s, issuerKeyHash, preTbs)));
    if (options.tamperList) list = options.tamperList(list);
    if (!options.withoutSctExtension)
      tbs.extensions!.push(
        new Extension({
          extnID: OID_SCT_LIST,
          critical: false,
          extnValue: new OctetString(AsnConvert.serialize(new OctetString(list))),
        }),
      );
    const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
    const caKey = KeyObject.from(this.caKeys.privateKey as unknown as webcrypto.CryptoKey);
    const cert = new Certificate({
      tbsCertificate: tbs,
      signatureAlgorithm: tbs.signature,
      signatureValue: sign('sha256', tbsDer, caKey).buffer as ArrayBuffer,
    });
    const der = Buffer.from(AsnConvert.serialize(cert));
    return {
      der,
      // 64-character lines; no empty line when the base64 is a multiple of 64 (openssl refuses that PEM).
      pem: `-----BEGIN CERTIFICATE-----\n${der
        .toString('base64')
        .match(/.{1,64}/g)!
        .join('\n')}\n-----END CERTIFICATE-----\n`,
      privateKey: KeyObject.from(leafKeys.privateKey as unknown as webcrypto.CryptoKey),
    };
  }

  private async precertificate(publicKey: WebKey, o: SctLeafOptions): Promise<ArrayBuffer> {
    const ca = new x509.X509Certificate(this.caCertDer);
    const cert = await x509.X509CertificateGenerator.create(
      {
        issuer: ca.subject,
        subject: '',
        publicKey,
        signingKey: this.caKeys.privateKey,
        serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
          .toString('hex')
          .replace(/^[89a-f]/, '1'),
        notBefore: o.notBefore,
        notAfter: o.notAfter,
        signingAlgorithm: ECDSA,
        extensions: [
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([EKU_CODE_SIGNING]),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.san }], true),
          new x509.Extension(OID_FULCIO_ISSUER_V2, false, utf8String(o.oidcIssuer)),
          new x509.Extension(OID_CT_POISON, true, NULL_DER),
        ],
      },
      x509Crypto,
    );
    return cert.rawData;
  }
}

/** DER UTF8String (what Fulcio puts in its v2 issuer extension), via the ASN.1 library. */
function utf8String(value: string): ArrayBuffer {
  return AsnConvert.serialize(new DirectoryString({ utf8String: value }));
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** One TLS-encoded SignedCertificateTimestamp (RFC 6962 §3.2), signed over the precertificate entry. */
function encodeSct(spec: SctSpec, issuerKeyHash: Buffer, preTbs: Buffer): Buffer {
  const ext = spec.extensions ?? Buffer.alloc(0);
  const timestamp = Buffer.alloc(8);
  timestamp.writeBigUInt64BE(BigInt(spec.timestamp.getTime()));
  const tbsLen = Buffer.alloc(3);
  tbsLen.writeUIntBE(preTbs.length, 0, 3);
  const signed = Buffer.concat([
    Buffer.from([0, 0]), // v1, certificate_timestamp
    timestamp,
    u16(1), // precert_entry
    issuerKeyHash,
    tbsLen,
    preTbs,
    u16(ext.length),
    ext,
  ]);
  const signature = sign('sha256', signed, spec.log.privateKey);
  const shownExt = Buffer.from(ext);
  if (spec.flipExtensionsAfterSigning) shownExt[shownExt.length - 1]! ^= 1;
  return Buffer.concat([
    Buffer.from([0]),
    spec.logIdOverride ?? spec.log.logId,
    timestamp,
    u16(shownExt.length),
    shownExt,
    Buffer.from([4, 3]), // sha256, ecdsa
    u16(signature.length),
    signature,
  ]);
}

/** SignedCertificateTimestampList: a u16 total length, then each SCT with a u16 length. */
function sctList(scts: Buffer[]): Buffer {
  const body = Buffer.concat(scts.flatMap((s) => [u16(s.length), s]));
  return Buffer.concat([u16(body.length), body]);
}
