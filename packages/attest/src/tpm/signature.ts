/** TPMT_SIGNATURE parsing and verification with node:crypto (Part 2 §11.3.4). */
import { constants, verify as cryptoVerify } from 'node:crypto';
import { AttestError } from '../errors.js';
import { CURVES, TPM_ALG, hashName, type TpmHashName } from './constants.js';
import { TpmReader } from './marshal.js';
import { publicKeyObject, type TpmPublic } from './public.js';

export type TpmSignature =
  | { alg: 'rsassa' | 'rsapss'; hash: TpmHashName; sig: Buffer }
  | { alg: 'ecdsa'; hash: TpmHashName; r: Buffer; s: Buffer };

export function parseTpmtSignature(buf: Buffer): TpmSignature {
  const r = new TpmReader(buf, 'TPMT_SIGNATURE');
  const algId = r.u16();
  const hashId = r.u16();
  const hash = hashName(hashId);
  if (!hash) throw new AttestError('TPM_UNSUPPORTED', `TPMT_SIGNATURE: unsupported hash 0x${hashId.toString(16)}`);
  let sig: TpmSignature;
  if (algId === TPM_ALG.RSASSA || algId === TPM_ALG.RSAPSS)
    sig = { alg: algId === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hash, sig: r.tpm2b(512) };
  else if (algId === TPM_ALG.ECDSA) sig = { alg: 'ecdsa', hash, r: r.tpm2b(128), s: r.tpm2b(128) };
  else throw new AttestError('TPM_UNSUPPORTED', `TPMT_SIGNATURE: unsupported scheme 0x${algId.toString(16)}`);
  r.end();
  return sig;
}

function leftPad(b: Buffer, n: number): Buffer {
  if (b.length > n) throw new AttestError('TPM_MALFORMED', `ECDSA signature component longer than ${n} bytes`);
  return Buffer.concat([Buffer.alloc(n - b.length), b]);
}

/** True when `sig` is `key`'s signature over `message`; false on any mismatch (wrong key type, scheme, value). */
export function verifyTpmSignature(key: TpmPublic, sig: TpmSignature, message: Buffer): boolean {
  const keyObject = publicKeyObject(key);
  if (sig.alg === 'ecdsa') {
    if (key.type !== 'ecc') return false;
    const size = CURVES[key.ecc!.curve]!.bytes;
    const p1363 = Buffer.concat([leftPad(sig.r, size), leftPad(sig.s, size)]);
    return cryptoVerify(sig.hash, message, { key: keyObject, dsaEncoding: 'ieee-p1363' }, p1363);
  }
  if (key.type !== 'rsa') return false;
  const padding = sig.alg === 'rsassa' ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_PSS_PADDING;
  const saltLength = constants.RSA_PSS_SALTLEN_AUTO;
  return cryptoVerify(sig.hash, message, { key: keyObject, padding, saltLength }, sig.sig);
}
