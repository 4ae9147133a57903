/**
 * verifyImageByPolicy (the library the CLI's `verify image`, `run` and the admission webhook call) against a real
 * CNCF Distribution registry (docker-registry) on loopback and a real trust plane. Images are pushed with
 * packages/oci; provenance and SBOM about the manifest digest are made by the runner's builders and signed as the
 * runner; the cosign `.sig` / `.att` layers and the Sigstore-bundle referrers are attached as the runner attaches
 * them. Proves: a tag is resolved to its digest and the verdict is about it; an admission-style call (repository +
 * resolved digest + AbortSignal) gives the same verdict; an unsigned image, an image signed by another identity, a
 * `.sig` whose bundle is another identity's and a stray `.att` envelope each FAIL naming the rule; bad input,
 * an unknown tag, a tag moved elsewhere, an unreachable registry and an aborted signal are typed PolicyErrors.
 * The referrers listing and the cosign tags are read at once (a holding proxy sees all three before any answer).
 * `cosignLayers: 'when-needed'`: the layers are not read when the bundles pass, and are read and checked exactly as
 * before when they do not (a `.sig`-only image fails the same); passing bundles beside a rogue `.sig` or a stray
 * `.att` then PASS (written down). Skips (printing why) without docker-registry unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  attachCosignAttestation,
  attachCosignSignature,
  attachSigstoreBundle,
  RegistryClient,
  simpleSigningPayload,
} from '@airlock/oci';
import {
  registryProblem,
  startCountingProxy,
  startRegistry,
  toolsAvailable,
  type CountingProxy,
  type RunningRegistry,
} from '@airlock/testkit';
import { cosignMaterialFromBundle, provenancePredicate, provenanceStatement } from '@airlock/runner';
import {
  parsePolicy,
  PolicyError,
  SLSA_PROVENANCE_V1,
  VerifiedSnapshots,
  verifyImageByPolicy,
  type ImagePolicyRun,
  type LoadedPolicy,
  type VerifyImageInput,
} from '@airlock/policy';
import { pushImage, signImage } from './helpers/policy-image-world.js';
import { provenanceInput, startWorld, type World } from './helpers/policy-world.js';

const enabled = toolsAvailable('verifyImageByPolicy against a registry (docker-registry)', [registryProblem()]);

let w: World;
let registry: RunningRegistry;
let client: RegistryClient;
let policy: LoadedPolicy;
let snapshots: VerifiedSnapshots;
const digests: Record<string, string> = {};

const failed = (run: ImagePolicyRun): string[] => run.verdict.rules.filter((r) => !r.passed).map((r) => r.rule);

function verify(over: Partial<VerifyImageInput>): Promise<ImagePolicyRun> {
  return verifyImageByPolicy({
    policy,
    trustedRoots: [w.plane.trustedRoot],
    client,
    snapshotSource: snapshots.source,
    snapshotInfo: snapshots.infos,
    ...over,
  });
}

async function policyError(p: Promise<unknown>): Promise<PolicyError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PolicyError);
  return err as PolicyError;
}

beforeAll(async () => {
  if (!enabled) return;
  w = await startWorld(4);
  registry = await startRegistry(join(w.dir, 'registry'));
  client = new RegistryClient({ url: registry.url });
  policy = parsePolicy(
    `apiVersion: airlock.dev/policy/v1
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
`,
    'test:image-policy',
  );
  snapshots = new VerifiedSnapshots([w.verifier]).add(w.snapshot.manifestBytes, w.snapshot.bundle, 'snapshot 1');
  const { runner, rogue } = w.signers;
  digests.good = await pushImage(client, 'acme/app', 'v1.4.2');
  await signImage(w, client, 'acme/app', digests.good, { attestations: runner, signature: runner });
  digests.unsigned = await pushImage(client, 'acme/unsigned', 'v1');
  digests.rogue = await pushImage(client, 'acme/rogue', 'v1');
  await signImage(w, client, 'acme/rogue', digests.rogue, { attestations: rogue, signature: rogue });
  digests.rogueSig = await pushImage(client, 'acme/rogue-sig', 'v1');
  await signImage(w, client, 'acme/rogue-sig', digests.rogueSig, { attestations: runner, signature: rogue });
  digests.strayAtt = await pushImage(client, 'acme/stray-att', 'v1');
  await signImage(w, client, 'acme/stray-att', digests.strayAtt, { attestations: runner, signature: runner });
  // An extra .att envelope that no verified referrer bundle carries (a claim with nothing to check it against).
  const extra = await rogue.attest(
    provenanceStatement(
      { name: 'x', digest: { sha256: digests.strayAtt.slice(7) } },
      provenancePredicate(provenanceInput(w), 3600),
    ),
  );
  await attachCosignAttestation(client, 'acme/stray-att', digests.strayAtt, {
    envelope: Buffer.from(JSON.stringify(extra.dsseEnvelope)),
    predicateType: SLSA_PROVENANCE_V1,
  });
}, 180_000);

/** A .sig layer's certificate annotation rewritten: the cross-check against its bundle's leaf decides. */
const SIG_CERTIFICATES: Record<string, (pem: string | undefined) => string | undefined> = {
  // Another certificate of the same signer (a keyless signer gets a new one per signing).
  'acme/sig-cert-other': () => otherCertificate,
  'acme/sig-cert-garbage': () => 'not a certificate',
  'acme/sig-cert-two': (pem) => `${pem!}${otherCertificate}`,
  'acme/sig-cert-missing': () => undefined,
  // The bundle's own leaf with CRLF line ends and no trailing newline: still the same certificate.
  'acme/sig-cert-crlf': (pem) => pem!.trim().replace(/\n/g, '\r\n'),
};
let otherCertificate = '';

