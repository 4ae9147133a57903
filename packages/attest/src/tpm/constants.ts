/** TPM 2.0 constants (TCG TPM 2.0 Library Part 2: Structures). */
export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;

export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECSCHNORR: 0x001c,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

export const TPM_ECC_CURVE = { NIST_P256: 0x0003, NIST_P384: 0x0004, NIST_P521: 0x0005 } as const;

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

export type TpmHashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const HASHES: Record<number, TpmHashName> = {
  [TPM_ALG.SHA1]: 'sha1',
  [TPM_ALG.SHA256]: 'sha256',
  [TPM_ALG.SHA384]: 'sha384',
  [TPM_ALG.SHA512]: 'sha512',
};

/** node:crypto name of a TPM hash algorithm id, or undefined. */
export function hashName(alg: number): TpmHashName | undefined {
  return HASHES[alg];
}

export function hashAlgId(name: TpmHashName): number {
  return { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 }[name];
}

export const CURVES: Record<number, { jwk: 'P-256' | 'P-384' | 'P-521'; node: string; bytes: number }> = {
  [TPM_ECC_CURVE.NIST_P256]: { jwk: 'P-256', node: 'prime256v1', bytes: 32 },
  [TPM_ECC_CURVE.NIST_P384]: { jwk: 'P-384', node: 'secp384r1', bytes: 48 },
  [TPM_ECC_CURVE.NIST_P521]: { jwk: 'P-521', node: 'secp521r1', bytes: 66 },
};
