// swtpm end to end: real TPMs (swtpm 0.7 on UNIX sockets) driven by tpm2-tools on the attesting side, verified in
// TypeScript. Three TPMs: A and B from the same manufacturer CA, C from another one.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, swtpmProblem, toolsAvailable, type Swtpm } from '@airlock/testkit';
import {
  NodeAttestationVerifier,
  TpmAttester,
  buildQuoteNonce,
  verifyBuildQuote,
  extendPcr,
  makeReferenceValueSet,
  type ReferenceValueSet,
  type TpmEvidence,
} from '../src/index.js';
import { schemaProblems } from '@airlock/schemas';

const available = toolsAvailable('swtpm node attestation', [swtpmProblem()]);
const IMAGE_DIGEST = createHash('sha256').update('airlock runner image v1').digest('hex');
const zero = '00'.repeat(32);
const BOOT = Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((p) => [String(p), zero]));
// PCR 23 after the runner extends it once with its image digest (from reset): independently computed here.
const pcr23 = extendPcr('sha256', [Buffer.from(IMAGE_DIGEST, 'hex')]).toString('hex');
const reference = makeReferenceValueSet('runner-image-v1', 'sha256', { ...BOOT, '23': pcr23 });

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return 'no error';
};

describe.skipIf(!available)('TPM node attestation against swtpm', () => {
  let dir: string;
  let a: Swtpm, b: Swtpm, c: Swtpm;
  let attA: TpmAttester, attB: TpmAttester, attC: TpmAttester;
  const verifier = (refs: ReferenceValueSet[] = [reference], roots?: string) =>
    new NodeAttestationVerifier({
      manufacturerRoots: roots ?? a.rootCaPem,
      manufacturerIntermediates: a.issuerCaPem,
      referenceValues: refs,
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-attest-'));
    a = await startSwtpm(join(dir, 'a'), { localCaDir: join(dir, 'vendor1') });
    b = await startSwtpm(join(dir, 'b'), { localCaDir: join(dir, 'vendor1') });
    c = await startSwtpm(join(dir, 'c'), { localCaDir: join(dir, 'vendor2') });
    attA = new TpmAttester({ tcti: a.tcti, workDir: join(dir, 'a-work') });
    attB = new TpmAttester({ tcti: b.tcti, workDir: join(dir, 'b-work') });
    attC = new TpmAttester({ tcti: c.tcti, workDir: join(dir, 'c-work') });
    for (const att of [attA, attB, attC]) await att.extendPcr(IMAGE_DIGEST);
  });
  afterAll(async () => {
    await Promise.all([a, b, c].map((t) => t?.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('attests a node: EK chain, credential activation, fresh quote, reference values → claims', async () => {
    const v = verifier();
    const challenge = v.challenge(await attA.identity());
    expect(challenge.pcrSelection).toEqual({ bank: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 23] });
    const evidence = await attA.attest(challenge);
    const node = v.verify(evidence);
    expect(node.claims.referenceValues).toEqual({ id: reference.id, name: 'runner-image-v1' });
    expect(node.claims.pcrs.values['23']).toBe(pcr23);
    expect(node.claims.quote.nonce).toBe(challenge.nonce);
    const attest = Buffer.from(evidence.quote.attest, 'base64');
    expect(node.claims.quote.digest).toBe(`sha256:${createHash('sha256').update(attest).digest('hex')}`);
    const ekDer = Buffer.from(evidence.identity.ekCertificate, 'base64');
    expect(node.claims.ek.certificateDigest).toBe(`sha256:${createHash('sha256').update(ekDer).digest('hex')}`);
    // The AK name we compute equals the one tpm2_createak reported.
    expect(node.claims.ak.name).toBe(readFileSync(join(dir, 'a-work', 'ak.name')).toString('hex'));

    // The claims match schemas/node-attestation-claims.v1.schema.json (the repository's one loader).
    expect(schemaProblems('node-attestation-claims.v1', node.claims)).toEqual([]);
  });

  it('refuses a replayed quote: old nonce, or the same evidence twice', async () => {
    const v = verifier();
    const first = await attA.attest(v.challenge(await attA.identity()));
    v.verify(first);
    expect(codeOf(() => v.verify(first))).toMatch(/^CHALLENGE_UNKNOWN: .*replayed evidence/);
    // A node that activates the new credential honestly but presents the old quote (e.g. taken before a PCR change).
    const second = await attA.attest(v.challenge(await attA.identity()));
    const replay: TpmEvidence = { ...second, quote: first.quote, pcrs: first.pcrs };
    expect(codeOf(() => v.verify(replay))).toMatch(/^QUOTE_NONCE_MISMATCH: .*replayed quote/);
  });

  it('refuses a quote from a different TPM of the same manufacturer', async () => {
    const v = verifier();
    const idA = await attA.identity();
    const chA = v.challenge(idA);
    const evA = await attA.attest(chA);
    const evB = await attB.attest(v.challenge(await attB.identity()));
    // A's identity and activation, B's quote: not signed by A's activated AK.
    const mixed: TpmEvidence = { ...evA, quote: evB.quote, pcrs: evB.pcrs };
    expect(codeOf(() => v.verify(mixed))).toMatch(/^QUOTE_SIGNATURE_INVALID: .*different TPM/);
  });

  it("refuses B's AK claimed under A's EK: B's TPM cannot activate, a guessed secret fails", async () => {
    const v = verifier();
    const idA = await attA.identity();
    const idB = await attB.identity();
    const claimed = { ...idA, akPublic: idB.akPublic };
    const challenge = v.challenge(claimed);
    // B's TPM does not hold A's EK: tpm2_activatecredential fails there.
    await expect(attB.attest(challenge)).rejects.toMatchObject({ code: 'ATTESTER_FAILED' });
    const forged: TpmEvidence = {
      kind: 'tpm2',
      challengeId: challenge.id,
      identity: claimed,
      activatedCredential: Buffer.alloc(32, 7).toString('base64'),
      quote: { attest: '', signature: '' },
      pcrs: { bank: 'sha256', values: {} },
    };
    expect(codeOf(() => v.verify(forged))).toMatch(/^ACTIVATION_FAILED: /);
  });

  it('refuses an EK certificate from a manufacturer CA that is not configured', async () => {
    const v = verifier();
    const idC = await attC.identity();
    expect(codeOf(() => v.challenge(idC))).toMatch(/^EK_CERT_UNTRUSTED: EK certificate: .*does not chain/);
  });

  it('admits only registered EKs when the operator lists them', async () => {
    const idA = await attA.identity();
    const v = new NodeAttestationVerifier({
      manufacturerRoots: a.rootCaPem,
      manufacturerIntermediates: a.issuerCaPem,
      referenceValues: [reference],
      allowedEkPublicKeyDigests: [`sha256:${'0'.repeat(64)}`],
    });
    expect(codeOf(() => v.challenge(idA))).toMatch(/^EK_NOT_ALLOWED: EK sha256:[0-9a-f]{64} is not a registered node/);
  });

  it('refuses a node whose PCR 23 does not match the reference value (the PCR is named)', async () => {
    const other = makeReferenceValueSet('runner-image-v2', 'sha256', {
      ...BOOT,
      '23': extendPcr('sha256', [createHash('sha256').update('v2').digest()]).toString('hex'),
    });
    const v = verifier([other]);
    const evidence = await attA.attest(v.challenge(await attA.identity()));
    expect(codeOf(() => v.verify(evidence))).toMatch(
      new RegExp(`^REFERENCE_VALUE_MISMATCH: .*PCR sha256:23 is ${pcr23}, reference `),
    );
  });

  it('refuses a tampered reference value set (values changed under an approved id)', () => {
    const tampered = { ...reference, pcrs: { ...reference.pcrs, '23': 'ab'.repeat(32) } };
    expect(codeOf(() => verifier([tampered]))).toMatch(/^REFERENCE_VALUES_INVALID: .*values were changed/);
  });

  it('refuses reported PCR values that do not match the quoted digest', async () => {
    const v = verifier();
    const evidence = await attA.attest(v.challenge(await attA.identity()));
    const lying: TpmEvidence = {
      ...evidence,
      pcrs: { bank: 'sha256', values: { ...evidence.pcrs.values, '7': 'ff'.repeat(32) } },
    };
    expect(codeOf(() => v.verify(lying))).toMatch(/^PCR_DIGEST_MISMATCH: /);
  });

  it('activates credentials made for the ECC P-384 EK (ECDH + KDFe seed)', async () => {
    const att = new TpmAttester({
      tcti: a.tcti,
      workDir: join(dir, 'a-ecc'),
      ekHandle: 0x81010016,
      ekCertNvIndex: 0x1c00016,
    });
    const v = verifier();
    const node = v.verify(await att.attest(v.challenge(await att.identity())));
    expect(node.ekCertificate.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
  });

  it('binds a build to the attested node: a quote over H(invocation id, spec digest) verifies with the attested AK', async () => {
    const v = verifier();
    const node = v.verify(await attA.attest(v.challenge(await attA.identity())));
    const spec = `sha256:${'5'.repeat(64)}`;
    const nonce = buildQuoteNonce('build-42', spec).toString('hex');
    const q = await attA.quote(nonce, v.pcrSelection);
    const ok = verifyBuildQuote(q, { invocationId: 'build-42', specDigest: spec, referenceValues: [reference] });
    expect(ok.akName).toBe(node.claims.ak.name);
    expect(ok.referenceValues.id).toBe(reference.id);
    // The same quote presented for another build: the nonce names the build it was made for.
    expect(
      codeOf(() => verifyBuildQuote(q, { invocationId: 'build-43', specDigest: spec, referenceValues: [reference] })),
    ).toMatch(/^QUOTE_NONCE_MISMATCH: /);
    // B's AK cannot stand in: its name differs from the attested one.
    const qB = await attB.quote(nonce, v.pcrSelection);
    const okB = verifyBuildQuote(qB, { invocationId: 'build-42', specDigest: spec, referenceValues: [reference] });
    expect(okB.akName).not.toBe(node.claims.ak.name);
  });
});