describe.runIf(enabled)('verifyImageByPolicy: the .sig certificate annotation', () => {
  beforeAll(async () => {
    const other = await w.signers.runner.signBlob(Buffer.from('another signing'));
    otherCertificate = cosignMaterialFromBundle(other).certificate!;
    for (const [repo, rewrite] of Object.entries(SIG_CERTIFICATES)) {
      digests[repo] = await pushImage(client, repo, 'v1');
      const { runner } = w.signers;
      await signImage(w, client, repo, digests[repo]!, { attestations: runner, signature: runner }, rewrite);
    }
  }, 120_000);

  const sigRule = (run: ImagePolicyRun) => run.verdict.rules.find((r) => r.rule === 'attestations.cosign-signature')!;

  it('the bundle leaf in another PEM layout passes; another certificate, two, none or garbage fail that rule only', async () => {
    const crlf = await verify({ reference: `${registry.host}/acme/sig-cert-crlf:v1` });
    expect(failed(crlf)).toEqual([]);
    const expected: Record<string, RegExp> = {
      'acme/sig-cert-other': /\.sig layer 0: its certificate is not the one in its signature bundle/,
      'acme/sig-cert-garbage': /\.sig layer 0: its certificate annotation is not a PEM certificate/,
      // One certificate is what cosign writes (the chain has its own annotation); a second one is refused.
      'acme/sig-cert-two': /\.sig layer 0: its certificate annotation is not a PEM certificate/,
      'acme/sig-cert-missing': /\.sig layer 0: it carries no certificate annotation/,
    };
    for (const [repo, message] of Object.entries(expected)) {
      const run = await verify({ reference: `${registry.host}/${repo}:v1` });
      expect(failed(run), repo).toEqual(['attestations.cosign-signature']);
      expect(sigRule(run).message, repo).toMatch(message);
    }
  });
});

afterAll(async () => {
  await registry?.stop();
  await w?.close();
});

