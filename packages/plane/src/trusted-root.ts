import { createHash } from 'node:crypto';

export const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';

export interface TrustedRootInput {
  tlog: { baseUrl: string; publicKeyDer: Buffer; validFrom: Date };
  ca: { uri: string; chainDer: Buffer[]; validFrom: Date; organization?: string; commonName?: string };
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
  certificateAuthorities: Array<{
    subject: { organization: string; commonName: string };
    uri: string;
    certChain: { certificates: Array<{ rawBytes: string }> };
    validFor: { start: string; end?: string };
  }>;
  ctlogs: never[];
  timestampAuthorities: never[];
}

/**
 * Builds the trusted root clients use to verify what this plane signs. The log ID is SHA-256 of the log's DER
 * SPKI (what Rekor v1 reports and what the SET/checkpoint are matched against); the CA chain is
 * intermediate-first, root last (the anchor). No CT log and no TSA: the log's SET is the trusted time.
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
    timestampAuthorities: [],
  };
}
