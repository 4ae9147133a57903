import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeySigner } from '../src/key-signer.js';

const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
  k.export({ type: 'pkcs8', format: 'pem' }).toString();

describe('KeySigner', () => {
  it('signs with P-256 and Ed25519 keys and reports the public key', async () => {
    for (const kp of [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('ed25519')]) {
      const signer = new KeySigner(pem(kp.privateKey), 'hint-1');
      const data = Buffer.from('payload');
      const sig = await signer.sign(data);
      expect(sig.key).toEqual({ $case: 'publicKey', publicKey: signer.publicKeyPem, hint: 'hint-1' });
      const alg = kp.publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
      expect(verify(alg, data, kp.publicKey, sig.signature)).toBe(true);
      expect(verify(alg, Buffer.from('other'), kp.publicKey, sig.signature)).toBe(false);
    }
  });

  it('refuses keys @sigstore/verify@3 cannot check (P-384, RSA)', () => {
    expect(() => new KeySigner(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey))).toThrow(
      expect.objectContaining({ code: 'SIGN_KEY_UNSUPPORTED' }),
    );
    expect(() => new KeySigner(pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey))).toThrow(
      expect.objectContaining({ code: 'SIGN_KEY_UNSUPPORTED' }),
    );
  });
});