describe.runIf(enabled)('verifyImageByPolicy', () => {
  it('resolves a tag to its digest and passes; every referrer bundle is an input of the verdict', async () => {
    const run = await verify({ reference: `${registry.host}/acme/app:v1.4.2` });
    expect(failed(run)).toEqual([]);
    expect(run.verdict.result).toBe('PASS');
    expect(run.digest).toBe(digests.good);
    expect(run.resourceUri).toBe(`${registry.host}/acme/app@${digests.good}`);
    expect(run.artifact.digest.sha256).toBe(digests.good!.slice(7));
    expect(run.cosign).toEqual({ signatures: 1, attestations: 2 });
    const rules = run.verdict.rules.map((r) => r.rule);
    expect(rules).toEqual(
      expect.arrayContaining([
        'provenance.builderId',
        'dependencies.snapshot',
        'sbom.signed',
        'attestations.cosign',
        'attestations.cosign-signature',
      ]),
    );
    // provenance + SBOM + the signature bundle backing .sig, each named by its referrer manifest digest.
    expect(run.bundlesUsed).toHaveLength(3);
    for (const b of run.bundlesUsed) expect(b.uri).toMatch(new RegExp(`^${registry.host}/acme/app@sha256:`));
    expect(run.snapshots.map((s) => s.id)).toEqual([w.snapshot.manifest.snapshot.id]);
  });

  it('an admission-style call (repository + resolved digest + signal) gives the same verdict about the digest', async () => {
    const run = await verify({ repository: 'acme/app', digest: digests.good, signal: new AbortController().signal });
    expect(run.verdict.result).toBe('PASS');
    expect(run.resourceUri).toBe(`${registry.host}/acme/app@${digests.good}`);
  });

  it('an unsigned image fails: no provenance, no SBOM', async () => {
    const run = await verify({ reference: `${registry.host}/acme/unsigned:v1` });
    expect(run.verdict.result).toBe('FAIL');
    expect(run.verdict.verifiedLevels).toEqual(['FAILED']);
    expect(failed(run)).toEqual(expect.arrayContaining(['provenance.signed', 'sbom.signed']));
    expect(run.verdict.rules.find((r) => r.rule === 'provenance.signed')!.message).toMatch(/no SLSA provenance/);
    expect(run.bundlesUsed).toEqual([]);
  });

  it('an image signed by another identity fails naming the signer; so does its .sig', async () => {
    const run = await verify({ reference: `${registry.host}/acme/rogue:v1` });
    expect(run.verdict.result).toBe('FAIL');
    expect(failed(run)).toEqual(
      expect.arrayContaining(['provenance.signed', 'sbom.signed', 'attestations.cosign-signature']),
    );
    const prov = run.verdict.rules.find((r) => r.rule === 'provenance.signed')!;
    expect(prov.message).toContain(w.ids.rogue);
    expect(prov.expected).toMatchObject({ signedBy: [{ authority: 'runner', subject: w.ids.runner }] });
  });

  it('a .sig whose bundle is signed by another identity fails attestations.cosign-signature only', async () => {
    const run = await verify({ reference: `${registry.host}/acme/rogue-sig:v1` });
    expect(failed(run)).toEqual(['attestations.cosign-signature']);
    expect(run.verdict.rules[0]!.message).toContain(`signed by ${w.ids.rogue}`);
  });

  it('a stray .att envelope (no verified bundle carries it) fails attestations.cosign', async () => {
    const run = await verify({ reference: `${registry.host}/acme/stray-att:v1` });
    expect(failed(run)).toEqual(['attestations.cosign']);
    expect(run.verdict.rules[0]!.message).toMatch(/1 cosign \.att envelope\(s\) match no verified bundle/);
  });

  it('an unknown tag, or a tag that points elsewhere → POLICY_IMAGE_NOT_FOUND', async () => {
    expect((await policyError(verify({ reference: `${registry.host}/acme/app:v9` }))).code).toBe(
      'POLICY_IMAGE_NOT_FOUND',
    );
    const both = `${registry.host}/acme/app:v1.4.2@${digests.unsigned}`;
    expect((await policyError(verify({ reference: both }))).message).toContain('points at');
    const tags = verify({ repository: 'acme/app', digest: digests.unsigned, tags: ['v1.4.2'] });
    expect((await policyError(tags)).code).toBe('POLICY_IMAGE_NOT_FOUND');
  });

  it('input the caller must fix → POLICY_INPUT_INVALID (another registry than the client, no digest)', async () => {
    const other = await policyError(verify({ reference: `registry.example:5000/acme/app:v1` }));
    expect(other.code).toBe('POLICY_INPUT_INVALID');
    expect(other.message).toContain(`the client given is for ${registry.host}`);
    expect((await policyError(verify({ repository: 'acme/app' }))).code).toBe('POLICY_INPUT_INVALID');
  });

  it('a registry that cannot be reached → POLICY_REGISTRY_UNAVAILABLE; an aborted signal → POLICY_ABORTED', async () => {
    const down = new RegistryClient({ url: 'http://127.0.0.1:9' });
    const e = await policyError(verify({ client: down, reference: '127.0.0.1:9/acme/app:v1' }));
    expect(e.code).toBe('POLICY_REGISTRY_UNAVAILABLE');
    const ac = new AbortController();
    ac.abort(new Error('admission deadline'));
    const aborted = await policyError(verify({ repository: 'acme/app', digest: digests.good, signal: ac.signal }));
    expect(aborted.code).toBe('POLICY_ABORTED');
  });
});

