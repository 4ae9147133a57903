import { generateKeyPairSync, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeDsseBase64,
  INTOTO_PAYLOAD_TYPE,
  parseDsseEnvelope,
  preAuthEncoding,
  signDsse,
  verifyDsse,
  type DsseEnvelope,
} from '../src/dsse.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed25519 = generateKeyPairSync('ed25519');
const otherP256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const payload = Buffer.from('{"_type":"https://in-toto.io/Statement/v1","subject":[]}');

describe('preAuthEncoding', () => {
  it('matches the DSSE protocol example', () => {
    // https://github.com/secure-systems-lab/dsse/blob/master/protocol.md#signature-definition (Test vector)
    const pae = preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world'));
    expect(pae.toString('utf8')).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(pae.toString('hex')).toBe(
      '44535345763120323920687474703a2f2f6578616d706c652e636f6d2f48656c6c6f576f726c6420313120' +
        '68656c6c6f20776f726c64',
    );
  });

  it('counts bytes, not characters, and handles empty values', () => {
    expect(preAuthEncoding('é', Buffer.from('€')).toString('utf8')).toBe('DSSEv1 2 é 3 €');
    expect(preAuthEncoding('', new Uint8Array(0)).toString('utf8')).toBe('DSSEv1 0  0 ');
  });
});

describe.each([
  ['P-256', p256],
  ['Ed25519', ed25519],
] as const)('sign/verify with %s', (_name, keys) => {
  const env = signDsse(INTOTO_PAYLOAD_TYPE, payload, keys.privateKey, 'key-1');

  it('produces an envelope whose signature covers PAE(type, payload)', () => {
    expect(env.payloadType).toBe(INTOTO_PAYLOAD_TYPE);
    expect(Buffer.from(env.payload, 'base64').equals(payload)).toBe(true);
    expect(env.signatures).toHaveLength(1);
    expect(env.signatures[0]!.keyid).toBe('key-1');
    const alg = keys.publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    expect(cryptoVerify(alg, preAuthEncoding(INTOTO_PAYLOAD_TYPE, payload), keys.publicKey, sig)).toBe(true);
    // …and not the bare payload.
    expect(cryptoVerify(alg, payload, keys.publicKey, sig)).toBe(false);
  });

  it('verifies and returns the payload', () => {
    expect(verifyDsse(env, keys.publicKey).equals(payload)).toBe(true);
    expect(verifyDsse(env, keys.publicKey, INTOTO_PAYLOAD_TYPE).equals(payload)).toBe(true);
    expect(verifyDsse(parseDsseEnvelope(JSON.parse(JSON.stringify(env))), keys.publicKey).equals(payload)).toBe(true);
  });

  it('fails with DSSE_SIGNATURE_INVALID when the payload is tampered', () => {
    const tampered: DsseEnvelope = {
      ...env,
      payload: Buffer.from(payload.toString().replace('[]', '[1]')).toString('base64'),
    };
    expect(codeOf(() => verifyDsse(tampered, keys.publicKey))).toBe('DSSE_SIGNATURE_INVALID');
  });

  it('fails with DSSE_SIGNATURE_INVALID when the payloadType is swapped', () => {
    const swapped: DsseEnvelope = { ...env, payloadType: 'application/json' };
    expect(codeOf(() => verifyDsse(swapped, keys.publicKey))).toBe('DSSE_SIGNATURE_INVALID');
  });

  it('fails with DSSE_PAYLOAD_TYPE_MISMATCH when the caller expects another type', () => {
    expect(codeOf(() => verifyDsse(env, keys.publicKey, 'application/vnd.other+json'))).toBe(
      'DSSE_PAYLOAD_TYPE_MISMATCH',
    );
  });

  it('fails with DSSE_SIGNATURE_INVALID for a flipped signature bit, a foreign key, or garbage', () => {
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    sig[sig.length - 1]! ^= 1;
    expect(codeOf(() => verifyDsse({ ...env, signatures: [{ sig: sig.toString('base64') }] }, keys.publicKey))).toBe(
      'DSSE_SIGNATURE_INVALID',
    );
    expect(codeOf(() => verifyDsse(env, otherP256.publicKey))).toBe('DSSE_SIGNATURE_INVALID');
    expect(codeOf(() => verifyDsse({ ...env, signatures: [{ sig: 'AAAA' }] }, keys.publicKey))).toBe(
      'DSSE_SIGNATURE_INVALID',
    );
    expect(codeOf(() => verifyDsse({ ...env, signatures: [] }, keys.publicKey))).toBe('DSSE_SIGNATURE_INVALID');
  });

  it('accepts the envelope when any one of several signatures verifies', () => {
    const bad = { keyid: 'x', sig: Buffer.alloc(64, 1).toString('base64') };
    const multi: DsseEnvelope = { ...env, signatures: [bad, { sig: '!!not base64!!' }, env.signatures[0]!] };
    expect(verifyDsse(multi, keys.publicKey).equals(payload)).toBe(true);
  });
});

