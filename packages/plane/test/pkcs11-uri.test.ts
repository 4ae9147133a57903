import { createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derSignatureToRaw } from '@airlock/ca';
import { parsePkcs11Uri, rawToDer } from '../src/pkcs11.js';

const Q = '?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/airlock/pin';

describe('parsePkcs11Uri (RFC 7512, strict)', () => {
  it('reads token, object, id (percent-decoded), module-path and the pin source', () => {
    const k = parsePkcs11Uri(`pkcs11:token=air%20lock;object=ca-key;id=%01%ff;type=private${Q}`);
    expect(k).toMatchObject({
      token: 'air lock',
      object: 'ca-key',
      modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      pinSource: { file: '/run/airlock/pin' },
    });
    expect(k.id).toEqual(Buffer.from([1, 255]));
    const env = parsePkcs11Uri('pkcs11:object=k?module-path=/m.so&pin-source=env:AIRLOCK_PIN');
    expect(env.pinSource).toEqual({ env: 'AIRLOCK_PIN' });
  });

  it.each([
    ['not pkcs11', `pk11:object=k${Q}`, "must start with 'pkcs11:'"],
    ['pin-value', 'pkcs11:object=k?module-path=/m.so&pin-value=1234', 'pin-value is refused'],
    ['unknown attribute', `pkcs11:object=k;slot-id=1${Q}`, "unsupported attribute 'slot-id'"],
    ['repeated attribute', `pkcs11:object=k;object=j${Q}`, "'object' is repeated"],
    ['public key type', `pkcs11:object=k;type=public${Q}`, "type must be 'private'"],
    ['no object or id', `pkcs11:token=t${Q}`, 'object= or id='],
    ['no module path', 'pkcs11:object=k?pin-source=env:P', 'module-path'],
    ['relative module path', 'pkcs11:object=k?module-path=lib.so&pin-source=env:P', 'module-path'],
    ['no pin source', 'pkcs11:object=k?module-path=/m.so', 'pin-source'],
    ['bad pin source', 'pkcs11:object=k?module-path=/m.so&pin-source=http://x/pin', 'pin-source must be'],
    ['unencoded space', `pkcs11:object=a b${Q}`, 'must be percent-encoded'],
    ['fragment', `pkcs11:object=k${Q}#x`, 'fragment'],
    ['not name=value', `pkcs11:object${Q}`, 'is not name=value'],
  ])('refuses %s', (_what, uri, message) => {
    expect(() => parsePkcs11Uri(uri)).toThrow(message);
    try {
      parsePkcs11Uri(uri);
    } catch (err) {
      expect((err as { code: string }).code).toBe('PLANE_PKCS11_URI');
      expect((err as Error).message).not.toContain('1234');
    }
  });
});

describe('ECDSA signature encodings (PKCS#11 raw r‖s ↔ DER)', () => {
  it('round-trips and verifies, including values with leading zero and high bits', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = rawToDer(raw);
      expect(verify('sha256', data, publicKey, der)).toBe(true);
      expect(derSignatureToRaw(der, 32)).toEqual(raw);
    }
    expect(createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })).asymmetricKeyType).toBe('ec');
  });

  it('refuses malformed signatures', () => {
    expect(() => rawToDer(Buffer.alloc(63))).toThrow('malformed');
    expect(() => derSignatureToRaw(Buffer.from('3006020101020101ff', 'hex'), 32)).toThrow('malformed');
  });
});