/** `.sig` only: the simple-signing payload signed by `signer`, as a cosign layer; its bundle a referrer or not. */
async function signatureOnly(repo: string, digest: string, withBundle: boolean): Promise<void> {
  const payload = simpleSigningPayload({ dockerReference: `${registry.host}/${repo}`, manifestDigest: digest });
  const sigBundle = await w.signers.runner.signBlob(payload);
  const signature = (sigBundle as { messageSignature?: { signature?: string } }).messageSignature!.signature!;
  await attachCosignSignature(client, repo, digest, { payload, signature, ...cosignMaterialFromBundle(sigBundle) });
  if (withBundle) await attachSigstoreBundle(client, repo, { subject: digest, bundle: sigBundle });
}

describe.runIf(enabled)('verifyImageByPolicy: registry reads', () => {
  it('reads the referrers listing and the cosign .sig and .att tags at once, not one after another', async () => {
    const proxy = await startCountingProxy(registry.url);
    try {
      proxy.hold(true);
      const run = verify({
        client: new RegistryClient({ url: proxy.url }),
        repository: 'acme/app',
        digest: digests.good,
      });
      run.catch(() => undefined); // fails when the proxy closes with the requests still held
      // Nothing is answered: every request seen was sent before any reply (sequential reads would stop at one).
      await vi.waitFor(() => expect(proxy.held()).toBe(3), { timeout: 5_000 });
      const hex = digests.good!.slice(7);
      expect([...proxy.requests].sort()).toEqual(
        [
          `GET /v2/acme/app/manifests/sha256-${hex}.att`,
          `GET /v2/acme/app/manifests/sha256-${hex}.sig`,
          `GET /v2/acme/app/referrers/${digests.good}`,
        ].sort(),
      );
    } finally {
      await proxy.close();
    }
  });
});

