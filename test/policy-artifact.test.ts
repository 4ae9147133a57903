/**
 * verifyArtifactByPolicy (the library call behind `airlock verify artifact`, `report`, `run`'s check of its outputs
 * and the demo) on real bundles: provenance and SBOM from the runner's builders signed as the runner through a real
 * trust plane, a sync-signed snapshot gathered with VerifiedSnapshots. Proves: raw bundle bytes are verified and
 * evaluated into a PASS; a tampered bundle is a failed `attestations.signature` rule that still appears among the
 * verdict's inputs (the VSA names every bundle given); a bundle of another artifact fails the verdict; bundles signed
 * by another identity fail provenance.signed; unusable input is a typed PolicyError; a snapshot that does not verify
 * is refused when gathered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parsePolicy,
  PolicyError,
  VerifiedSnapshots,
  verifyArtifactByPolicy,
  type BundleInput,
  type LoadedPolicy,
  type VerifyArtifactInput,
} from '@airlock/policy';
import {
  ARTIFACT,
  ARTIFACT_NAME,
  provenanceInput,
  provenanceOf,
  sbomOf,
  startWorld,
  type World,
} from './helpers/policy-world.js';

let w: World;
let policy: LoadedPolicy;
let snapshots: VerifiedSnapshots;
let good: BundleInput[];
let rogue: BundleInput[];

const asInput = (uri: string, bundle: unknown): BundleInput => ({ uri, bytes: Buffer.from(JSON.stringify(bundle)) });

function verify(over: Partial<VerifyArtifactInput>) {
  return verifyArtifactByPolicy({
    policy,
    trustedRoots: [w.plane.trustedRoot],
    artifact: { name: ARTIFACT_NAME, bytes: ARTIFACT },
    bundles: good,
    snapshotSource: snapshots.source,
    snapshotInfo: snapshots.infos,
    ...over,
  });
}

beforeAll(async () => {
  w = await startWorld(3);
  policy = parsePolicy(
    `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  source: { uris: ['https://git.corp.example/acme/*.git'] }
  reproducible: true
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`,
    'test:artifact-policy',
  );
  snapshots = new VerifiedSnapshots([w.verifier]).add(w.snapshot.manifestBytes, w.snapshot.bundle, 'snapshot 1');
  const input = provenanceInput(w);
  good = [
    asInput('app.provenance.sigstore.json', await w.signers.runner.attest(provenanceOf(input))),
    asInput('app.sbom.sigstore.json', await w.signers.runner.attest(sbomOf(input))),
  ];
  rogue = [
    asInput('rogue.provenance.sigstore.json', await w.signers.rogue.attest(provenanceOf(input))),
    asInput('rogue.sbom.sigstore.json', await w.signers.rogue.attest(sbomOf(input))),
  ];
}, 120_000);

afterAll(async () => {
  await w?.close();
});

describe('verifyArtifactByPolicy', () => {
  it('verifies the bundle bytes and passes; the inputs are every bundle by digest; the snapshot is reported', async () => {
    const run = await verify({ resourceUri: 'dist/app.tgz' });
    expect(run.verdict.rules.filter((r) => !r.passed)).toEqual([]);
    expect(run.verdict.result).toBe('PASS');
    expect(run.resourceUri).toBe('dist/app.tgz');
    expect(run.bundlesUsed.map((b) => b.uri)).toEqual(good.map((b) => b.uri));
    expect(run.snapshots).toEqual([
      expect.objectContaining({ id: w.snapshot.manifest.snapshot.id, signer: w.ids.sync }),
    ]);
  });

  it('a tampered bundle is a failed attestations.signature rule, still named among the inputs', async () => {
    const json = JSON.parse(good[0]!.bytes.toString('utf8')) as { dsseEnvelope: { payload: string } };
    const statement = JSON.parse(Buffer.from(json.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      predicate: { runDetails: { builder: { id: string } } };
    };
    statement.predicate.runDetails.builder.id = 'https://ci.example/forged';
    json.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    const tampered = asInput('tampered.provenance.sigstore.json', json);
    const run = await verify({ bundles: [tampered, good[1]!] });
    expect(run.verdict.result).toBe('FAIL');
    expect(run.verdict.verifiedLevels).toEqual(['FAILED']);
    expect(run.verdict.rules[0]).toMatchObject({ rule: 'attestations.signature', passed: false });
    expect(run.verdict.rules[0]!.message).toContain('tampered.provenance.sigstore.json does not verify');
    expect(run.bundlesUsed.map((b) => b.uri)).toContain(tampered.uri);
  });

  it('bundles about another artifact fail the verdict', async () => {
    const run = await verify({ artifact: { name: 'other.tgz', sha256: 'a'.repeat(64) } });
    expect(run.verdict.result).toBe('FAIL');
    expect(run.verdict.rules.filter((r) => !r.passed).map((r) => r.rule)).toContain('attestations.signature');
  });

  it('bundles signed by another identity fail provenance.signed and sbom.signed', async () => {
    const run = await verify({ bundles: rogue });
    expect(run.verdict.result).toBe('FAIL');
    const failed = run.verdict.rules.filter((r) => !r.passed).map((r) => r.rule);
    expect(failed).toEqual(expect.arrayContaining(['provenance.signed', 'sbom.signed']));
    expect(run.verdict.rules.find((r) => r.rule === 'provenance.signed')!.message).toContain(w.ids.rogue);
  });

  it('unusable input is a PolicyError: a bundle that is not JSON, no trusted root', async () => {
    const notJson = verify({ bundles: [{ uri: 'x.sigstore.json', bytes: Buffer.from('{nope') }] });
    await expect(notJson).rejects.toMatchObject({ code: 'POLICY_INPUT_INVALID' });
    await expect(notJson).rejects.toBeInstanceOf(PolicyError);
    await expect(verify({ trustedRoots: [] })).rejects.toMatchObject({ code: 'POLICY_INPUT_INVALID' });
  });

  it('a snapshot whose manifest is not what was signed is refused when gathered', () => {
    const other = Buffer.from(w.snapshot.manifestBytes.toString('utf8').replace('left-pad', 'left-pbd'));
    expect(() => new VerifiedSnapshots([w.verifier]).add(other, w.snapshot.bundle, 'forged')).toThrow(
      expect.objectContaining({ code: 'POLICY_SNAPSHOT_INVALID' }),
    );
  });
});