describe('base64 forms (DSSE allows standard or URL-safe)', () => {
  it('verifies an envelope re-encoded with URL-safe base64, padded or not', () => {
    // Pick a payload whose base64 has + or / so the two alphabets really differ.
    const body = Buffer.from([0xfb, 0xff, 0xfe, 0x3e, 0x3f, 0x00, 0x01]);
    const env = signDsse('application/octet-stream', body, ed25519.privateKey);
    const url = (s: string): string => Buffer.from(s, 'base64').toString('base64url');
    const unpadded: DsseEnvelope = {
      ...env,
      payload: url(env.payload),
      signatures: [{ sig: url(env.signatures[0]!.sig) }],
    };
    expect(unpadded.payload).toMatch(/[-_]/);
    expect(verifyDsse(parseDsseEnvelope(unpadded), ed25519.publicKey).equals(body)).toBe(true);
    const padded: DsseEnvelope = {
      ...unpadded,
      payload: unpadded.payload.padEnd(Math.ceil(unpadded.payload.length / 4) * 4, '='),
    };
    expect(verifyDsse(parseDsseEnvelope(padded), ed25519.publicKey).equals(body)).toBe(true);
  });

  it('decodeDsseBase64 rejects mixed alphabets, bad padding and junk', () => {
    expect(decodeDsseBase64('+/8=')?.toString('hex')).toBe('fbff');
    expect(decodeDsseBase64('-_8')?.toString('hex')).toBe('fbff');
    expect(decodeDsseBase64('')?.length).toBe(0);
    for (const s of ['+_8=', '+/8', 'A', 'AAA=A', 'AA=A', 'A===', 'AA AA', 'AAAA\n', '%%%%']) {
      expect(decodeDsseBase64(s), s).toBeUndefined();
    }
  });

  it('verifyDsse reports an undecodable payload as DSSE_MALFORMED, not a TypeError', () => {
    const env = signDsse(INTOTO_PAYLOAD_TYPE, payload, p256.privateKey);
    expect(codeOf(() => verifyDsse({ ...env, payload: 'not base64!' }, p256.publicKey))).toBe('DSSE_MALFORMED');
  });
});

describe('parseDsseEnvelope', () => {
  const good = signDsse(INTOTO_PAYLOAD_TYPE, payload, p256.privateKey, 'k');

  it('returns the structural fields and drops unknown ones', () => {
    const parsed = parseDsseEnvelope({ ...good, extra: 1, signatures: [{ ...good.signatures[0], extra: true }] });
    expect(parsed).toEqual(good);
    const noKeyid = parseDsseEnvelope({ ...good, signatures: [{ sig: good.signatures[0]!.sig }] });
    expect(noKeyid.signatures[0]).toEqual({ sig: good.signatures[0]!.sig });
  });

  const malformed: [string, unknown][] = [
    ['null', null],
    ['an array', [good]],
    ['a string', JSON.stringify(good)],
    ['missing payloadType', { payload: good.payload, signatures: good.signatures }],
    ['empty payloadType', { ...good, payloadType: '' }],
    ['non-string payloadType', { ...good, payloadType: 42 }],
    ['missing payload', { payloadType: good.payloadType, signatures: good.signatures }],
    ['non-base64 payload', { ...good, payload: 'a b c' }],
    ['missing signatures', { payloadType: good.payloadType, payload: good.payload }],
    ['empty signatures', { ...good, signatures: [] }],
    ['signatures not an array', { ...good, signatures: good.signatures[0] }],
    ['signature not an object', { ...good, signatures: ['sig'] }],
    ['signature null', { ...good, signatures: [null] }],
    ['empty sig', { ...good, signatures: [{ sig: '' }] }],
    ['non-string sig', { ...good, signatures: [{ sig: 1 }] }],
    ['non-base64 sig', { ...good, signatures: [{ sig: 'é' }] }],
    ['non-string keyid', { ...good, signatures: [{ sig: good.signatures[0]!.sig, keyid: 7 }] }],
  ];
  it.each(malformed)('rejects %s with DSSE_MALFORMED', (_what, value) => {
    expect(codeOf(() => parseDsseEnvelope(value))).toBe('DSSE_MALFORMED');
  });
});

describe('key types', () => {
  it('an RSA key signs and verifies with SHA-256 too', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const env = signDsse('text/plain', Buffer.from('x'), rsa.privateKey as KeyObject);
    expect(verifyDsse(env, rsa.publicKey).toString()).toBe('x');
    expect(codeOf(() => verifyDsse(env, p256.publicKey))).toBe('DSSE_SIGNATURE_INVALID');
  });
});
