/**
 * `airlock verify artifact` / `verify vsa` through the built CLI, on real artifacts: a real trust plane on loopback,
 * provenance and SBOM made by the runner's own builders and signed as the runner (test/helpers/policy-world.ts),
 * bundles written beside the artifact under the runner's names, a transfer manifest made by mirror-sync's builder
 * and signed as the sync job — given as an unpacked transfer bundle (--snapshot) and committed into a real mirror
 * store (--mirror-store: a transfer bundle imported by the real importer, which keeps the sync bundle). Proves: a written policy passes (exit 0,
 * every rule ✓, SLSA Build L3); a representative negative matrix is refused with the rule named (wrong builder id via
 * the shortcut flags, snapshot signed by the wrong identity, tampered provenance → exit 1; malformed policy and
 * unknown key → exit 2 naming the field); the signed VSA verifies with stock @sigstore/verify (subject = the
 * artifact digest) and with `verify vsa`, which refuses it for another file or another policy digest (exit 1); a CA
 * and log that cannot be reached → exit 3; the old `verify FILE --bundle B` form still routes to the signature check.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { canonicalTarHeader, importBundle } from '@airlock/mirror';
import {
  ARTIFACT,
  ARTIFACT_SHA256,
  attest,
  provenanceInput,
  provenanceOf,
  REPO,
  sbomOf,
  sha256,
  signSnapshot,
  startWorld,
  type Pkg,
  type SignedSnapshot,
  type World,
} from './helpers/policy-world.js';
import { runCli } from './helpers/cli.js';

let w: World;
let work: string;
let file: string;
let data: string;
let policyPath: string;
let snapDir: string;
let storeDir: string;

interface RuleJson {
  rule: string;
  passed: boolean;
  seen: unknown;
  expected: unknown;
}
interface VerdictJson {
  ok: boolean;
  result: string;
  rules: RuleJson[];
  verifiedLevels: string[];
  inputAttestations: { uri: string; digest: { sha256: string } }[];
  policy: { digest: { sha256: string } };
}

function writeSnapshotDir(dir: string, snap: SignedSnapshot): string {
  mkdirSync(join(dir, 'attestations'), { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), snap.manifestBytes);
  writeFileSync(join(dir, 'attestations', 'manifest.sigstore.json'), JSON.stringify(snap.bundle));
  return dir;
}

/** A transfer bundle: manifest.json, its Sigstore bundle, then blobs/sha256/<hex>, as canonical ustar entries. */
function transferTar(snap: SignedSnapshot, packages: readonly Pkg[]): Buffer {
  const entries: [string, Buffer][] = [
    ['manifest.json', snap.manifestBytes],
    ['attestations/manifest.sigstore.json', Buffer.from(JSON.stringify(snap.bundle))],
    ...packages.map((p): [string, Buffer] => [`blobs/sha256/${p.entry.digests.sha256}`, p.bytes]),
  ];
  const parts: Buffer[] = [];
  for (const [name, body] of entries) {
    parts.push(canonicalTarHeader(name, body.length)!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function policyText(builderIds: string = w.ids.runner): string {
  return `apiVersion: airlock.dev/policy/v1
name: acme-app release
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${builderIds}']
  buildTypes: [https://airlock.dev/buildtypes/hermetic/v1]
  source:
    uris: ['https://git.corp.example/acme/*.git']
    refs: { semverTags: '>=1.0.0 <2.0.0' }
  reproducible: true
  maxAge: 30d
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`;
}

beforeAll(async () => {
  w = await startWorld(4);
  work = join(w.dir, 'work');
  mkdirSync(work);
  data = join(w.dir, 'plane');
  file = join(work, 'app.tgz');
  writeFileSync(file, ARTIFACT);
  const input = provenanceInput(w, { finishedOn: new Date().toISOString() });
  const prov = await attest(w, w.signers.runner, provenanceOf(input), 'p');
  const sbom = await attest(w, w.signers.runner, sbomOf(input), 's');
  // The runner's names (runner/src/attestation.ts): found beside the file when no --bundle is given.
  writeFileSync(`${file}.provenance.sigstore.json`, JSON.stringify(prov.bundle));
  writeFileSync(`${file}.sbom.sigstore.json`, JSON.stringify(sbom.bundle));
  policyPath = join(work, 'release.policy.yaml');
  writeFileSync(policyPath, policyText());
  snapDir = writeSnapshotDir(join(work, 'snapshot'), w.snapshot);
  storeDir = join(work, 'store');
  // The real importer on a transfer bundle laid out as mirror-sync writes it (canonical ustar entries).
  const tarPath = join(work, 'transfer.tar');
  writeFileSync(tarPath, transferTar(w.snapshot, w.packages));
  const store = await MirrorStore.open(storeDir);
  await importBundle(tarPath, {
    store,
    trustedRoot: w.plane.trustedRoot,
    syncIdentity: { subject: w.ids.sync, issuer: w.issuer },
  });
  await store.close();
}, 120_000);

afterAll(async () => {
  await w?.close();
});

async function verifyJson(args: string[]): Promise<{ code: number | null; v: VerdictJson; stderr: string }> {
  const r = await runCli(['verify', 'artifact', file, '--data', data, '--json', ...args]);
  return { code: r.code, v: JSON.parse(r.stdout) as VerdictJson, stderr: r.stderr };
}

const failed = (v: VerdictJson): string[] => v.rules.filter((r) => !r.passed).map((r) => r.rule);

describe('airlock verify artifact', () => {
  it('passes a release policy with the bundles found beside the file and a signed snapshot (exit 0, L3)', async () => {
    const r = await runCli(['verify', 'artifact', file, '--policy', policyPath, '--data', data, '--snapshot', snapDir]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS /);
    expect(r.stdout).toContain('✓ provenance.builderId');
    expect(r.stdout).toContain('✓ dependencies.snapshot');
    expect(r.stdout).not.toContain('✗');
    const j = await verifyJson(['--policy', policyPath, '--snapshot', snapDir]);
    expect(j.code).toBe(0);
    expect(j.v.result).toBe('PASS');
    expect(failed(j.v)).toEqual([]);
    expect(j.v.rules.map((x) => x.rule)).toEqual(
      expect.arrayContaining(['provenance.signed', 'provenance.builderId', 'dependencies.snapshot', 'sbom.coverage']),
    );
    expect(j.v.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    expect(j.v.policy.digest.sha256).toBe(sha256(readFileSync(policyPath)));
    expect(j.v.inputAttestations.map((a) => a.uri).sort()).toEqual(
      [`${file}.provenance.sigstore.json`, `${file}.sbom.sigstore.json`].sort(),
    );
  });

  it('finds the sync-signed snapshot in a mirror store (the bundle the import kept), and fails without one', async () => {
    const ok = await verifyJson(['--policy', policyPath, '--mirror-store', storeDir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.v.rules.find((x) => x.rule === 'dependencies.snapshot')?.passed).toBe(true);
    const none = await verifyJson(['--policy', policyPath]);
    expect(none.code).toBe(1);
    expect(failed(none.v)).toContain('dependencies.snapshot');
  });

  it('wrong builder id (shortcut flags) → exit 1 naming provenance.builderId with seen and expected', async () => {
    const r = await runCli([
      'verify',
      'artifact',
      file,
      '--data',
      data,
      '--builder-id',
      'https://ci.example/other-builder',
      '--source-uri',
      REPO,
      '--certificate-identity',
      w.ids.runner,
      '--certificate-oidc-issuer',
      w.issuer,
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAIL /);
    expect(r.stdout).toContain('✗ provenance.builderId');
    expect(r.stdout).toContain(`seen:     ${w.ids.runner}`);
    expect(r.stdout).toContain('https://ci.example/other-builder');
    expect(r.stdout).toContain('✓ provenance.source.uri');
  });

  it('a snapshot signed by another identity does not count → exit 1 naming dependencies.snapshot', async () => {
    const rogue = await signSnapshot(w.signers.rogue, w.packages, 1, null);
    const dir = writeSnapshotDir(join(work, 'rogue-snapshot'), rogue);
    const j = await verifyJson(['--policy', policyPath, '--snapshot', dir]);
    expect(j.code).toBe(1);
    expect(failed(j.v)).toEqual(['dependencies.snapshot']);
  });

  it('tampered provenance → exit 1, the bundle named as a failed attestations.signature rule', async () => {
    const b = JSON.parse(readFileSync(`${file}.provenance.sigstore.json`, 'utf8')) as {
      dsseEnvelope: { payload: string };
    };
    const stmt = JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      predicate: { runDetails: { builder: { id: string } } };
    };
    stmt.predicate.runDetails.builder.id = 'https://evil.example/builder';
    b.dsseEnvelope.payload = Buffer.from(JSON.stringify(stmt)).toString('base64');
    const tampered = join(work, 'tampered.provenance.sigstore.json');
    writeFileSync(tampered, JSON.stringify(b));
    const j = await verifyJson([
      '--policy',
      policyPath,
      '--snapshot',
      snapDir,
      '--bundle',
      tampered,
      '--bundle',
      `${file}.sbom.sigstore.json`,
    ]);
    expect(j.code).toBe(1);
    expect(failed(j.v)).toContain('attestations.signature');
    expect(failed(j.v)).toContain('provenance.signed');
    expect(JSON.stringify(j.v.rules.find((x) => x.rule === 'attestations.signature')!.seen)).toContain(tampered);
  });

  it('malformed policy → exit 2 naming the field; unknown key → exit 2 naming it', async () => {
    const bad = join(work, 'bad.policy.yaml');
    writeFileSync(bad, policyText().replace(`builderIds: ['${w.ids.runner}']`, 'builderIds: [42]'));
    const r = await runCli(['verify', 'artifact', file, '--policy', bad, '--data', data, '--json']);
    expect(r.code).toBe(2);
    const e = (JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } }).error;
    expect(e.code).toBe('POLICY_INVALID');
    expect(e.message).toContain('policy.provenance.builderIds[0]: must be string');
    writeFileSync(bad, `${policyText()}\nreproducable: true\n`);
    const u = await runCli(['verify', 'artifact', file, '--policy', bad, '--data', data]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('policy.reproducable: unknown field');
  });

  it('the old form `verify FILE --bundle B` still checks one signature and identity', async () => {
    const r = await runCli([
      'verify',
      file,
      '--bundle',
      `${file}.provenance.sigstore.json`,
      '--data',
      data,
      '--certificate-identity',
      w.ids.runner,
      '--certificate-oidc-issuer',
      w.issuer,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`verified ${file}`);
    const missing = await runCli(['verify', file, '--data', data]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--bundle');
  });
});

// Several CLI processes per test (sign through the plane, verify): slow on a loaded 2-core machine, not a timing check.
describe('the VSA', { timeout: 180_000 }, () => {
  let vsa: string;
  let policyDigest: string;
  const verifierId = (): string => `spiffe://${w.plane.endpoints.trustDomain}/airlock/verifier`;

  beforeAll(async () => {
    vsa = join(work, 'app.tgz.vsa.sigstore.json');
    const r = await runCli([
      'verify',
      'artifact',
      file,
      '--policy',
      policyPath,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--vsa',
      vsa,
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    policyDigest = `sha256:${sha256(readFileSync(policyPath))}`;
  });

  it('is signed as the verifier, logged, about the artifact digest; verifies with stock @sigstore/verify', () => {
    const json = JSON.parse(readFileSync(vsa, 'utf8')) as { verificationMaterial: { tlogEntries: unknown[] } };
    const bundle = bundleFromJSON(json);
    const trust = toTrustMaterial(TrustedRoot.fromJSON(w.plane.trustedRoot));
    const signer = new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 1 }).verify(
      toSignedEntity(bundle),
      {
        subjectAlternativeName: `^${verifierId().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
        extensions: { issuer: w.issuer },
      },
    );
    expect(signer.identity?.subjectAlternativeName).toBe(verifierId());
    if (bundle.content.$case !== 'dsseEnvelope') throw new Error('not DSSE');
    const st = JSON.parse(bundle.content.dsseEnvelope.payload.toString('utf8')) as {
      subject: { digest: { sha256: string } }[];
      predicateType: string;
      predicate: {
        verifier: { id: string };
        policy: { digest: { sha256: string } };
        inputAttestations: { uri: string; digest: { sha256: string } }[];
        verificationResult: string;
        verifiedLevels: string[];
      };
    };
    expect(st.predicateType).toBe('https://slsa.dev/verification_summary/v1');
    expect(st.subject.map((s) => s.digest.sha256)).toEqual([ARTIFACT_SHA256]);
    expect(st.predicate.verifier.id).toBe(verifierId());
    expect(st.predicate.policy.digest.sha256).toBe(policyDigest.slice(7));
    expect(st.predicate.verificationResult).toBe('PASSED');
    expect(st.predicate.verifiedLevels).toEqual(['SLSA_BUILD_LEVEL_3']);
    const inputs = Object.fromEntries(st.predicate.inputAttestations.map((a) => [a.uri, a.digest.sha256]));
    for (const b of [`${file}.provenance.sigstore.json`, `${file}.sbom.sigstore.json`])
      expect(inputs[b]).toBe(sha256(readFileSync(b)));
    expect(json.verificationMaterial.tlogEntries.length).toBe(1);
  });

  const vsaArgs = (target: string, digest = policyDigest): string[] => [
    'verify',
    'vsa',
    target,
    '--bundle',
    vsa,
    '--data',
    data,
    '--verifier-identity',
    verifierId(),
    '--verifier-issuer',
    w.issuer,
    '--policy-digest',
    digest,
  ];

  it('`verify vsa` accepts it for the artifact (exit 0)', async () => {
    const r = await runCli([...vsaArgs(file), '--minimum-level', 'SLSA_BUILD_LEVEL_3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('PASSED SLSA_BUILD_LEVEL_3');
  });

  it('refuses the VSA replayed for another file (exit 1)', async () => {
    const other = join(work, 'other.tgz');
    writeFileSync(other, 'another artifact\n');
    const r = await runCli([...vsaArgs(other), '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/VERIFY_SUBJECT_MISMATCH|POLICY_VSA_MISMATCH/);
  });

  it('refuses it under another policy digest, or from another verifier identity (exit 1)', async () => {
    const r = await runCli([...vsaArgs(file, `sha256:${'0'.repeat(64)}`), '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('POLICY_VSA_MISMATCH');
    const args = vsaArgs(file);
    args[args.indexOf('--verifier-identity') + 1] = w.ids.runner;
    const s = await runCli(args);
    expect(s.code).toBe(1);
  });

  it('--vsa-on-fail writes a FAILED VSA; without it a FAIL writes none', async () => {
    const failPolicy = join(work, 'fail.policy.yaml');
    writeFileSync(failPolicy, policyText('https://ci.example/other-builder'));
    const out = join(work, 'fail.vsa.json');
    const none = await runCli(['verify', 'artifact', file, '--policy', failPolicy, '--data', data, '--vsa', out]);
    expect(none.code).toBe(1);
    expect(() => readFileSync(out)).toThrow();
    const r = await runCli([
      'verify',
      'artifact',
      file,
      '--policy',
      failPolicy,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--vsa',
      out,
      '--vsa-on-fail',
    ]);
    expect(r.code).toBe(1);
    const b = JSON.parse(readFileSync(out, 'utf8')) as { dsseEnvelope: { payload: string } };
    const p = JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString('utf8')) as {
      predicate: { verificationResult: string; verifiedLevels: string[] };
    };
    expect(p.predicate).toMatchObject({ verificationResult: 'FAILED', verifiedLevels: ['FAILED'] });
    const failDigest = `sha256:${sha256(readFileSync(failPolicy))}`;
    const v = await runCli([...vsaArgs(file, failDigest).map((a) => (a === vsa ? out : a)), '--json']);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain('verificationResult FAILED');
  });

  it('a CA and log that cannot be reached → exit 3', async () => {
    const r = await runCli([
      'verify',
      'artifact',
      file,
      '--policy',
      policyPath,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--vsa',
      join(work, 'unreachable.vsa.json'),
      // Nothing listens on the discard port of loopback: the CA cannot be reached (the token is minted locally).
      '--fulcio-url',
      'http://127.0.0.1:9',
      '--rekor-url',
      'http://127.0.0.1:9',
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect((JSON.parse(r.stdout) as { ok: boolean }).ok).toBe(false);
  });
});
