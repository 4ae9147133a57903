/**
 * The image forms of the policy commands through the built CLI, against a real CNCF Distribution registry
 * (docker-registry) on loopback and a real trust plane: `airlock report REF` and `airlock verify vsa REF` (tags
 * resolved to digests first), and `verify image` refusing a cosign `.sig` whose bundle another identity signed.
 * Images carry what the runner attaches (test/helpers/policy-image-world.ts). Proves: `report REF` writes the HTML
 * and Markdown about the resolved digest (exit 0); `verify vsa REF --bundle` accepts the VSA `verify image --vsa`
 * wrote for that image and refuses it for another image's digest; `verify vsa REF` finds a VSA attached as a
 * referrer, and refuses it under another policy digest; an unknown tag is bad input (exit 2). Skips (printing why)
 * without docker-registry unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachSigstoreBundle, RegistryClient } from '@airlock/oci';
import { registryProblem, startRegistry, toolsAvailable, type RunningRegistry } from '@airlock/testkit';
import { pushImage, signImage } from './helpers/policy-image-world.js';
import { startWorld, type World } from './helpers/policy-world.js';
import { runCli } from './helpers/cli.js';

const enabled = toolsAvailable('report / verify vsa for images (docker-registry)', [registryProblem()]);

let w: World;
let registry: RunningRegistry;
let data: string;
let work: string;
let policyPath: string;
let policyDigest: string;
let snapDir: string;
const digests: Record<string, string> = {};

const ref = (repoTag: string): string => `${registry.host}/${repoTag}`;
const verifierId = (): string => `spiffe://${w.plane.endpoints.trustDomain}/airlock/verifier`;
const vsaArgs = (target: string, ...more: string[]): string[] => [
  'verify',
  'vsa',
  target,
  '--registry-plain-http',
  '--data',
  data,
  '--verifier-identity',
  verifierId(),
  '--verifier-issuer',
  w.issuer,
  ...more,
];

beforeAll(async () => {
  if (!enabled) return;
  w = await startWorld(4);
  data = join(w.dir, 'plane');
  work = join(w.dir, 'work');
  registry = await startRegistry(join(w.dir, 'registry'));
  const client = new RegistryClient({ url: registry.url });
  const { runner, rogue } = w.signers;
  digests.app = await pushImage(client, 'acme/app', 'v1.4.2');
  await signImage(w, client, 'acme/app', digests.app, { attestations: runner, signature: runner });
  digests.other = await pushImage(client, 'acme/other', 'v1.4.2');
  await signImage(w, client, 'acme/other', digests.other, { attestations: runner, signature: runner });
  digests.rogueSig = await pushImage(client, 'acme/rogue-sig', 'v1.4.2');
  await signImage(w, client, 'acme/rogue-sig', digests.rogueSig, { attestations: runner, signature: rogue });
  snapDir = join(work, 'snapshot');
  mkdirSync(join(snapDir, 'attestations'), { recursive: true });
  writeFileSync(join(snapDir, 'manifest.json'), w.snapshot.manifestBytes);
  writeFileSync(join(snapDir, 'attestations', 'manifest.sigstore.json'), JSON.stringify(w.snapshot.bundle));
  policyPath = join(work, 'release.policy.yaml');
  const policy = `apiVersion: airlock.dev/policy/v1
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  source: { uris: ['https://git.corp.example/acme/*.git'], refs: { semverTags: '^1.0.0' } }
  reproducible: true
  maxAge: 30d
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`;
  writeFileSync(policyPath, policy);
  const { createHash } = await import('node:crypto');
  policyDigest = createHash('sha256').update(policy).digest('hex');
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  await w?.close();
});

describe.runIf(enabled)('policy commands on image references', () => {
  const policyArgs = (): string[] => ['--registry-plain-http', '--policy', policyPath, '--data', data];

  it('report REF writes the HTML and Markdown about the digest the tag resolved to', async () => {
    const html = join(work, 'app.html');
    const md = join(work, 'app.md');
    const r = await runCli(['report', ref('acme/app:v1.4.2'), ...policyArgs(), '--snapshot', snapDir, '--html', html]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const j = await runCli([
      'report',
      ref('acme/app:v1.4.2'),
      ...policyArgs(),
      '--snapshot',
      snapDir,
      '--md',
      md,
      '--json',
    ]);
    expect(j.code, j.stdout + j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, result: 'PASS', image: ref(`acme/app@${digests.app}`) });
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(digests.app!.slice(7));
    expect(page).toContain('attestations.cosign-signature');
    expect(readFileSync(md, 'utf8')).toContain('PASS');
  });

  it('verify vsa REF --bundle accepts the VSA of verify image --vsa, and refuses it for another image', async () => {
    const vsa = join(work, 'app.vsa.json');
    const v = await runCli([
      'verify',
      'image',
      ref('acme/app:v1.4.2'),
      ...policyArgs(),
      '--snapshot',
      snapDir,
      '--vsa',
      vsa,
    ]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const ok = await runCli([
      ...vsaArgs(ref('acme/app:v1.4.2'), '--bundle', vsa, '--policy-digest', policyDigest),
      '--json',
    ]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      ok: true,
      image: ref(`acme/app@${digests.app}`),
      sha256: digests.app!.slice(7),
      predicate: { verificationResult: 'PASSED', resourceUri: ref(`acme/app@${digests.app}`) },
    });
    const replay = await runCli([
      ...vsaArgs(ref('acme/other:v1.4.2'), '--bundle', vsa, '--policy-digest', policyDigest),
    ]);
    expect(replay.code, replay.stdout + replay.stderr).toBe(1);
    expect(replay.stderr).toMatch(/not about sha256:|does not match|subject/i);
  });

  it('verify vsa REF finds a VSA attached as a referrer; another policy digest is refused', async () => {
    const vsa = join(work, 'app.vsa.json');
    const client = new RegistryClient({ url: registry.url });
    const attached = await attachSigstoreBundle(client, 'acme/app', {
      subject: digests.app!,
      bundle: readFileSync(vsa),
    });
    const ok = await runCli([...vsaArgs(ref('acme/app:v1.4.2'), '--policy-digest', policyDigest), '--json']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ uri: ref(`acme/app@${attached.manifestDigest}`) });
    const older = await runCli([...vsaArgs(ref('acme/app:v1.4.2'), '--policy-digest', 'a'.repeat(64)), '--json']);
    expect(older.code, older.stdout).toBe(1);
    expect(JSON.parse(older.stdout)).toMatchObject({ ok: false, error: { code: 'POLICY_VSA_MISMATCH' } });
    // An image with no VSA referrer at all.
    const none = await runCli([...vsaArgs(ref('acme/other:v1.4.2'), '--policy-digest', policyDigest), '--json']);
    expect(none.code, none.stdout).toBe(1);
    expect(JSON.parse(none.stdout)).toMatchObject({ error: { code: 'POLICY_VSA_INVALID' } });
  });

  it('verify image refuses a cosign .sig whose bundle another identity signed (exit 1, the rule named)', async () => {
    const r = await runCli(['verify', 'image', ref('acme/rogue-sig:v1.4.2'), ...policyArgs(), '--snapshot', snapDir]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('✗ attestations.cosign-signature');
    expect(r.stdout).toContain(`signed by ${w.ids.rogue}`);
  });

  it('an unknown tag → exit 2, for report and verify vsa', async () => {
    const r = await runCli([
      'report',
      ref('acme/app:v9.9.9'),
      ...policyArgs(),
      '--html',
      join(work, 'x.html'),
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'POLICY_IMAGE_NOT_FOUND' } });
    const v = await runCli([...vsaArgs(ref('acme/app:v9.9.9'), '--policy-digest', policyDigest)]);
    expect(v.code, v.stderr).toBe(2);
  });
});
