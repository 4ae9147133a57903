// The TPM structure parsers and checks on bytes captured from a real swtpm (fixtures/swtpm-quote.json), so they
// run without any TPM tool: the verifier side never needs tpm2-tools.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  NodeAttestationVerifier,
  makeReferenceValueSet,
  assertAttestationKey,
  computePcrDigest,
  kdfa,
  makeCredential,
  parseQuote,
  parseTpm2bPublic,
  parseTpmtSignature,
  tpmName,
  verifyTpmSignature,
} from '../src/index.js';

const fx = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'swtpm-quote.json'), 'utf8')) as Record<string, string>;
const bytes = (k: string): Buffer => Buffer.from(fx[k]!, 'hex');
const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return 'no error';
};

describe('TPM 2.0 structures (bytes from swtpm)', () => {
  const ak = parseTpm2bPublic(bytes('akPublic'));
  const attest = bytes('attest');
  const quote = parseQuote(attest);
  const sig = parseTpmtSignature(bytes('signature'));
  const values = Object.fromEntries(
    quote.pcrSelect[0]!.pcrs.map((p, i) => [p, bytes('pcrValues').subarray(i * 32, i * 32 + 32)]),
  );

  it('parses the AK and computes the Name tpm2_createak reported', () => {
    expect(ak.type).toBe('ecc');
    expect(tpmName(ak).toString('hex')).toBe(fx.akName);
    expect(() => assertAttestationKey(ak)).not.toThrow();
  });

  it('parses TPMS_ATTEST (quote) and verifies its ECDSA signature and PCR digest', () => {
    expect(quote.pcrSelect).toEqual([{ hash: 'sha256', pcrs: [0, 7, 23] }]);
    expect(quote.extraData).toHaveLength(20);
    expect(sig.alg).toBe('ecdsa');
    expect(verifyTpmSignature(ak, sig, attest)).toBe(true);
    expect(computePcrDigest(quote.pcrSelect, { sha256: values }, sig.hash)).toEqual(quote.pcrDigest);
  });

  it('rejects a changed quote, a changed PCR value, trailing bytes and a non-quote', () => {
    const changed = Buffer.from(attest);
    changed[changed.length - 1] ^= 1;
    expect(verifyTpmSignature(ak, sig, changed)).toBe(false);
    const lying = { ...values, 23: Buffer.alloc(32) };
    expect(computePcrDigest(quote.pcrSelect, { sha256: lying }, sig.hash)).not.toEqual(quote.pcrDigest);
    expect(errorOf(() => parseQuote(Buffer.concat([attest, Buffer.from([0])])))).toMatch(
      /^TPM_MALFORMED: TPMS_ATTEST: 1 trailing bytes/,
    );
    const notQuote = Buffer.from(attest);
    notQuote.writeUInt16BE(0x8017, 4); // TPM_ST_ATTEST_CERTIFY
    expect(errorOf(() => parseQuote(notQuote))).toMatch(/^TPM_MALFORMED: .*not TPM_ST_ATTEST_QUOTE/);
    expect(errorOf(() => parseQuote(Buffer.alloc(10)))).toMatch(/^TPM_MALFORMED: .*magic/);
  });

  it('refuses the EK (a decryption key) as an attestation key', () => {
    const ek = parseTpm2bPublic(bytes('ekPublic'));
    expect(errorOf(() => assertAttestationKey(ek))).toMatch(
      /^AK_ATTRIBUTES_INVALID: attestation key lacks required attributes: sign/,
    );
  });

  it('KDFa follows SP 800-108 counter mode with the TPM framing', () => {
    const key = Buffer.alloc(32, 1);
    const out = kdfa('sha256', key, 'STORAGE', Buffer.from('u'), Buffer.from('v'), 384);
    expect(out).toHaveLength(48);
    // HMAC(key, [i]32 || "STORAGE\0" || contextU || contextV || [bits]32), blocks concatenated and truncated.
    const block = (i: number): Buffer => {
      const framing = Buffer.alloc(4);
      framing.writeUInt32BE(i);
      const bits = Buffer.alloc(4);
      bits.writeUInt32BE(384);
      return createHmac('sha256', key)
        .update(Buffer.concat([framing, Buffer.from('STORAGE\0'), Buffer.from('uv'), bits]))
        .digest();
    };
    expect(out).toEqual(Buffer.concat([block(1), block(2)]).subarray(0, 48));
    expect(kdfa('sha256', key, 'STORAGE', Buffer.from('u'), Buffer.from('v'), 256)).not.toEqual(out.subarray(0, 32)); // bits are in the input
  });

  it('makeCredential output has the TPM2B_ID_OBJECT shape for the RSA EK (256-byte OAEP secret)', () => {
    const ek = parseTpm2bPublic(bytes('ekPublic'));
    const made = makeCredential(ek, Buffer.alloc(32, 9), tpmName(ak));
    expect(made.encryptedSecret).toHaveLength(256);
    expect(made.credentialBlob.readUInt16BE(0)).toBe(32); // outer HMAC size
    expect(made.credentialBlob).toHaveLength(2 + 32 + 2 + 32);
  });
});

describe('NodeAttestationVerifier input handling (no TPM needed)', () => {
  const verifier = new NodeAttestationVerifier({
    manufacturerRoots: readFileSync(join(__dirname, 'fixtures', 'intel-sgx-root-ca.pem'), 'utf8'),
    referenceValues: [makeReferenceValueSet('r', 'sha256', { '23': '00'.repeat(32) })],
  });

  it('refuses malformed evidence with EVIDENCE_MALFORMED, not a TypeError', () => {
    expect(errorOf(() => verifier.verify({} as never))).toMatch(/^EVIDENCE_MALFORMED: TPM evidence: kind/);
    const partial = { kind: 'tpm2', challengeId: 'x', activatedCredential: '', identity: {}, quote: {}, pcrs: {} };
    expect(errorOf(() => verifier.verify(partial as never))).toMatch(/^EVIDENCE_MALFORMED: TPM evidence: identity/);
  });

  it('refuses evidence for a challenge it never issued', () => {
    const evidence = {
      kind: 'tpm2' as const,
      challengeId: 'made-up',
      activatedCredential: '',
      identity: { ekCertificate: '', ekPublic: '', akPublic: '' },
      quote: { attest: '', signature: '' },
      pcrs: { bank: 'sha256' as const, values: {} },
    };
    expect(errorOf(() => verifier.verify(evidence))).toMatch(/^CHALLENGE_UNKNOWN: /);
  });

  it('refuses to start with no reference values or an empty root list', () => {
    expect(errorOf(() => new NodeAttestationVerifier({ manufacturerRoots: '', referenceValues: [] }))).toMatch(
      /^EK_CERT_UNTRUSTED: no manufacturer root/,
    );
  });
});
