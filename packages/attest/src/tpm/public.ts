/** TPM2B_PUBLIC / TPMT_PUBLIC parsing, object names and node:crypto key objects (Part 2 §12.2). */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AttestError } from '../errors.js';
import { CURVES, TPM_ALG, TPMA_OBJECT, hashName, type TpmHashName } from './constants.js';
import { TpmReader, u16be } from './marshal.js';

export interface TpmSymDef {
  alg: number;
  keyBits: number;
  mode: number;
}

export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: TpmHashName;
  nameAlgId: number;
  attributes: number;
  authPolicy: Buffer;
  /** Undefined when TPM_ALG_NULL. */
  symmetric?: TpmSymDef;
  /** Signing scheme (TPM_ALG_NULL when the key does not fix one) and its hash id. */
  scheme: { alg: number; hash: number };
  rsa?: { bits: number; exponent: number; modulus: Buffer };
  ecc?: { curve: number; x: Buffer; y: Buffer };
  /** The marshalled TPMT_PUBLIC (what the object's name hashes). */
  tpmtPublic: Buffer;
}

function readSymDef(r: TpmReader): TpmSymDef | undefined {
  const alg = r.u16();
  if (alg === TPM_ALG.NULL) return undefined;
  return { alg, keyBits: r.u16(), mode: r.u16() };
}

function readScheme(r: TpmReader): { alg: number; hash: number } {
  const alg = r.u16();
  if (alg === TPM_ALG.NULL) return { alg, hash: TPM_ALG.NULL };
  const hash = r.u16();
  if (alg === TPM_ALG.ECDAA) r.u16(); // count
  return { alg, hash };
}

function readTpmtPublic(r: TpmReader): Omit<TpmPublic, 'tpmtPublic'> {
  const typeId = r.u16();
  const nameAlgId = r.u16();
  const nameAlg = hashName(nameAlgId);
  if (!nameAlg)
    throw new AttestError('TPM_UNSUPPORTED', `TPMT_PUBLIC: unsupported nameAlg 0x${nameAlgId.toString(16)}`);
  const attributes = r.u32();
  const authPolicy = r.tpm2b(64);
  if (typeId === TPM_ALG.RSA) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r);
    const bits = r.u16();
    const exponent = r.u32();
    const modulus = r.tpm2b(512);
    return {
      type: 'rsa',
      nameAlg,
      nameAlgId,
      attributes,
      authPolicy,
      symmetric,
      scheme,
      rsa: { bits, exponent, modulus },
    };
  }
  if (typeId === TPM_ALG.ECC) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r);
    const curve = r.u16();
    readScheme(r); // kdf
    const x = r.tpm2b(128);
    const y = r.tpm2b(128);
    return { type: 'ecc', nameAlg, nameAlgId, attributes, authPolicy, symmetric, scheme, ecc: { curve, x, y } };
  }
  throw new AttestError('TPM_UNSUPPORTED', `TPMT_PUBLIC: unsupported key type 0x${typeId.toString(16)}`);
}

/** Parses a marshalled TPM2B_PUBLIC (as `tpm2_readpublic -o` writes it). */
export function parseTpm2bPublic(buf: Buffer): TpmPublic {
  const outer = new TpmReader(buf, 'TPM2B_PUBLIC');
  const inner = outer.tpm2b(1024);
  outer.end();
  const r = new TpmReader(inner, 'TPMT_PUBLIC');
  const pub = readTpmtPublic(r);
  r.end();
  return { ...pub, tpmtPublic: inner };
}

/** The object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC). */
export function tpmName(pub: TpmPublic): Buffer {
  return Buffer.concat([u16be(pub.nameAlgId), createHash(pub.nameAlg).update(pub.tpmtPublic).digest()]);
}

function stripLeadingZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/** The public key as a node:crypto KeyObject. */
export function publicKeyObject(pub: TpmPublic): KeyObject {
  try {
    if (pub.rsa) {
      const e = Buffer.alloc(4);
      e.writeUInt32BE(pub.rsa.exponent === 0 ? 65537 : pub.rsa.exponent);
      return createPublicKey({
        key: { kty: 'RSA', n: pub.rsa.modulus.toString('base64url'), e: stripLeadingZeros(e).toString('base64url') },
        format: 'jwk',
      });
    }
    const ecc = pub.ecc!;
    const curve = CURVES[ecc.curve];
    if (!curve) throw new AttestError('TPM_UNSUPPORTED', `unsupported ECC curve 0x${ecc.curve.toString(16)}`);
    return createPublicKey({
      key: { kty: 'EC', crv: curve.jwk, x: ecc.x.toString('base64url'), y: ecc.y.toString('base64url') },
      format: 'jwk',
    });
  } catch (err) {
    if (err instanceof AttestError) throw err;
    throw new AttestError('TPM_MALFORMED', `TPMT_PUBLIC: not a valid public key: ${(err as Error).message}`);
  }
}

/** SPKI DER of a key, for comparing keys regardless of how they were encoded. */
export function spkiDer(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

const AK_REQUIRED =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign;

/**
 * An attestation key must be a restricted signing key generated inside and bound to its TPM: only then does the TPM
 * refuse to sign outside data that starts with TPM_GENERATED_VALUE, so a valid signature means the TPM made the quote.
 */
export function assertAttestationKey(pub: TpmPublic): void {
  const missing = Object.entries(TPMA_OBJECT)
    .filter(([, bit]) => (AK_REQUIRED & bit) !== 0 && (pub.attributes & bit) === 0)
    .map(([name]) => name);
  if (missing.length > 0)
    throw new AttestError('AK_ATTRIBUTES_INVALID', `attestation key lacks required attributes: ${missing.join(', ')}`);
  if ((pub.attributes & TPMA_OBJECT.decrypt) !== 0)
    throw new AttestError('AK_ATTRIBUTES_INVALID', 'attestation key must not be a decryption key');
}
