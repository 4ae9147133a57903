/**
 * Issue 4 §3 acceptance through the CLI: `airlock up` (trust plane) + a real docker-registry 2.8.2 on loopback +
 * `airlock run --registry-plain-http` on a command build whose spec asks for an OCI image. Checked from outside:
 *   - skopeo sees the digest the runner reported, and `skopeo inspect --raw` bytes hash to it;
 *   - `/v2/<repo>/tags/list` has the tag, `sha256-<hex>.sig`, `.att` and the `sha256-<hex>` referrers index;
 *   - the referrer bundles verify with stock @sigstore/verify (through BundleVerifier) against the plane's
 *     trusted root, the runner's identity and the image digest; the `.sig` layer carries that certificate, a Rekor
 *     bundle naming a real log entry, and a signature over the simple-signing payload;
 *   - the `.att` envelopes' statements name the image digest;
 *   - a second run gives the same image digest;
 *   - a registry that is down: exit 3 with RUNNER_REGISTRY_UNAVAILABLE, no image reported or written.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStatement } from '@airlock/core';
import { readCosignAttestations, readCosignSignatures, readSigstoreBundles, RegistryClient } from '@airlock/oci';
import { BundleVerifier } from '@airlock/verify';
import { runCliJson, startPlane, type CliPlane } from './helpers/upstream-e2e.js';
import {
  registryJson,
  registryProblem,
  skopeoProblem,
  startRegistry,
  toolsAvailable,
  which,
  type RunningRegistry,
} from '@airlock/testkit';

const enabled = toolsAvailable('runner OCI e2e (bwrap sandbox, strace, git, docker-registry, skopeo)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('strace') ? undefined : 'strace is not installed',
  which('git') ? undefined : 'git is not installed',
  registryProblem(),
  skopeoProblem(),
]);

const REPO_PATH = 'airlock/hello';
const SLSA = 'https://slsa.dev/provenance/v1';
const CDX = 'https://cyclonedx.org/bom';

interface RunJson {
  ok: boolean;
  error?: { code: string; message: string };
  verified: boolean;
  artifacts: { name: string; sha256: string }[];
  image?: {
    reference: string;
    digest: string;
    tags: string[];
    signature: { tag: string; manifestDigest: string };
    attestations: { tag: string; manifestDigest: string };
    referrers: { kind: 'provenance' | 'sbom' | 'signature'; digest: string }[];
    referrersIndex: { tag: string; digest: string };
    metadata: string;
    verified: boolean;
  };
}

let root: string;
let plane: CliPlane | undefined;
let registry: RunningRegistry | undefined;
let repo: string;
let commit: string;

function git(args: string[], cwd: string): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: root,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
      GIT_AUTHOR_DATE: '2026-01-02T03:04:05Z',
      GIT_COMMITTER_DATE: '2026-01-02T03:04:05Z',
    },
  }).trim();
}

function skopeo(args: string[]): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    // HOME in the test root: skopeo reads no auth file or registries.conf of the user running the tests.
    const child = spawn('skopeo', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: root },
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr }));
  });
}

function writeSpec(name: string, repository: string): string {
  const path = join(root, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      source: { repo, commit, ref: 'refs/heads/main' },
      builder: { type: 'command', argv: ['sh', 'build.sh'] },
      outputs: ['bin/hello', 'share/motd.txt'],
      reproducible: true,
      image: { type: 'oci', repository, executable: ['bin/hello'], entrypoint: ['/app/bin/hello'] },
    }),
  );
  return path;
}

const runArgs = (spec: string, out: string): string[] => [
  'run',
  '--spec',
  spec,
  '--out',
  out,
  '--data',
  plane!.dir,
  '--registry-plain-http',
  '--work-root',
  join(root, 'work'),
  '--json',
];
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe.skipIf(!enabled)(
  'airlock run e2e: OCI image pushed to docker-registry, signed, attested and verified (CLI)',
  () => {
    let first: RunJson;
    let image: NonNullable<RunJson['image']>;
    let client: RegistryClient;

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'airlock-run-oci-e2e-'));
      // As root the sandbox runs as an unprivileged host uid, which must traverse the work root.
      chmodSync(root, 0o711);
      plane = await startPlane(join(root, 'plane'));
      registry = await startRegistry(join(root, 'registry'));
      client = new RegistryClient({ url: registry.url });
      repo = join(root, 'repo');
      mkdirSync(repo, { recursive: true });
      writeFileSync(
        join(repo, 'build.sh'),
        [
          '#!/bin/sh',
          'set -eu',
          'mkdir -p "$AIRLOCK_OUTPUT_DIR/bin" "$AIRLOCK_OUTPUT_DIR/share"',
          'printf "#!/bin/sh\\necho hello from a hermetic image\\n" > "$AIRLOCK_OUTPUT_DIR/bin/hello"',
          'date -u -d "@$SOURCE_DATE_EPOCH" "+built from a commit of %Y-%m-%d" > "$AIRLOCK_OUTPUT_DIR/share/motd.txt"',
          '',
        ].join('\n'),
      );
      git(['init', '-q', '-b', 'main'], repo);
      git(['add', '-A'], repo);
      git(['commit', '-q', '-m', 'image fixture'], repo);
      commit = git(['rev-parse', 'HEAD'], repo);

      const r = await runCliJson(runArgs(writeSpec('image', `${registry.host}/${REPO_PATH}`), join(root, 'out-1')));
      expect(r.code, r.stdout + r.stderr).toBe(0);
      first = r.json as unknown as RunJson;
      image = first.image!;
    }, 300_000);

    afterAll(async () => {
      await registry?.stop();
      await plane?.stop();
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it('reports the image, verified against the registry copy', () => {
      expect(first).toMatchObject({ ok: true, verified: true });
      expect(image.reference).toBe(`${registry!.host}/${REPO_PATH}@${image.digest}`);
      expect(image.tags).toEqual([commit.slice(0, 12)]);
      expect(image.verified).toBe(true);
      expect(image.referrers.map((r) => r.kind).sort()).toEqual(['provenance', 'sbom', 'signature']);
      expect(JSON.parse(readFileSync(image.metadata, 'utf8'))).toMatchObject({
        digest: image.digest,
        reference: image.reference,
        signed: true,
      });
    });

    it('skopeo inspect shows the digest the runner reported; the --raw bytes hash to it', async () => {
      const byDigest = await skopeo([
        'inspect',
        '--tls-verify=false',
        `docker://${registry!.host}/${REPO_PATH}@${image.digest}`,
      ]);
      expect(byDigest.status, byDigest.stderr).toBe(0);
      const inspected = JSON.parse(byDigest.stdout.toString('utf8')) as {
        Digest: string;
        Created: string;
        Layers: string[];
      };
      expect(inspected.Digest).toBe(image.digest);
      expect(inspected.Created).toBe('2026-01-02T03:04:05Z');
      const raw = await skopeo([
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${registry!.host}/${REPO_PATH}@${image.digest}`,
      ]);
      expect(raw.status, raw.stderr).toBe(0);
      expect(sha256(raw.stdout)).toBe(image.digest);
      const byTag = await skopeo([
        'inspect',
        '--tls-verify=false',
        `docker://${registry!.host}/${REPO_PATH}:${image.tags[0]}`,
      ]);
      expect(byTag.status, byTag.stderr).toBe(0);
      expect((JSON.parse(byTag.stdout.toString('utf8')) as { Digest: string }).Digest).toBe(image.digest);
    });

    it('lists sha256-<hex>.sig, .att and the sha256-<hex> fallback index among the tags', async () => {
      const hex = image.digest.slice('sha256:'.length);
      const tags = await registryJson<{ tags: string[] }>(`${registry!.url}/v2/${REPO_PATH}/tags/list`);
      expect(tags.status).toBe(200);
      expect(tags.body.tags).toEqual(
        expect.arrayContaining([`sha256-${hex}.sig`, `sha256-${hex}.att`, `sha256-${hex}`, image.tags[0]]),
      );
      expect(image.signature.tag).toBe(`sha256-${hex}.sig`);
      expect(image.attestations.tag).toBe(`sha256-${hex}.att`);
      expect(image.referrersIndex.tag).toBe(`sha256-${hex}`);
      const index = JSON.parse((await client.getManifest(REPO_PATH, `sha256-${hex}`)).bytes.toString('utf8')) as {
        manifests: { digest: string }[];
      };
      expect(index.manifests.map((m) => m.digest).sort()).toEqual(image.referrers.map((r) => r.digest).sort());
    });

    it('has referrer bundles that verify with stock @sigstore/verify against the trusted root, the runner identity and the image digest', async () => {
      const verifier = new BundleVerifier(JSON.parse(readFileSync(join(plane!.dir, 'trusted_root.json'), 'utf8')));
      const policy = {
        issuer: plane!.endpoints.identityIssuerUrl,
        subject: `spiffe://${plane!.endpoints.trustDomain}/airlock/runner`,
      };
      const artifactDigest = { sha256: image.digest.slice('sha256:'.length) };
      const bundles = await readSigstoreBundles(client, REPO_PATH, image.digest);
      expect(bundles.map((b) => b.manifestDigest).sort()).toEqual(image.referrers.map((r) => r.digest).sort());
      const byKind = (kind: string) =>
        bundles.find((b) => b.manifestDigest === image.referrers.find((r) => r.kind === kind)!.digest)!;

      const prov = verifier.verify(byKind('provenance').bundle, {
        artifactDigest,
        policy,
        expectedPredicateType: SLSA,
      });
      expect(prov.signer.subjectAlternativeName).toBe(policy.subject);
      expect(prov.tlogEntries.length).toBeGreaterThan(0);
      expect(prov.statement!.subject).toEqual([{ name: `${registry!.host}/${REPO_PATH}`, digest: artifactDigest }]);
      const predicate = prov.statement!.predicate as {
        buildDefinition: { externalParameters: { source: { commit: string } } };
      };
      expect(predicate.buildDefinition.externalParameters.source.commit).toBe(commit);
      verifier.verify(byKind('sbom').bundle, { artifactDigest, policy, expectedPredicateType: CDX });
      // Wrong image, wrong identity: refused.
      expect(() =>
        verifier.verify(byKind('provenance').bundle, { artifactDigest: { sha256: 'f'.repeat(64) }, policy }),
      ).toThrow();
      expect(() =>
        verifier.verify(byKind('provenance').bundle, {
          artifactDigest,
          policy: { ...policy, subject: `spiffe://${plane!.endpoints.trustDomain}/someone-else` },
        }),
      ).toThrow();

      // The cosign signature: the .sig layer's payload names the image, its signature is the signature bundle's,
      // the bundle verifies over that payload, and the certificate annotation is the bundle's leaf.
      const sigs = await readCosignSignatures(client, REPO_PATH, image.digest);
      expect(sigs).toHaveLength(1);
      const sig = sigs[0]!;
      expect(sig.payloadMatchesImage).toBe(true);
      const signatureResult = verifier.verify(byKind('signature').bundle, { artifact: sig.payload, policy });
      expect(signatureResult.content).toBe('messageSignature');
      expect(() =>
        verifier.verify(byKind('signature').bundle, {
          artifact: Buffer.from(sig.payload.toString('utf8').replace(image.digest, `sha256:${'0'.repeat(64)}`)),
          policy,
        }),
      ).toThrow();
      const cert = new X509Certificate(sig.certificate!);
      expect(cert.subjectAltName).toContain(policy.subject);
      expect(cryptoVerify('sha256', sig.payload, cert.publicKey, Buffer.from(sig.signature, 'base64'))).toBe(true);
      const rekor = JSON.parse(sig.bundle!) as {
        SignedEntryTimestamp: string;
        Payload: { logIndex: number; body: string; integratedTime: number; logID: string };
      };
      expect(rekor.Payload.logID).toMatch(/^[0-9a-f]{64}$/);
      const entry = await fetch(`${plane!.endpoints.tlogUrl}/api/v1/log/entries?logIndex=${rekor.Payload.logIndex}`);
      expect(entry.status).toBe(200);
      const entryJson = JSON.stringify(await entry.json());
      expect(entryJson).toContain(rekor.Payload.body);
    });

    it('has .att DSSE envelopes whose statements name the image digest', async () => {
      const atts = await readCosignAttestations(client, REPO_PATH, image.digest);
      expect(atts.map((a) => a.predicateType).sort()).toEqual([CDX, SLSA].sort());
      for (const a of atts) {
        const st = parseStatement(Buffer.from(a.envelope!.payload, 'base64'));
        expect(st.subject.map((s) => s.digest.sha256)).toEqual([image.digest.slice('sha256:'.length)]);
        expect(st.predicateType).toBe(a.predicateType);
        expect(a.certificate).toMatch(/^-----BEGIN CERTIFICATE-----/);
      }
    });

    it('gives the same image digest when built again (reproducible image)', async () => {
      const r = await runCliJson(
        runArgs(writeSpec('image-again', `${registry!.host}/${REPO_PATH}`), join(root, 'out-2')),
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const again = r.json as unknown as RunJson;
      expect(again.image!.digest).toBe(image.digest);
      expect(again.verified).toBe(true);
      // New signatures were added next to the old ones; both runs' referrers are listed.
      const index = JSON.parse(
        (await client.getManifest(REPO_PATH, image.referrersIndex.tag)).bytes.toString('utf8'),
      ) as { manifests: { digest: string }[] };
      expect(index.manifests).toHaveLength(6);
      expect(index.manifests.map((m) => m.digest)).toEqual(
        expect.arrayContaining([...image.referrers, ...again.image!.referrers].map((x) => x.digest)),
      );
    }, 180_000);

    it('fails with exit 3 (RUNNER_REGISTRY_UNAVAILABLE) when the registry is down, reporting and writing no image', async () => {
      const down = await startRegistry(join(root, 'registry-down'));
      await down.stop();
      const out = join(root, 'out-down');
      const r = await runCliJson(runArgs(writeSpec('image-down', `${down.host}/${REPO_PATH}`), out));
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(r.json).toMatchObject({ ok: false, error: { code: 'RUNNER_REGISTRY_UNAVAILABLE' } });
      expect((r.json as unknown as RunJson).error!.message).toContain(down.host);
      expect((r.json as unknown as RunJson).image).toBeUndefined();
      expect(existsSync(join(out, 'image.json'))).toBe(false);
    }, 180_000);
  },
);
