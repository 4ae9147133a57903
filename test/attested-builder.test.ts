/**
 * Attested node claims, claims → token → certificate → policy (issue 10 §4): only the plane's own issuer (trusted
 * for attestation claims) can put them in a certificate; `requireAttestedBuilder` passes only for a certificate
 * carrying an allowed reference value set, and a build quote in the provenance must come from the same AK.
 * Real trust plane, real sigstore-js signing and verification.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, encodeOidContent, NODE_ATTESTATION_OID, NODE_ATTESTATION_TOKEN_CLAIM } from '@airlock/core';
import { attestWith } from '@airlock/agent';
import {
  attestedNodeOf,
  bindBuildQuote,
  buildQuoteNonce,
  canonicalClaims,
  extendPcr,
  makeReferenceValueSet,
  NodeAttestationVerifier,
  TpmAttester,
  type ReferenceValueSet,
  type TpmEvidence,
  type TpmIdentity,
} from '@airlock/attest';
import { IdentityIssuer } from '@airlock/identity';
import { startSwtpm, swtpmProblem, toolsAvailable, type Swtpm } from '@airlock/testkit';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { evaluatePolicy, parsePolicy, type AttestationEvidence, type PolicyDocument } from '@airlock/policy';
import type { NodeAttestationParameters } from '@airlock/runner';
import { AirlockSigner } from '@airlock/sign';
import {
  ARTIFACT_NAME,
  ARTIFACT_SHA256,
  attest,
  provenanceInput,
  provenanceOf,
  sha256,
  startWorld,
  type World,
} from './helpers/policy-world.js';

const RV_ID = `sha256:${sha256('reference values of runner-image-v1')}`;
const AK_NAME = `000b${sha256('the attested AK')}`;

/** Claims in the shape of @airlock/attest's NodeAttestationClaims (what NodeAttestationVerifier returns). */
const CLAIMS = {
  version: 1,
  type: 'tpm2',
  ek: {
    certificateDigest: `sha256:${sha256('ek cert')}`,
    publicKeyDigest: `sha256:${sha256('ek spki')}`,
    issuer: 'CN=swtpm-localca',
  },
  ak: { name: AK_NAME, publicKeyDigest: `sha256:${sha256('ak spki')}` },
  pcrs: { bank: 'sha256', values: { '0': sha256('pcr0'), '23': sha256('runner image') } },
  referenceValues: { id: RV_ID, name: 'runner-image-v1' },
  quote: {
    digest: `sha256:${sha256('node quote')}`,
    nonce: sha256('issuer nonce'),
    resetCount: 0,
    restartCount: 0,
    firmwareVersion: '0x2019121700000000',
  },
  attestedAt: '2026-12-06T21:00:00.000Z',
};
const CLAIMS_JSON = canonicalize(CLAIMS);

let w: World;

beforeAll(async () => {
  w = await startWorld(3);
});
afterAll(async () => {
  await w?.close();
});

function signerWith(plane: RunningTrustPlane, identity: () => Promise<string>): AirlockSigner {
  return new AirlockSigner({ fulcioUrl: plane.endpoints.caUrl, rekorUrl: plane.endpoints.tlogUrl, identity });
}

async function provenanceSignedWith(
  nodeAttestation: string | undefined,
  build?: NodeAttestationParameters,
): Promise<AttestationEvidence & { bundle: { verificationMaterial: unknown } }> {
  const signer = signerWith(w.plane, () =>
    w.plane.issueToken(w.ids.runner, nodeAttestation !== undefined ? { nodeAttestation } : {}),
  );
  const input = { ...provenanceInput(w), ...(build ? { nodeAttestation: build } : {}) };
  return attest(w, signer, provenanceOf(input), `${ARTIFACT_NAME}.provenance.sigstore.json`);
}

function policyRequiring(referenceValues: string[]) {
  const doc: PolicyDocument = {
    apiVersion: 'airlock.dev/policy/v1',
    authorities: { runner: { keyless: { subject: w.ids.runner, issuer: w.issuer } } },
    provenance: { authorities: ['runner'], requireAttestedBuilder: { referenceValues } },
  };
  return parsePolicy(JSON.stringify(doc), 'attested.policy.json');
}

async function verdictFor(p: AttestationEvidence, referenceValues = [RV_ID]) {
  const v = await evaluatePolicy(
    policyRequiring(referenceValues),
    { artifact: { digest: { sha256: ARTIFACT_SHA256 } }, attestations: [p] },
    { now: new Date() },
  );
  return { v, rule: v.rules.find((r) => r.rule === 'provenance.attestedBuilder')! };
}

