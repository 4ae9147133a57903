import './reflect-polyfill.js';
import { OidcTokenVerifier, type OidcPrincipal, type TrustedIssuer } from '@airlock/identity';
import {
  AuthorityKeyIdentifierExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type Extension,
} from '@peculiar/x509';
import { loadOrCreateCaMaterial, type CaKeyOptions, type CaMaterial } from './ca-keys.js';
import { keyIdentifierHex, randomSerialHex, SIGNING_ALGORITHM } from './crypto-provider.js';
import { CaError } from './errors.js';
import { buildClaimExtensions, issuerExtensions, nodeAttestationExtensions } from './extensions.js';
import {
  decodeProofOfPossession,
  parseCsr,
  parseSubmittedPublicKey,
  verifyProofOfPossession,
  type SubmittedKey,
} from './public-key.js';

export const DEFAULT_CERT_VALIDITY_SECONDS = 600;
const MAX_CERT_VALIDITY_SECONDS = 24 * 3600;

export interface CertificateAuthorityOptions extends CaKeyOptions {
  /** OIDC issuers whose tokens are accepted (validated at start-up). */
  issuers: readonly TrustedIssuer[];
  /** Leaf lifetime, default 600 s (Fulcio's 10 minutes), at most one day. */
  certValiditySeconds?: number;
  /** Default expected token audience (`sigstore`); an issuer entry may override it. */
  audience?: string;
  clockToleranceSeconds?: number;
}

/** A request in Fulcio's two flavours: public key + proof of possession, or a CSR. */
export type SigningCertificateRequest =
  { token: string; publicKey: string; proofOfPossession: Uint8Array | string } | { token: string; csr: string };

export interface IssuedCertificate {
  certificatePem: string;
  certificateDer: Buffer;
  /** Leaf, intermediate, root (PEM), as in Fulcio's response. */
  chainPem: string[];
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  principal: OidcPrincipal;
}

export interface CaSubject {
  organization: string;
  commonName: string;
}

/** Fulcio `GET /api/v2/trustBundle` body. */
export interface TrustBundle {
  chains: { certificates: string[] }[];
}

/** Fulcio `GET /api/v2/configuration` body (`OIDCIssuer` list, plus `subjectDomain` for uri issuers). */
export interface CaConfiguration {
  issuers: {
    issuerUrl: string;
    audience: string;
    challengeClaim: 'email' | 'sub';
    spiffeTrustDomain?: string;
    subjectDomain?: string;
  }[];
}

/**
 * The in-process certificate authority: verifies an OIDC token, the requester's proof of possession, and signs a
 * short-lived code-signing leaf under the intermediate — Fulcio's `signingCert`
 * (https://github.com/sigstore/fulcio/blob/main/docs/certificate-specification.md) without CT.
 */
export class CertificateAuthority {
  readonly rootPem: string;
  readonly intermediatePem: string;
  /** `[intermediate, root]` DER, the order of a trusted_root `certChain`. */
  readonly chainDer: Buffer[];
  /** Start of the window in which the whole chain is valid (trusted_root `validFor.start`). */
  readonly validFrom: Date;
  /** End of that window. */
  readonly validUntil: Date;
  /** Root subject, for trusted_root `certificateAuthorities[].subject`. */
  readonly subject: CaSubject;
  readonly issuers: readonly TrustedIssuer[];
  readonly certValiditySeconds: number;
  readonly source: CaMaterial['source'];
  readonly #material: CaMaterial;
  readonly #verifier: OidcTokenVerifier;
  readonly #audience: string;

  private constructor(
    material: CaMaterial,
    verifier: OidcTokenVerifier,
    certValiditySeconds: number,
    audience: string,
  ) {
    this.#material = material;
    this.#verifier = verifier;
    this.#audience = audience;
    this.issuers = verifier.issuers;
    this.certValiditySeconds = certValiditySeconds;
    this.source = material.source;
    this.rootPem = material.root.toString('pem');
    this.intermediatePem = material.intermediate.toString('pem');
    this.chainDer = [Buffer.from(material.intermediate.rawData), Buffer.from(material.root.rawData)];
    this.validFrom = new Date(Math.max(material.root.notBefore.getTime(), material.intermediate.notBefore.getTime()));
    this.validUntil = new Date(Math.min(material.root.notAfter.getTime(), material.intermediate.notAfter.getTime()));
    this.subject = {
      organization: material.root.subjectName.getField('O')[0] ?? '',
      commonName: material.root.subjectName.getField('CN')[0] ?? '',
    };
  }

