/**
 * TPM2_MakeCredential on the verifier (TPM 2.0 Part 1 §24 "Credential Protection", Annex B.10.4 / C.6.4 secret
 * sharing): the credential can only be recovered by TPM2_ActivateCredential in the TPM holding the EK's private key
 * AND an object whose Name is `objectName` — which binds the AK to the certified EK.
 */
import {
  constants,
  createCipheriv,
  createHash,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { AttestError } from '../errors.js';
import { CURVES, TPM_ALG, type TpmHashName } from './constants.js';
import { tpm2b, u32be } from './marshal.js';
import { publicKeyObject, type TpmPublic } from './public.js';

/** A NUL-terminated label, as KDFa/KDFe use it ("IDENTITY", "STORAGE", "INTEGRITY"). */
function label(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'latin1');
}

/** KDFa (Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC. */
export function kdfa(
  hash: TpmHashName,
  key: Buffer,
  use: string,
  contextU: Buffer,
  contextV: Buffer,
  bits: number,
): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHmac(hash, key)
      .update(u32be(i))
      .update(label(use))
      .update(contextU)
      .update(contextV)
      .update(u32be(bits))
      .digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, Math.ceil(bits / 8));
}

/** KDFe (Part 1 §11.4.10.3): SP 800-56A concatenation KDF over an ECDH shared secret Z. */
export function kdfe(hash: TpmHashName, z: Buffer, use: string, partyU: Buffer, partyV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHash(hash).update(u32be(i)).update(z).update(label(use)).update(partyU).update(partyV).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, Math.ceil(bits / 8));
}

export interface MadeCredential {
  /** TPM2B_ID_OBJECT contents: TPM2B_DIGEST(outer HMAC) || encrypted TPM2B_DIGEST(credential). */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET contents: the seed, encrypted to the EK. */
  encryptedSecret: Buffer;
}

function digestBytes(hash: TpmHashName): number {
  return createHash(hash).digest().length;
}

/** The seed and its encryption to the EK: RSA-OAEP with label "IDENTITY", or ECDH + KDFe for an ECC EK. */
function seedFor(ek: TpmPublic): { seed: Buffer; encryptedSecret: Buffer } {
  const n = digestBytes(ek.nameAlg);
  if (ek.type === 'rsa') {
    const seed = randomBytes(n);
    const encryptedSecret = publicEncrypt(
      {
        key: publicKeyObject(ek),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: ek.nameAlg,
        oaepLabel: label('IDENTITY'),
      },
      seed,
    );
    return { seed, encryptedSecret };
  }
  const curve = CURVES[ek.ecc!.curve];
  if (!curve) throw new AttestError('TPM_UNSUPPORTED', `EK curve 0x${ek.ecc!.curve.toString(16)} is not supported`);
  const eph = generateKeyPairSync('ec', { namedCurve: curve.node });
  const z = diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyObject(ek) });
  const jwk = eph.publicKey.export({ format: 'jwk' });
  const ex = Buffer.from(jwk.x!, 'base64url');
  const ey = Buffer.from(jwk.y!, 'base64url');
  const seed = kdfe(ek.nameAlg, z, 'IDENTITY', ex, ek.ecc!.x, n * 8);
  return { seed, encryptedSecret: Buffer.concat([tpm2b(ex), tpm2b(ey)]) };
}

/** TPM2_MakeCredential(ekPublic, credential, objectName), in software. */
export function makeCredential(ek: TpmPublic, credential: Buffer, objectName: Buffer): MadeCredential {
  const sym = ek.symmetric;
  if (!sym || sym.alg !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB || ![128, 256].includes(sym.keyBits))
    throw new AttestError('TPM_UNSUPPORTED', 'EK must be a storage key with AES-128/256-CFB symmetric protection');
  if (credential.length === 0 || credential.length > digestBytes(ek.nameAlg))
    throw new AttestError('TPM_UNSUPPORTED', `credential must be 1..${digestBytes(ek.nameAlg)} bytes`);
  const { seed, encryptedSecret } = seedFor(ek);
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', objectName, Buffer.alloc(0), sym.keyBits);
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]);
  const hmacKey = kdfa(ek.nameAlg, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), digestBytes(ek.nameAlg) * 8);
  const outerHmac = createHmac(ek.nameAlg, hmacKey).update(encIdentity).update(objectName).digest();
  return { credentialBlob: Buffer.concat([tpm2b(outerHmac), encIdentity]), encryptedSecret };
}

/** The file `tpm2_makecredential -o` writes and `tpm2_activatecredential -i` reads (tpm2-tools 5.x). */
export function tpm2ToolsCredentialFile(made: MadeCredential): Buffer {
  return Buffer.concat([u32be(0xbadcc0de), u32be(1), tpm2b(made.credentialBlob), tpm2b(made.encryptedSecret)]);
}