/** The leaf's DER, and whether it holds an extension `oid` whose value contains `text` (OID by encoded bytes). */
function leafOf(bundle: unknown): { der: Buffer; has(oid: string, text?: string): boolean } {
  const m = (bundle as { verificationMaterial: { certificate?: { rawBytes: string } } }).verificationMaterial;
  const der = Buffer.from(m.certificate!.rawBytes, 'base64');
  return {
    der,
    has(oid, text) {
      const at = der.indexOf(Buffer.concat([Buffer.from([0x06, encodeOidContent(oid).length]), encodeOidContent(oid)]));
      return at >= 0 && (text === undefined || der.subarray(at, at + 4000).includes(Buffer.from(text)));
    },
  };
}

/** Well-formed but made up: no TPM signed it, so the policy's re-verification refuses it. */
const BUILD_QUOTE: NodeAttestationParameters = {
  quoteDigest: `sha256:${sha256('build quote')}`,
  nonce: sha256('run-7f3a + spec digest'),
  akName: AK_NAME,
  referenceValues: { id: RV_ID, name: 'runner-image-v1', bank: 'sha256', pcrs: { '23': sha256('runner image') } },
  akPublic: Buffer.from('not a TPM2B_PUBLIC').toString('base64'),
  quote: { attest: Buffer.from('not a TPMS_ATTEST').toString('base64'), signature: 'AAAA' },
  pcrs: { bank: 'sha256', values: { '23': sha256('runner image') } },
};

describe('attested node claims: token → certificate → policy', () => {
  it('the plane issuer’s token carries the claims, the CA copies them under the OID arc; a made-up build quote fails', async () => {
    const p = await provenanceSignedWith(CLAIMS_JSON, BUILD_QUOTE);
    const leaf = leafOf(p.bundle);
    expect(leaf.has(NODE_ATTESTATION_OID.claims, '"referenceValues"')).toBe(true);
    expect(leaf.has(NODE_ATTESTATION_OID.referenceValueSetId, RV_ID)).toBe(true);
    expect(leaf.has(NODE_ATTESTATION_OID.akName, AK_NAME)).toBe(true);
    expect(leaf.has(NODE_ATTESTATION_OID.quoteDigest, CLAIMS.quote.digest)).toBe(true);
    expect(p.verification.signer.nodeAttestation).toBe(CLAIMS_JSON);
    // The claims are in order, but the recorded quote is re-verified and no TPM made it.
    const { v, rule } = await verdictFor(p);
    expect(rule.passed).toBe(false);
    expect(rule.message).toMatch(/build quote is refused \(REFERENCE_VALUES_INVALID\)/);
    expect(v.result).toBe('FAIL');
  });

  it('attested claims without a build quote in the provenance fail, named', async () => {
    const { rule } = await verdictFor(await provenanceSignedWith(CLAIMS_JSON));
    expect(rule.passed).toBe(false);
    expect(rule.message).toMatch(/records no build quote \(internalParameters\.nodeAttestation\)/);
  });

  it('an unattested runner (token without node claims) fails the rule, named', async () => {
    const p = await provenanceSignedWith(undefined);
    expect(p.verification.signer.nodeAttestation).toBeUndefined();
    const { v, rule } = await verdictFor(p);
    expect(v.result).toBe('FAIL');
    expect(rule.passed).toBe(false);
    expect(rule.message).toMatch(/unattested builder/);
  });

  it('a reference value set the policy does not allow fails (e.g. a tampered set has another id)', async () => {
    const p = await provenanceSignedWith(CLAIMS_JSON);
    const { rule } = await verdictFor(p, [`sha256:${sha256('another set')}`]);
    expect(rule.passed).toBe(false);
    expect(rule.message).toMatch(new RegExp(`reference value set '${RV_ID}' is not one of the allowed sets`));
  });
});

describe('a token from an issuer not trusted for attestation claims cannot inject them', () => {
  let dir: string;
  let plane: RunningTrustPlane;
  let foreign: IdentityIssuer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-attested-'));
    foreign = await IdentityIssuer.open({
      dataDir: join(dir, 'foreign'),
      issuerUrl: 'http://foreign-ci.example',
      trustDomain: 'foreign.example',
    });
    plane = await startTrustPlane({
      dataDir: join(dir, 'plane'),
      externalIssuers: [
        { issuerUrl: foreign.issuerUrl, type: 'spiffe', trustDomain: 'foreign.example', jwks: foreign.jwks() },
      ],
    });
  });
  afterAll(async () => {
    await plane?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the CA refuses the certificate, naming the untrusted issuer', async () => {
    const token = await foreign.issueToken({
      subject: 'spiffe://foreign.example/runner',
      nodeAttestation: CLAIMS_JSON,
    });
    const signer = signerWith(plane, () => Promise.resolve(token));
    await expect(signer.signBlob(Buffer.from('x'))).rejects.toThrow(
      /http:\/\/foreign-ci\.example is not trusted to assert node attestation claims/,
    );
  });

  it('an issuer refuses the attestation claim among request claims (only the in-process nodeAttestation sets it)', async () => {
    await expect(
      foreign.issueToken({
        subject: 'spiffe://foreign.example/runner',
        claims: { [NODE_ATTESTATION_TOKEN_CLAIM]: CLAIMS_JSON } as never,
      }),
    ).rejects.toMatchObject({ code: 'TOKEN_REQUEST_INVALID' });
  });

  it('the same issuer without the claim still gets a certificate (the refusal is about the claim)', async () => {
    const token = await foreign.issueToken({ subject: 'spiffe://foreign.example/runner' });
    const bundle = await signerWith(plane, () => Promise.resolve(token)).signBlob(Buffer.from('x'));
    expect(leafOf(bundle).has(NODE_ATTESTATION_OID.claims)).toBe(false);
  });
});

