import type { KeyObject } from 'node:crypto';
import { crypto, X509Certificate } from '@sigstore/core';

/**
 * @sigstore/core's X509Certificate with the same answers, computed once per object: its ASN.1 reader re-encodes
 * the whole certificate to DER on every `equals`, and the TBS part and the issuer's key on every `verify`, which made
 * @sigstore/verify's chain building most of a cold verification. Each value here is exactly what the stock method
 * returns (the same stock code, called once: the parsed ASN.1 tree is never modified), so every check still runs
 * for every verification; only the re-encoding is not repeated. An object lives as long as what holds it: the trust
 * material of one trusted root (its CA and TSA certificates), or one bundle's verification (its leaf).
 */
export class MemoCertificate extends X509Certificate {
  private der?: Buffer;
  private tbsDer?: Buffer;
  private spki?: Buffer;
  private key?: KeyObject;
  /** verify(issuer) results; issuers are MemoCertificates of the same root or verification (held weakly). */
  private readonly verified = new WeakMap<X509Certificate, boolean>();

  static of(cert: X509Certificate): MemoCertificate {
    return cert instanceof MemoCertificate ? cert : new MemoCertificate(cert.root);
  }

  static fromDer(der: Buffer): MemoCertificate {
    return new MemoCertificate(X509Certificate.parse(Buffer.from(der)).root);
  }

  /** The DER as @sigstore/core re-encodes it (what its `equals` compares). */
  encoded(): Buffer {
    return (this.der ??= this.root.toDER());
  }

  override get publicKey(): Buffer {
    return (this.spki ??= super.publicKey);
  }

  /** The subject public key as a KeyObject. */
  publicKeyObject(): KeyObject {
    return (this.key ??= crypto.createPublicKey(this.publicKey));
  }

  override equals(other: X509Certificate): boolean {
    return this.encoded().equals(other instanceof MemoCertificate ? other.encoded() : other.root.toDER());
  }

  override verify(issuerCertificate?: X509Certificate): boolean {
    const issuer = issuerCertificate ?? this;
    const known = this.verified.get(issuer);
    if (known !== undefined) return known;
    const key = issuer instanceof MemoCertificate ? issuer.publicKeyObject() : crypto.createPublicKey(issuer.publicKey);
    const ok = crypto.verify(
      (this.tbsDer ??= this.tbsCertificate.toDER()),
      key,
      this.signatureValue,
      this.signatureAlgorithm,
    );
    this.verified.set(issuer, ok);
    return ok;
  }
}
