import { createHash, generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashLeaf } from '../src/merkle.js';
import { pemEncode, parseVerifierPem } from '../src/pki.js';
import { prepareEntry } from '../src/types/index.js';
import { prepareV2Entry } from '../src/types/v2.js';
import {
  b64,
  dsseEntry,
  dsseEnvelope,
  dsseV2Request,
  hashedRekord,
  makeCertSigner,
  makeKeySigner,
  statement,
  type TestSigner,
} from './helpers.js';

let certSigner: TestSigner;
beforeAll(async () => {
  certSigner = await makeCertSigner();
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('hashedrekord 0.0.1', () => {
  it('canonicalizes exactly as Rekor: JCS of {apiVersion, kind, spec} with the canonical PEM', () => {
    const proposed = hashedRekord(certSigner, 'hello');
    const p = prepareEntry(proposed);
    const canonicalPem = parseVerifierPem(certSigner.pem, 'cert').canonicalPem;
    const expected =
      `{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"${proposed.spec.data.hash.value}"}},` +
      `"signature":{"content":"${proposed.spec.signature.content}","publicKey":{"content":"${b64(canonicalPem)}"}}}}`;
    expect(p.body.toString()).toBe(expected);
    expect(p.kind).toBe('hashedrekord');
    expect(p.leafHash.equals(hashLeaf(p.body))).toBe(true);
    expect(p.indexKeys).toContain(`sha256:${createHash('sha256').update('hello').digest('hex')}`);
    expect(p.indexKeys.some((k) => k.startsWith('key:'))).toBe(true);
  });

  it('re-encodes PEM the way Go does (CRLF / long lines / trailing junk whitespace do not change the entry)', () => {
    const signer = makeKeySigner();
    const der = Buffer.from(signer.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const messy = `\n-----BEGIN PUBLIC KEY-----\r\n${der.toString('base64')}\r\n-----END PUBLIC KEY-----\r\n\n`;
    const original = hashedRekord(signer, 'x');
    const a = prepareEntry(original);
    const proposed = structuredClone(original);
    proposed.spec.signature.publicKey.content = b64(messy);
    expect(prepareEntry(proposed).body.equals(a.body)).toBe(true);
    expect(pemEncode('PUBLIC KEY', der)).toBe(signer.pem);
  });

  it('accepts P-256 certificates and keys, P-384, RSA, and sha384/sha512 digests', () => {
    expect(prepareEntry(hashedRekord(makeKeySigner('P-256'), 'a')).kind).toBe('hashedrekord');
    expect(prepareEntry(hashedRekord(makeKeySigner('P-384'), 'a', { alg: 'sha384' })).kind).toBe('hashedrekord');
    expect(prepareEntry(hashedRekord(makeKeySigner('rsa'), 'a')).kind).toBe('hashedrekord');
    expect(prepareEntry(hashedRekord(makeKeySigner('P-256'), 'a', { alg: 'sha512' })).kind).toBe('hashedrekord');
  });

  it('rejects a signature over another digest, by another key, or garbled', () => {
    const p = hashedRekord(certSigner, 'hello');
    const other = hashedRekord(certSigner, 'bye');
    expect(codeOf(() => prepareEntry({ ...p, spec: { ...p.spec, data: other.spec.data } }))).toBe(
      'TLOG_SIGNATURE_INVALID',
    );
    const wrongKey = structuredClone(p);
    wrongKey.spec.signature.publicKey.content = b64(makeKeySigner().pem);
    expect(codeOf(() => prepareEntry(wrongKey))).toBe('TLOG_SIGNATURE_INVALID');
    const garbled = structuredClone(p);
    garbled.spec.signature.content = b64('not a DER signature');
    expect(codeOf(() => prepareEntry(garbled))).toBe('TLOG_SIGNATURE_INVALID');
  });

  it('rejects malformed fields with messages naming them', () => {
    const p = hashedRekord(certSigner, 'hello');
    const cases: Array<[unknown, RegExp]> = [
      [{ ...p, spec: { ...p.spec, data: { hash: { algorithm: 'md5', value: p.spec.data.hash.value } } } }, /algorithm/],
      [{ ...p, spec: { ...p.spec, data: { hash: { algorithm: 'sha256', value: 'abc' } } } }, /hash\.value/],
      [{ ...p, spec: { ...p.spec, signature: { ...p.spec.signature, content: '!!' } } }, /signature\.content/],
      [
        { ...p, spec: { ...p.spec, signature: { ...p.spec.signature, publicKey: { content: b64('hello') } } } },
        /publicKey\.content/,
      ],
      [{ ...p, spec: { data: p.spec.data } }, /spec\.signature/],
      [{ ...p, apiVersion: '0.0.2' }, /apiVersion/],
      [{ ...p, kind: 'rekord' }, /unsupported entry kind/],
      [{ ...p, kind: '__proto__' }, /unsupported entry kind/],
      [[], /JSON object/],
      ['x', /JSON object/],
    ];
    for (const [input, message] of cases) expect(() => prepareEntry(input)).toThrow(message);
  });

  it('refuses Ed25519 for hashedrekord (Rekor uses ed25519ph there) and RSA keys under 2048 bits', () => {
    expect(codeOf(() => prepareEntry(hashedRekord(makeKeySigner('ed25519'), 'a')))).toBe('TLOG_UNSUPPORTED_ENTRY');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const small = { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), publicKeyPem: '' };
    expect(() => prepareEntry(hashedRekord(small, 'a'))).toThrow(/too small/);
  });
});

describe('dsse 0.0.1', () => {
  it('canonicalizes as Rekor: envelopeHash, payloadHash, sorted signatures with canonical verifiers; proposedContent dropped', () => {
    const a = makeKeySigner();
    const b = makeKeySigner('P-384');
    const payload = statement('artifact.tgz', 'artifact bytes');
    const proposed = dsseEntry([a, b], payload, [b, a]);
    const p = prepareEntry(proposed);
    const body = JSON.parse(p.body.toString());
    const env = JSON.parse(proposed.spec.proposedContent.envelope);
    expect(Object.keys(body)).toEqual(['apiVersion', 'kind', 'spec']);
    expect(Object.keys(body.spec)).toEqual(['envelopeHash', 'payloadHash', 'signatures']);
    expect(body.spec.envelopeHash).toEqual({
      algorithm: 'sha256',
      value: createHash('sha256').update(proposed.spec.proposedContent.envelope).digest('hex'),
    });
    expect(body.spec.payloadHash).toEqual({
      algorithm: 'sha256',
      value: createHash('sha256').update(payload).digest('hex'),
    });
    const sigs = env.signatures.map((s: { sig: string }) => s.sig);
    const byKey = new Map([
      [sigs[0], b64(a.pem)],
      [sigs[1], b64(b.pem)],
    ]);
    const sorted = [...sigs].sort();
    expect(body.spec.signatures).toEqual(sorted.map((s: string) => ({ signature: s, verifier: byKey.get(s) })));
    // Exactly the JCS serialization (sorted keys, no spaces).
    expect(p.body.toString()).toBe(JSON.stringify(body));
    // The in-toto subject is indexed.
    expect(p.indexKeys).toContain(`sha256:${createHash('sha256').update('artifact bytes').digest('hex')}`);
  });

  it('accepts a certificate verifier and Ed25519 keys', () => {
    expect(prepareEntry(dsseEntry([certSigner], 'payload')).kind).toBe('dsse');
    expect(prepareEntry(dsseEntry([makeKeySigner('ed25519')], 'payload')).kind).toBe('dsse');
  });

  it('rejects an envelope whose signatures do not all verify with the verifiers', () => {
    const a = makeKeySigner();
    const b = makeKeySigner();
    expect(codeOf(() => prepareEntry(dsseEntry([a, b], 'payload', [a])))).toBe('TLOG_SIGNATURE_INVALID');
    expect(codeOf(() => prepareEntry(dsseEntry([a], 'payload', [b])))).toBe('TLOG_SIGNATURE_INVALID');
    // Payload changed after signing.
    const env = dsseEnvelope([a], 'payload');
    env.payload = b64('other payload');
    const tampered = {
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: { proposedContent: { envelope: JSON.stringify(env), verifiers: [b64(a.pem)] } },
    };
    expect(codeOf(() => prepareEntry(tampered))).toBe('TLOG_SIGNATURE_INVALID');
    // Payload type changed after signing (the PAE binds it).
    const env2 = dsseEnvelope([a], 'payload');
    env2.payloadType = 'text/plain';
    expect(
      codeOf(() =>
        prepareEntry({
          ...tampered,
          spec: { proposedContent: { envelope: JSON.stringify(env2), verifiers: [b64(a.pem)] } },
        }),
      ),
    ).toBe('TLOG_SIGNATURE_INVALID');
  });

  it('rejects malformed proposals', () => {
    const a = makeKeySigner();
    const ok = dsseEntry([a], 'payload');
    const pc = ok.spec.proposedContent;
    const bad: Array<[unknown, RegExp]> = [
      [{ ...ok, spec: {} }, /proposedContent/],
      [{ ...ok, spec: { proposedContent: { ...pc, envelope: '{not json' } } }, /envelope/],
      [
        {
          ...ok,
          spec: {
            proposedContent: { ...pc, envelope: JSON.stringify({ payloadType: 'x', payload: 'AA==', signatures: [] }) },
          },
        },
        /no signatures/,
      ],
      [{ ...ok, spec: { proposedContent: { ...pc, verifiers: [] } } }, /verifiers/],
      [{ ...ok, spec: { proposedContent: { ...pc, verifiers: ['***'] } } }, /verifiers\[0\]/],
      [
        { ...ok, spec: { proposedContent: pc, payloadHash: { algorithm: 'sha256', value: '00' } } },
        /computed by the log/,
      ],
    ];
    for (const [input, message] of bad) expect(() => prepareEntry(input)).toThrow(message);
  });

  it('logs a repeated signature once', () => {
    const a = makeKeySigner();
    const env = dsseEnvelope([a], 'payload');
    env.signatures.push({ ...env.signatures[0]! });
    const p = prepareEntry({
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: { proposedContent: { envelope: JSON.stringify(env), verifiers: [b64(a.pem)] } },
    });
    expect(JSON.parse(p.body.toString()).spec.signatures).toHaveLength(1);
  });

  it('verifies RSA DSSE signatures with SHA-256 PKCS#1 v1.5', () => {
    const r = makeKeySigner('rsa');
    expect(prepareEntry(dsseEntry([r], 'x')).kind).toBe('dsse');
  });
});

describe('Rekor v2 dsseRequestV002: the envelope signature is checked over the PAE with the key of keyDetails', () => {
  const request = dsseV2Request;
  const cases: Array<[string, 'P-256' | 'P-384' | 'rsa', string, string]> = [
    ['ECDSA P-256', 'P-256', 'PKIX_ECDSA_P256_SHA_256', 'sha256'],
    ['ECDSA P-384', 'P-384', 'PKIX_ECDSA_P384_SHA_384', 'sha384'],
    ['RSA 2048 PKCS#1 v1.5', 'rsa', 'PKIX_RSA_PKCS1V15_2048_SHA256', 'sha256'],
  ];
  it.each(cases)('%s: accepts the signer, refuses another key under the same (cached) verifier', (_n, kind, d, h) => {
    const a = makeKeySigner(kind);
    const b = makeKeySigner(kind);
    const req = request(a, a, d, h, 'one');
    const ok = prepareV2Entry(req);
    // The same request again (its verifier now cached): the same canonical body.
    expect(prepareV2Entry(req).body.equals(ok.body)).toBe(true);
    expect(codeOf(() => prepareV2Entry(request(b, a, d, h, 'two')))).toBe('TLOG_SIGNATURE_INVALID');
    // A signature over another payload does not verify either.
    const moved = request(a, a, d, h, 'three');
    moved.dsseRequestV002.envelope.payload = b64('four');
    expect(codeOf(() => prepareV2Entry(moved))).toBe('TLOG_SIGNATURE_INVALID');
  });
});