const tpmAvailable = toolsAvailable('swtpm node attestation', [swtpmProblem()]);

describe.skipIf(!tpmAvailable)('swtpm: the node attests, its claims reach the certificate and the policy', () => {
  let dir: string;
  let a: Swtpm, c: Swtpm;
  let attA: TpmAttester, attC: TpmAttester;
  const IMAGE = sha256('airlock runner image v1');
  const reference = makeReferenceValueSet('runner-image-v1', 'sha256', {
    ...Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((p) => [String(p), '00'.repeat(32)])),
    '23': extendPcr('sha256', [Buffer.from(IMAGE, 'hex')]).toString('hex'),
  });
  /** The agent's seam over the real TPM and verifier (what `identity agent --tpm-socket …` wires). */
  const attestation = (att: TpmAttester, refs: ReferenceValueSet[]) => {
    const verifier = new NodeAttestationVerifier({
      manufacturerRoots: a.rootCaPem,
      manufacturerIntermediates: a.issuerCaPem,
      referenceValues: refs,
    });
    return {
      attestor: att,
      challenge: (i: TpmIdentity) => verifier.challenge(i),
      verify: (e: TpmEvidence) => {
        const { claims } = verifier.verify(e);
        return {
          nodeId: claims.ek.publicKeyDigest,
          referenceValueSetId: claims.referenceValues.id,
          claimsJson: canonicalClaims(claims).toString('utf8'),
        };
      },
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-attested-tpm-'));
    a = await startSwtpm(join(dir, 'a'), { localCaDir: join(dir, 'vendor1') });
    c = await startSwtpm(join(dir, 'c'), { localCaDir: join(dir, 'vendor2') });
    attA = new TpmAttester({ tcti: a.tcti, workDir: join(dir, 'a-work') });
    attC = new TpmAttester({ tcti: c.tcti, workDir: join(dir, 'c-work') });
    for (const att of [attA, attC]) await att.extendPcr(IMAGE);
  });
  afterAll(async () => {
    await Promise.all([a, c].map((t) => t?.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('attested node → token → certificate extension; build quote → provenance → requireAttestedBuilder PASS', async () => {
    const node = await attestWith(attestation(attA, [reference]));
    expect(node.referenceValueSetId).toBe(reference.id);
    const { invocationId, specDigest } = provenanceInput(w);
    const pcrSelection = { bank: 'sha256' as const, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 23] };
    const quote = await attA.quote(buildQuoteNonce(invocationId, specDigest).toString('hex'), pcrSelection);
    const record = bindBuildQuote(quote, {
      invocationId,
      specDigest,
      referenceValues: [reference],
      node: attestedNodeOf(node.claimsJson, 'the token'),
    });
    const p = await provenanceSignedWith(node.claimsJson, record);
    expect(p.verification.signer.nodeAttestation).toBe(node.claimsJson);
    const { v, rule } = await verdictFor(p, [reference.id]);
    expect(rule.passed).toBe(true);
    expect(rule.message).toMatch(new RegExp(`build quote ${record.quoteDigest} binds invocation ${invocationId}`));
    expect(v.result).toBe('PASS');
    // The same quote from the other TPM's AK (C), recorded honestly: not the attested node's AK.
    const fromC = await attC.quote(buildQuoteNonce(invocationId, specDigest).toString('hex'), pcrSelection);
    expect(() =>
      bindBuildQuote(fromC, {
        invocationId,
        specDigest,
        referenceValues: [reference],
        node: attestedNodeOf(node.claimsJson, 'the token'),
      }),
    ).toThrow(/build quote from a different TPM/);
  });

  it('a tampered reference value set and a TPM from another manufacturer are refused, named', async () => {
    const tampered = { ...reference, pcrs: { ...reference.pcrs, '23': 'ff'.repeat(32) } };
    // Refused when the operator's configuration is loaded, before any TPM is asked.
    expect(() => attestation(attA, [tampered])).toThrow(/the values were changed after the id was computed/);
    await expect(attestWith(attestation(attC, [reference]))).rejects.toMatchObject({ code: 'EK_CERT_UNTRUSTED' });
  });
});