  /** Loads or creates the CA keys (see `loadOrCreateCaMaterial`) and validates the issuer configuration. */
  static async open(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const validity = options.certValiditySeconds ?? DEFAULT_CERT_VALIDITY_SECONDS;
    if (!Number.isSafeInteger(validity) || validity < 1 || validity > MAX_CERT_VALIDITY_SECONDS) {
      throw new CaError(
        'CA_CONFIG_INVALID',
        `certValiditySeconds must be an integer in 1..${MAX_CERT_VALIDITY_SECONDS}`,
      );
    }
    let verifier: OidcTokenVerifier;
    try {
      verifier = new OidcTokenVerifier({
        issuers: options.issuers,
        ...(options.audience !== undefined ? { audience: options.audience } : {}),
        ...(options.clockToleranceSeconds !== undefined
          ? { clockToleranceSeconds: options.clockToleranceSeconds }
          : {}),
      });
    } catch (err) {
      throw new CaError('CA_CONFIG_INVALID', `invalid OIDC issuer configuration: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const material = await loadOrCreateCaMaterial(options);
    return new CertificateAuthority(material, verifier, validity, options.audience ?? 'sigstore');
  }

  /**
   * Issues a leaf for a request. Throws the identity package's `OIDC_*` errors for an unacceptable token, and
   * `CaError` (`CA_POP_INVALID`, `CA_UNSUPPORTED_KEY`, `CA_REQUEST_INVALID`, …) for the key or request.
   */
  async issue(request: SigningCertificateRequest, options: { now?: Date } = {}): Promise<IssuedCertificate> {
    const now = options.now ?? new Date();
    const verified = await this.#verifier.verify(request.token, { now });
    let key: SubmittedKey;
    if ('csr' in request) {
      key = await parseCsr(request.csr);
    } else {
      key = parseSubmittedPublicKey(request.publicKey);
      const pop =
        typeof request.proofOfPossession === 'string'
          ? decodeProofOfPossession(request.proofOfPossession)
          : Buffer.from(request.proofOfPossession);
      verifyProofOfPossession(key, pop, verified.principal.name);
    }
    const claimExtensions = [
      ...buildClaimExtensions(verified.claims),
      ...nodeAttestationExtensions(verified.claims, verified.issuer),
    ];
    return this.#sign(key, verified.principal, claimExtensions, now);
  }

  async #sign(
    key: SubmittedKey,
    principal: OidcPrincipal,
    claimExtensions: Extension[],
    now: Date,
  ): Promise<IssuedCertificate> {
    const { intermediate, root, signingKey, signingCrypto, intermediateKeyId } = this.#material;
    // Whole seconds: X.509 times have second precision, and the window must be exactly certValiditySeconds.
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + this.certValiditySeconds * 1000);
    if (notBefore < intermediate.notBefore || notAfter > intermediate.notAfter || notAfter > root.notAfter) {
      throw new CaError(
        'CA_NOT_VALID_NOW',
        `the CA chain is not valid for ${notBefore.toISOString()}..${notAfter.toISOString()}`,
      );
    }
    const san =
      principal.san.type === 'email'
        ? { type: 'email' as const, value: principal.san.value }
        : { type: 'url' as const, value: principal.san.value };
    const serialNumber = randomSerialHex();
    const leaf = await X509CertificateGenerator.create(
      {
        serialNumber,
        // Empty subject: the identity lives only in the (therefore critical) SAN — RFC 5280 §4.2.1.6.
        issuer: intermediate.subjectName,
        notBefore,
        notAfter,
        publicKey: key.spki,
        signingKey,
        signingAlgorithm: SIGNING_ALGORITHM,
        extensions: [
          new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
          new ExtendedKeyUsageExtension([ExtendedKeyUsage.codeSigning], false),
          new SubjectKeyIdentifierExtension(await keyIdentifierHex(key.spki)),
          new AuthorityKeyIdentifierExtension(intermediateKeyId),
          new SubjectAlternativeNameExtension([san], true),
          ...issuerExtensions(principal.issuerUrl),
          ...claimExtensions,
        ],
      },
      signingCrypto,
    );
    const certificatePem = leaf.toString('pem');
    return {
      certificatePem,
      certificateDer: Buffer.from(leaf.rawData),
      chainPem: [certificatePem, this.intermediatePem, this.rootPem],
      serialNumber,
      notBefore,
      notAfter,
      principal,
    };
  }

  trustBundle(): TrustBundle {
    return { chains: [{ certificates: [this.intermediatePem, this.rootPem] }] };
  }

  configuration(): CaConfiguration {
    return {
      issuers: this.issuers.map((i) => ({
        issuerUrl: i.issuerUrl,
        audience: i.audience ?? this.#audience,
        challengeClaim: i.type === 'email' ? ('email' as const) : ('sub' as const),
        ...(i.type === 'spiffe' && i.trustDomain ? { spiffeTrustDomain: i.trustDomain } : {}),
        ...(i.type === 'uri' && i.subjectDomain ? { subjectDomain: i.subjectDomain } : {}),
      })),
    };
  }
}
