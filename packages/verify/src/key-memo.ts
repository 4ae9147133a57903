import type { KeyObject } from 'node:crypto';
import { crypto as sigstoreCrypto } from '@sigstore/core';

/**
 * @sigstore/verify turns certificate keys into KeyObjects on every verification: the TSA certificate's key for each
 * RFC 3161 token and the leaf's key for the signer, each a `createPublicKey` (an EC point decode and check, the
 * largest single cost of a cold image verification). Those certificates are ours (MemoCertificate: the trusted
 * root's, or one verification's leaf), and so are the SPKI buffers the library passes back in. Here such a buffer is
 * registered with the KeyObject made from it, and @sigstore/core's `crypto.createPublicKey` answers a registered
 * buffer from the registry when the buffer's bytes still equal a private copy taken at registration; any other call
 * (a PEM string, another buffer, other bytes) goes to the stock function unchanged.
 */
interface Known {
  bytes: Buffer;
  key: KeyObject;
}

const known = new WeakMap<Buffer, Known>();
type CreatePublicKey = typeof sigstoreCrypto.createPublicKey;
const MARK = Symbol.for('airlock.verify.keyMemo');

/** Registers `spki` (an SPKI DER buffer a MemoCertificate hands out) as the encoding of `key`. */
export function rememberKey(spki: Buffer, key: KeyObject): void {
  known.set(spki, { bytes: Buffer.from(spki), key });
}

/** The registered KeyObject for exactly these bytes, or undefined. */
export function knownKey(spki: unknown): KeyObject | undefined {
  if (!Buffer.isBuffer(spki)) return undefined;
  const k = known.get(spki);
  return k !== undefined && k.bytes.equals(spki) ? k.key : undefined;
}

/** Installs the lookup in front of @sigstore/core's createPublicKey (once per process). */
export function installKeyMemo(): void {
  const target = sigstoreCrypto as unknown as Record<string | symbol, unknown>;
  if (target[MARK] === true) return;
  const stock = sigstoreCrypto.createPublicKey;
  const memo: CreatePublicKey = (key, type) =>
    (type === undefined || type === 'spki' ? knownKey(key) : undefined) ?? stock(key, type);
  target.createPublicKey = memo;
  target[MARK] = true;
}
