import { createHash } from 'node:crypto';

export const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';

export interface TrustedRootInput {
  tlog: { baseUrl: string; publicKeyDer: Buffer; validFrom: Date };
  ca: { uri: string; chainDer: Buffer[]; validFrom: Date; organization?: string; commonName?: string };
  /** The RFC 3161 timestamp authority: chain leaf first, root last. */
  tsa?: { uri: string; chainDer: Buffer[]; validFrom: Date; organization?: string; commonName?: string };
}

/** A certificate authority or timestamp authority entry (same shape in the trusted root). */
export interface CertificateAuthorityJson {
  subject: { organization: string; commonName: string };
  uri: string;
  certChain: { certificates: Array<{ rawBytes: string }> };
  validFor: { start: string; end?: string };
}

/** Sigstore TrustedRoot JSON (protobuf-specs sigstore_trustroot.proto, proto3 JSON mapping). */
export interface TrustedRootJson {
  mediaType: string;
  tlogs: Array<{
    baseUrl: string;
    hashAlgorithm: 'SHA2_256';
    publicKey: { rawBytes: string; keyDetails: string; validFor: { start: string; end?: string } };
    logId: { keyId: string };
  }>;
  certificateAuthorities: CertificateAuthorityJson[];
  ctlogs: never[];
  timestampAuthorities: CertificateAuthorityJson[];
}

/**
 * Builds the trusted root clients use to verify what this plane signs. The log ID is SHA-256 of the log's DER
 * SPKI (what Rekor v1 reports and what the SET/checkpoint are matched against); the CA chain is
 * intermediate-first, root last (the anchor). No CT log. The TSA (when given) is listed with `validFor` from its
 * leaf's notBefore, open-ended: its timestamps and, for v1 entries, the log's SET are the trusted times.
 */
export function buildTrustedRoot(input: TrustedRootInput): TrustedRootJson {
  return {
    mediaType: TRUSTED_ROOT_MEDIA_TYPE,
    tlogs: [
      {
        baseUrl: input.tlog.baseUrl,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: input.tlog.publicKeyDer.toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start: input.tlog.validFrom.toISOString() },
        },
        logId: { keyId: createHash('sha256').update(input.tlog.publicKeyDer).digest('base64') },
      },
    ],
    certificateAuthorities: [
      {
        subject: {
          organization: input.ca.organization ?? 'airlock',
          commonName: input.ca.commonName ?? 'airlock internal CA',
        },
        uri: input.ca.uri,
        certChain: { certificates: input.ca.chainDer.map((der) => ({ rawBytes: der.toString('base64') })) },
        validFor: { start: input.ca.validFrom.toISOString() },
      },
    ],
    ctlogs: [],
    timestampAuthorities: input.tsa
      ? [
          {
            subject: {
              organization: input.tsa.organization ?? 'airlock',
              commonName: input.tsa.commonName ?? 'airlock timestamp authority',
            },
            uri: input.tsa.uri,
            certChain: { certificates: input.tsa.chainDer.map((der) => ({ rawBytes: der.toString('base64') })) },
            validFor: { start: input.tsa.validFrom.toISOString() },
          },
        ]
      : [],
  };
}
