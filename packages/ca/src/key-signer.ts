import { x509Crypto, type WebCryptoKey } from './crypto-provider.js';
import { CaError } from './errors.js';

/**
 * The CA's intermediate key held outside the process (a PKCS#11 token): its SPKI, and one method that signs with
 * ECDSA P-256/SHA-256 and returns a DER (X9.62) signature. Structurally the same as @airlock/tlog's `KeySigner`.
 */
export interface CaKeySigner {
  readonly spkiDer: Buffer;
  sign(data: Uint8Array): Buffer;
}

export type X509Crypto = typeof x509Crypto;

/** How certificates get signed: the WebCrypto provider to hand @peculiar/x509 and the key it signs with. */
export interface SigningHandle {
  crypto: X509Crypto;
  key: WebCryptoKey;
}

/**
 * Wraps a `CaKeySigner` as WebCrypto for @peculiar/x509: `subtle.sign` on our placeholder key goes to the signer
 * (DER → raw r‖s, which WebCrypto returns); every other call is Node's own WebCrypto.
 */
export function signerHandle(signer: CaKeySigner): SigningHandle {
  const key = {
    type: 'private',
    extractable: false,
    algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
    usages: ['sign'],
  } as unknown as WebCryptoKey;
  const subtle = x509Crypto.subtle;
  const sign = async (...args: Parameters<typeof subtle.sign>): Promise<ArrayBuffer> => {
    if (args[1] !== key) return subtle.sign(...args);
    const data = args[2] as ArrayBuffer | ArrayBufferView;
    const bytes = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);
    const raw = derSignatureToRaw(signer.sign(bytes), 32);
    return raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer;
  };
  const wrapped = new Proxy(subtle, {
    get: (target, prop) => (prop === 'sign' ? sign : (Reflect.get(target, prop) as unknown)),
  });
  const crypto = new Proxy(x509Crypto, {
    get: (target, prop) => (prop === 'subtle' ? wrapped : (Reflect.get(target, prop) as unknown)),
  });
  return { crypto, key };
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } → r‖s, each left-padded to `size` bytes. */
export function derSignatureToRaw(der: Buffer, size: number): Buffer {
  const fail = (): never => {
    throw new CaError('CA_KEY_INVALID', 'the key signer returned a malformed ECDSA signature');
  };
  if (der.length < 8 || der[0] !== 0x30 || der[1]! & 0x80 || der[1] !== der.length - 2) fail();
  let off = 2;
  const int = (): Buffer => {
    if (der[off] !== 0x02) fail();
    const len = der[off + 1]!;
    if (len === 0 || len & 0x80 || off + 2 + len > der.length) fail();
    let v = der.subarray(off + 2, off + 2 + len);
    off += 2 + len;
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) fail();
    return Buffer.concat([Buffer.alloc(size - v.length), v]);
  };
  const r = int();
  const s = int();
  if (off !== der.length) fail();
  return Buffer.concat([r, s]);
}