/** The layer digests of an image's cosign `.sig` or `.att` manifest, read straight from the registry. */
async function cosignLayerDigests(repo: string, digest: string, suffix: 'sig' | 'att'): Promise<string[]> {
  const m = await client.tryGetManifest(repo, `sha256-${digest.slice(7)}.${suffix}`);
  if (m === undefined) return [];
  return (JSON.parse(m.bytes.toString('utf8')) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

describe.runIf(enabled)('verifyImageByPolicy: cosign blobs the referrer bundles already hold', () => {
  const blobReads = (requests: string[], digestsOf: string[]): string[] =>
    requests.filter((r) => digestsOf.some((d) => r.endsWith(`/blobs/${d}`)));
  let proxy: CountingProxy;
  let viaProxy: RegistryClient;

  beforeAll(async () => {
    // Pushed and signed under the name it is verified by (the .sig payload names the image by it).
    proxy = await startCountingProxy(registry.url);
    viaProxy = new RegistryClient({ url: proxy.url });
    digests.held = await pushImage(viaProxy, 'acme/held', 'v1');
    const { runner } = w.signers;
    await signImage(w, viaProxy, 'acme/held', digests.held, { attestations: runner, signature: runner });
    // A .sig whose payload names the image under another name: not the bytes airlock would have attached.
    digests.sigOtherName = await pushImage(client, 'acme/sig-other-name', 'v1');
    const payload = simpleSigningPayload({
      dockerReference: 'registry.example/acme/sig-other-name',
      manifestDigest: digests.sigOtherName,
    });
    const sigBundle = await w.signers.runner.signBlob(payload);
    const signature = (sigBundle as { messageSignature?: { signature?: string } }).messageSignature!.signature!;
    await attachCosignSignature(client, 'acme/sig-other-name', digests.sigOtherName, {
      payload,
      signature,
      ...cosignMaterialFromBundle(sigBundle),
    });
    await attachSigstoreBundle(client, 'acme/sig-other-name', { subject: digests.sigOtherName, bundle: sigBundle });
  }, 60_000);

  afterAll(() => proxy?.close());
  beforeEach(() => proxy?.reset());

  it('as airlock attaches them: the .sig payload and .att envelopes are not fetched again; the same PASS', async () => {
    const run = await verify({ client: viaProxy, repository: 'acme/held', digest: digests.held });
    const direct = await verify({ repository: 'acme/held', digest: digests.held });
    expect(failed(run)).toEqual([]);
    expect(run.verdict.rules.map((r) => [r.rule, r.passed])).toEqual(
      direct.verdict.rules.map((r) => [r.rule, r.passed]),
    );
    expect(run.cosign).toEqual({ signatures: 1, attestations: 2 });
    const passed = run.verdict.rules.filter((r) => r.passed).map((r) => r.rule);
    expect(passed).toEqual(expect.arrayContaining(['attestations.cosign', 'attestations.cosign-signature']));
    const layers = [
      ...(await cosignLayerDigests('acme/held', digests.held!, 'sig')),
      ...(await cosignLayerDigests('acme/held', digests.held!, 'att')),
    ];
    expect(layers).toHaveLength(3);
    expect(blobReads(proxy.requests, layers)).toEqual([]);
    // Still read: the two cosign manifests (their layers' digests, signatures and certificates).
    const hex = digests.held!.slice(7);
    expect(proxy.requests).toEqual(
      expect.arrayContaining([
        `GET /v2/acme/held/manifests/sha256-${hex}.sig`,
        `GET /v2/acme/held/manifests/sha256-${hex}.att`,
      ]),
    );
  });

  it('bytes no bundle holds are fetched and checked as before: a stray .att fails, a foreign .sig payload passes', async () => {
    {
      const stray = await verify({ client: viaProxy, repository: 'acme/stray-att', digest: digests.strayAtt });
      expect(failed(stray)).toEqual(['attestations.cosign']);
      const att = await cosignLayerDigests('acme/stray-att', digests.strayAtt!, 'att');
      expect(att).toHaveLength(3);
      // Only the stray envelope (the last layer) was fetched.
      expect(blobReads(proxy.requests, att)).toEqual([`GET /v2/acme/stray-att/blobs/${att[2]}`]);
      proxy.reset();
      const other = await verify({ client: viaProxy, repository: 'acme/sig-other-name', digest: digests.sigOtherName });
      const sig = await cosignLayerDigests('acme/sig-other-name', digests.sigOtherName!, 'sig');
      expect(blobReads(proxy.requests, sig)).toEqual([`GET /v2/acme/sig-other-name/blobs/${sig[0]}`]);
      expect(other.verdict.rules.find((r) => r.rule === 'attestations.cosign-signature')?.passed).toBe(true);
      expect(other.cosign).toEqual({ signatures: 1, attestations: 0 });
    }
  });
});

describe.runIf(enabled)("verifyImageByPolicy, cosignLayers: 'when-needed'", () => {
  const needed = (over: Partial<VerifyImageInput>): Promise<ImagePolicyRun> =>
    verify({ ...over, cosignLayers: 'when-needed' });
  const failedSet = (run: ImagePolicyRun): string[] => [...failed(run)].sort();

  beforeAll(async () => {
    digests.sigOnly = await pushImage(client, 'acme/sig-only', 'v1');
    await signatureOnly('acme/sig-only', digests.sigOnly, true);
    digests.bareSig = await pushImage(client, 'acme/bare-sig', 'v1');
    await signatureOnly('acme/bare-sig', digests.bareSig, false);
  }, 60_000);

  it('bundles that pass: the same PASS, and the .sig/.att tags are not read (5 fewer registry reads)', async () => {
    const proxy = await startCountingProxy(registry.url);
    try {
      const viaProxy = new RegistryClient({ url: proxy.url });
      const always = await verify({ client: viaProxy, repository: 'acme/app', digest: digests.good });
      const readAlways = proxy.requests.length;
      proxy.reset();
      const run = await needed({ client: viaProxy, repository: 'acme/app', digest: digests.good });
      expect(run.verdict.result).toBe('PASS');
      expect(run.verdict.verifiedLevels).toEqual(always.verdict.verifiedLevels);
      expect(run.cosign).toEqual({ signatures: 0, attestations: 0, read: false });
      expect(proxy.requests.filter((r) => /\.(sig|att)$/.test(r))).toEqual([]);
      // The .sig and .att manifests, and the .sig payload: acme/app was signed under the registry's own name and is
      // read here under the proxy's, so its payload is not the one airlock would attach for this name. The .att
      // envelopes are the referrer bundles' own bytes: not fetched in either mode.
      expect(readAlways - proxy.requests.length).toBe(3);
    } finally {
      await proxy.close();
    }
  });

  it('an image whose only signature is a cosign .sig (with or without its bundle as a referrer) fails exactly as before', async () => {
    for (const repo of ['acme/sig-only', 'acme/bare-sig']) {
      const always = await verify({ reference: `${registry.host}/${repo}:v1` });
      const run = await needed({ reference: `${registry.host}/${repo}:v1` });
      expect(always.verdict.result).toBe('FAIL');
      expect(run.verdict.result).toBe('FAIL');
      expect(failedSet(run)).toEqual(failedSet(always));
      expect(run.verdict.rules.map((r) => [r.rule, r.passed])).toEqual(
        always.verdict.rules.map((r) => [r.rule, r.passed]),
      );
      expect(run.cosign).toEqual({ signatures: 1, attestations: 0 });
    }
    const bare = await needed({ reference: `${registry.host}/acme/bare-sig:v1` });
    expect(failed(bare)).toEqual(expect.arrayContaining(['provenance.signed', 'attestations.cosign-signature']));
  });

  it('bundles that fail: the layers are read and checked as before (a rogue-signed image also fails its .sig)', async () => {
    const always = await verify({ reference: `${registry.host}/acme/rogue:v1` });
    const run = await needed({ reference: `${registry.host}/acme/rogue:v1` });
    expect(failedSet(run)).toEqual(failedSet(always));
    expect(failed(run)).toContain('attestations.cosign-signature');
    expect(run.cosign).toEqual({ signatures: 1, attestations: 2 });
  });

  it('written down: passing bundles beside a .sig of another signer or a stray .att PASS (the layers are not read)', async () => {
    // With the default (`always`) both FAIL (tests above); 'when-needed' trades that cross-check for fewer reads.
    for (const repo of ['acme/rogue-sig', 'acme/stray-att']) {
      expect((await verify({ reference: `${registry.host}/${repo}:v1` })).verdict.result).toBe('FAIL');
      const run = await needed({ reference: `${registry.host}/${repo}:v1` });
      expect(run.verdict.result).toBe('PASS');
      expect(run.cosign.read).toBe(false);
    }
  });
});
