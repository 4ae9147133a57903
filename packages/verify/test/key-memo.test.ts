/**
 * The createPublicKey memo in front of @sigstore/core (key-memo.ts): a registered SPKI buffer is answered with its
 * KeyObject only while its bytes equal the copy taken at registration; another buffer with the same bytes, a
 * buffer changed after registration, a PEM string and a non-SPKI type all go to the stock function.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crypto as sigstoreCrypto } from '@sigstore/core';
import { installKeyMemo, knownKey, rememberKey } from '../src/key-memo.js';

const spkiOf = (): { spki: Buffer; pem: string } => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
};

describe('key memo', () => {
  installKeyMemo();
  installKeyMemo(); // idempotent

  it('answers a registered buffer with its KeyObject, and nothing else', () => {
    const { spki, pem } = spkiOf();
    const key = sigstoreCrypto.createPublicKey(spki);
    rememberKey(spki, key);
    expect(sigstoreCrypto.createPublicKey(spki)).toBe(key);
    // Same bytes in another buffer: made afresh (equal key, not the registered object).
    const copy = Buffer.from(spki);
    const fresh = sigstoreCrypto.createPublicKey(copy);
    expect(fresh).not.toBe(key);
    expect(fresh.equals(key)).toBe(true);
    expect(sigstoreCrypto.createPublicKey(pem)).not.toBe(key);
  });

  it('a registered buffer whose bytes changed is not answered from the memo', () => {
    const a = spkiOf();
    const b = spkiOf();
    const key = sigstoreCrypto.createPublicKey(a.spki);
    rememberKey(a.spki, key);
    b.spki.copy(a.spki); // same buffer object, another key's bytes
    expect(knownKey(a.spki)).toBeUndefined();
    const made = sigstoreCrypto.createPublicKey(a.spki);
    expect(made).not.toBe(key);
    expect(made.equals(sigstoreCrypto.createPublicKey(b.spki))).toBe(true);
  });

  it('a non-SPKI type goes to the stock function (which refuses SPKI bytes as PKCS#1)', () => {
    const { spki } = spkiOf();
    rememberKey(spki, sigstoreCrypto.createPublicKey(spki));
    expect(() => sigstoreCrypto.createPublicKey(spki, 'pkcs1')).toThrow();
  });
});
