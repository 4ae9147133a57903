import { createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { Signature, Signer } from '@sigstore/sign';
import { SignError } from './errors.js';

/**
 * A `Signer` (the @sigstore/sign port) backed by a long-lived private key instead of a Fulcio certificate:
 * the bundle carries a `publicKey.hint`, and verifiers are given the key out of band (`airlock verify --key`).
 */
export class KeySigner implements Signer {
  private readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
  readonly hint: string;

  constructor(privateKeyPem: string | Buffer, hint = '') {
    this.privateKey = createPrivateKey(privateKeyPem);
    const type = this.privateKey.asymmetricKeyType;
    const curve = this.privateKey.asymmetricKeyDetails?.namedCurve;
    // @sigstore/verify@3 checks ECDSA with SHA-256 whatever the curve, so only P-256 and Ed25519 round-trip.
    if (!(type === 'ec' && curve === 'prime256v1') && type !== 'ed25519') {
      throw new SignError(
        'SIGN_KEY_UNSUPPORTED',
        `unsupported signing key (${type}${curve ? ` ${curve}` : ''}): use ECDSA P-256 or Ed25519`,
      );
    }
    this.publicKeyPem = createPublicKey(this.privateKey).export({ type: 'spki', format: 'pem' }).toString();
    this.hint = hint;
  }

  async sign(data: Buffer): Promise<Signature> {
    const alg = this.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return {
      signature: cryptoSign(alg, data, this.privateKey),
      key: { $case: 'publicKey', publicKey: this.publicKeyPem, hint: this.hint },
    };
  }
}
