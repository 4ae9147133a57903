import type { KeyObject } from 'node:crypto';
import { ASN1Obj, crypto, X509Certificate } from '@sigstore/core';
import { installKeyMemo, rememberKey } from './key-memo.js';

installKeyMemo();

/**
 * @sigstore/core's X509Certificate with the same answers, computed once per object: its ASN.1 reader re-encodes
 * the whole certificate to DER (in many small
 * buffers) on every `equals`, and the TBS part and the issuer's key on every `verify`, which made
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
    return (this.der ??= encodeDer(this.root));
  }

  /**
   * A fresh certificate equal to what the stock clone() makes (a parse of this encoding; callers modify clones):
   * a deep copy of the parsed tree, which is what parsing its own re-encoding gives, without the ASN.1 reader's
   * speculative parses (@sigstore/verify clones every leaf for its SCT check).
   */
  override clone(): X509Certificate {
    return new X509Certificate(copyTree(this.root));
  }

  override get publicKey(): Buffer {
    return (this.spki ??= super.publicKey);
  }

  /** The subject public key as a KeyObject. */
  publicKeyObject(): KeyObject {
    if (this.key === undefined) {
      this.key = crypto.createPublicKey(this.publicKey);
      // @sigstore/verify asks for this key again per verification (a TSA's for each token): answered from here.
      rememberKey(this.publicKey, this.key);
    }
    return this.key;
  }

  /**
   * Takes `key` (what OpenSSL decoded from `der`: node:crypto's X509Certificate.publicKey) as the subject key when
   * `der` is byte for byte this certificate's DER encoding. DER has one encoding per value, so both parsers then
   * read the same SubjectPublicKeyInfo, and @sigstore/verify's signer check need not decode the EC point again
   * (a createPublicKey per bundle). Otherwise nothing changes: the key is made from this parse as before.
   */
  adoptKey(der: Buffer, key: KeyObject): void {
    if (this.key !== undefined || !this.encoded().equals(der)) return;
    this.key = key;
    rememberKey(this.publicKey, key);
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
      (this.tbsDer ??= encodeDer(this.tbsCertificate)),
      key,
      this.signatureValue,
      this.signatureAlgorithm,
    );
    this.verified.set(issuer, ok);
    return ok;
  }
}

/** A deep copy of an ASN.1 tree (own value buffers, own arrays). */
export function copyTree(obj: ASN1Obj): ASN1Obj {
  return new ASN1Obj(obj.tag, Buffer.from(obj.value), obj.subs.map(copyTree));
}

/**
 * Byte for byte what @sigstore/core's `ASN1Obj.toDER()` returns (tag byte, minimal definite length, the children's
 * encodings or the primitive value), written into one buffer instead of one growing buffer per node.
 */
export function encodeDer(obj: ASN1Obj): Buffer {
  const sizes = new Map<ASN1Obj, number>();
  const size = (o: ASN1Obj): number => {
    let content = 0;
    if (o.subs.length > 0) for (const s of o.subs) content += size(s);
    else content = o.value.length;
    sizes.set(o, content);
    return 1 + lengthOctets(content) + content;
  };
  const out = Buffer.allocUnsafe(size(obj));
  const write = (o: ASN1Obj, at: number): number => {
    const content = sizes.get(o)!;
    out[at++] = o.tag.toDER();
    at = writeLength(out, at, content);
    if (o.subs.length > 0) for (const s of o.subs) at = write(s, at);
    else at += o.value.copy(out, at);
    return at;
  };
  write(obj, 0);
  return out;
}

type ToDer = (this: ASN1Obj) => Buffer;
const STOCK_DER = Symbol.for('airlock.verify.stockToDER');

/**
 * Puts encodeDer behind @sigstore/core's ASN1Obj.toDER (once per process): the same bytes, written into one
 * buffer instead of one growing buffer per node. The library re-encodes a timestamp token's signed attributes and
 * TSTInfo on every RFC 3161 check, and a certificate's parts wherever it compares or verifies one (about a tenth of
 * a bundle's verification CPU here). Every caller still gets a fresh buffer of its own (one mutates it).
 */
export function installFastDer(): void {
  const proto = ASN1Obj.prototype as unknown as Record<string | symbol, unknown>;
  if (proto[STOCK_DER] !== undefined) return;
  proto[STOCK_DER] = ASN1Obj.prototype.toDER;
  const fast: ToDer = function (this: ASN1Obj) {
    return encodeDer(this);
  };
  proto.toDER = fast;
}

installFastDer();

/** @sigstore/core's own ASN1Obj.toDER on `obj` (tests compare encodeDer with it). */
export function stockToDer(obj: ASN1Obj): Buffer {
  const stock = (ASN1Obj.prototype as unknown as Record<symbol, ToDer | undefined>)[STOCK_DER];
  return (stock ?? ASN1Obj.prototype.toDER).call(obj);
}

function lengthOctets(len: number): number {
  if (len < 128) return 1;
  let n = 0;
  for (let v = len; v > 0; v = Math.floor(v / 256)) n++;
  return 1 + n;
}

function writeLength(out: Buffer, at: number, len: number): number {
  if (len < 128) {
    out[at] = len;
    return at + 1;
  }
  const n = lengthOctets(len) - 1;
  out[at] = 0x80 | n;
  for (let i = n, v = len; i >= 1; i--, v = Math.floor(v / 256)) out[at + i] = v % 256;
  return at + 1 + n;
}
