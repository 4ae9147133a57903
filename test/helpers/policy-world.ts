/**
 * A realistic world for the policy engine: a real trust plane (CA, transparency log, workload-identity issuer) on
 * loopback; a mirror snapshot made with mirror-sync's own manifest builder and signed as the sync job; provenance
 * and SBOM made with the runner's own builders (runner/src/provenance.ts) and signed as the runner; every bundle
 * verified with @airlock/verify's BundleVerifier before it becomes evidence, as the CLI will do. Shared by the
 * cross-package policy tests here in test/ (it needs the runner and mirror-sync, so it cannot live in @airlock/testkit,
 * which must not depend on them).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalize, type Statement } from '@airlock/core';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner, type SerializedBundle } from '@airlock/sign';
import { BundleVerifier } from '@airlock/verify';
import {
  buildSbom,
  provenancePredicate,
  provenanceStatement,
  sbomStatement,
  type MirrorDependency,
  type ProvenanceInput,
  type ReproducibilityResult,
} from '@airlock/runner';
import { buildManifest, buildManifestStatement, compareEntries } from '@airlock/mirror-sync';
import { TransferManifestSnapshotSource, type AttestationEvidence } from '@airlock/policy';
import type { NpmManifestEntry, TransferManifest } from '@airlock/schemas';

export const REPO = 'https://git.corp.example/acme/app.git';
export const COMMIT = 'a3c1f0e29b7d4c5e8f6a1b2c3d4e5f60718293a4';
export const OTHER_COMMIT = 'ffffffffffffffffffffffffffffffffffffffff';
export const TAG_REF = 'refs/tags/v1.4.2';
export const ARTIFACT = Buffer.from('acme app 1.4.2: the release tarball bytes\n'.repeat(64));
export const ARTIFACT_SHA256 = sha256(ARTIFACT);
export const ARTIFACT_NAME = 'dist/app.tgz';

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

function digests(b: Buffer): { sha256: string; sha512: string; sha1: string } {
  return {
    sha256: sha256(b),
    sha512: createHash('sha512').update(b).digest('hex'),
    sha1: createHash('sha1').update(b).digest('hex'),
  };
}

export interface Pkg {
  name: string;
  version: string;
  bytes: Buffer;
  purl: string;
  entry: NpmManifestEntry;
}

/** An npm package as mirror-sync records it (tarball bytes made up, every digest real). */
export function npmPackage(name: string, version: string): Pkg {
  const bytes = Buffer.from(`package/${name}@${version} tarball contents\n`.repeat(32));
  const d = digests(bytes);
  const base = name.startsWith('@') ? name.split('/')[1]! : name;
  const filename = `${base}-${version}.tgz`;
  const tarball = `https://registry.npmjs.org/${name}/-/${filename}`;
  const integrity = `sha512-${Buffer.from(d.sha512, 'hex').toString('base64')}`;
  const purl = `pkg:npm/${name.replace('@', '%40')}@${version}`;
  return {
    name,
    version,
    bytes,
    purl,
    entry: {
      ecosystem: 'npm',
      name,
      version,
      filename,
      urls: [tarball],
      size: bytes.length,
      digests: d,
      purl,
      metadata: {
        integrity,
        shasum: d.sha1,
        manifest: { name, version, dist: { integrity, shasum: d.sha1, tarball } },
        time: '2025-01-01T00:00:00.000Z',
      },
    },
  };
}

export interface SignedSnapshot {
  manifest: TransferManifest;
  manifestBytes: Buffer;
  bundle: SerializedBundle;
}

export interface World {
  dir: string;
  plane: RunningTrustPlane;
  issuer: string;
  verifier: BundleVerifier;
  ids: { runner: string; sync: string; rogue: string; verifier: string };
  signers: { runner: AirlockSigner; sync: AirlockSigner; rogue: AirlockSigner };
  /** The mirror's packages (in the sync-signed snapshot). */
  packages: Pkg[];
  snapshot: SignedSnapshot;
  close(): Promise<void>;
}

export async function startWorld(packageCount = 6): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-policy-'));
  const plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
  const td = plane.endpoints.trustDomain;
  const ids = {
    runner: `spiffe://${td}/runner/ci`,
    sync: `spiffe://${td}/sync/mirror`,
    rogue: `spiffe://${td}/ci/someone-else`,
    verifier: `spiffe://${td}/verifier/release`,
  };
  const signer = (sub: string): AirlockSigner =>
    new AirlockSigner({
      fulcioUrl: plane.endpoints.caUrl,
      rekorUrl: plane.endpoints.tlogUrl,
      identity: () => plane.issueToken(sub),
    });
  const packages = [
    npmPackage('left-pad', '1.3.0'),
    npmPackage('lodash', '4.17.21'),
    npmPackage('@acme/logger', '2.0.1'),
    ...Array.from({ length: Math.max(0, packageCount - 3) }, (_, i) => npmPackage(`dep-${i}`, `1.${i}.0`)),
  ];
  const signers = { runner: signer(ids.runner), sync: signer(ids.sync), rogue: signer(ids.rogue) };
  const snapshot = await signSnapshot(signers.sync, packages, 1, null);
  return {
    dir,
    plane,
    issuer: plane.endpoints.identityIssuerUrl,
    verifier: new BundleVerifier(plane.trustedRoot),
    ids,
    signers,
    packages,
    snapshot,
    close: async () => {
      await plane.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A transfer manifest made by mirror-sync's builder (schema-checked) and signed as `signer`. */
export async function signSnapshot(
  signer: AirlockSigner,
  packages: readonly Pkg[],
  sequence: number,
  previous: string | null,
): Promise<SignedSnapshot> {
  const manifest = buildManifest({
    entries: packages.map((p) => p.entry).sort(compareEntries),
    sequence,
    previous,
    createdAt: '2026-12-01T10:00:00Z',
  });
  const manifestBytes = Buffer.from(canonicalize(manifest), 'utf8');
  const bundle = await signer.attest(buildManifestStatement(manifest, sha256(manifestBytes), []));
  return { manifest, manifestBytes, bundle };
}

export function snapshotSource(w: World, ...snapshots: SignedSnapshot[]): TransferManifestSnapshotSource {
  const s = new TransferManifestSnapshotSource();
  for (const snap of snapshots)
    s.add(snap.manifestBytes, snap.bundle, w.verifier, `snapshot ${snap.manifest.snapshot.sequence}`);
  return s;
}

export interface BuildOptions {
  ref?: string;
  commit?: string;
  repo?: string;
  builderId?: string;
  reproducibility?: ReproducibilityResult;
  /** The packages the build fetched from the mirror (default: all of the world's). */
  packages?: readonly Pkg[];
  finishedOn?: string;
}

export const REPRODUCED: ReproducibilityResult = {
  status: 'reproduced',
  files: 1,
  variations: { buildPath: true, hostname: true, home: true, environmentNoise: true, time: 'faketime' },
  rebuildDurationMs: 4210,
};

export const TOOLCHAIN = [
  { path: '/bin/sh', resolvedPath: '/usr/bin/dash', sha256: sha256('dash 0.5.12'), size: 125560 },
  { path: '/usr/bin/node', resolvedPath: '/usr/bin/node', sha256: sha256('node v20.19.0'), size: 96000000 },
];
export const BUILDER_DEPENDENCIES = [
  { path: 'bwrap', resolvedPath: '/usr/bin/bwrap', sha256: sha256('bubblewrap 0.11.0'), size: 72000 },
  { path: 'git', resolvedPath: '/usr/bin/git', sha256: sha256('git 2.47.3'), size: 4100000 },
];

/** The runner's ProvenanceInput for a command build of the app (what runBuild assembles after a run). */
export function provenanceInput(w: World, o: BuildOptions = {}): ProvenanceInput {
  const commit = o.commit ?? COMMIT;
  const ref = o.ref ?? TAG_REF;
  const repo = o.repo ?? REPO;
  const spec = {
    source: { repo, commit, ref },
    builder: { type: 'command' as const, argv: ['sh', '-c', 'npm ci --offline && npm run build'] },
    outputs: [ARTIFACT_NAME],
    mirror: { url: 'http://127.0.0.1:18080' },
    reproducible: true,
  };
  const mirrorDependencies: MirrorDependency[] = (o.packages ?? w.packages).map((p) => ({
    purl: p.purl,
    uri: p.entry.urls[0]!,
    name: p.name,
    version: p.version,
    digest: { ...p.entry.digests },
  }));
  return {
    spec,
    specDigest: sha256(canonicalize(spec)),
    source: {
      repo,
      repoUri: `git+${repo}`,
      commit,
      ref,
      gitTree: '4b825dc642cb6eb9a060e54bf8d69288fbee4904',
      treeSha256: sha256(`tree of ${commit}`),
      commitTime: 1764950400,
      dir: '/var/lib/airlock/runs/x/src',
    },
    runnerVersion: '0.1.0',
    sandbox: {
      tool: 'bubblewrap',
      version: '0.11.0',
      namespaces: ['user', 'network', 'ipc', 'uts', 'cgroup', 'pid'],
      uid: 1000,
      gid: 1000,
      hostname: 'airlock-build',
      readOnlyHostPaths: ['/usr', '/bin', '/lib', '/lib64'],
      paths: { source: '/src', output: '/out', home: '/home/build', tmp: '/tmp' },
      environment: {
        PATH: '/usr/bin:/bin',
        HOME: '/home/build',
        TZ: 'UTC',
        LC_ALL: 'C',
        SOURCE_DATE_EPOCH: '1764950400',
        AIRLOCK_MIRROR_URL: 'http://127.0.0.1:18080',
      },
      passthroughEnv: [],
      umask: '022',
      timeoutSeconds: 3600,
      network: { mode: 'mirror-bridge', bridge: '127.0.0.1:18080' },
      monitor: 'strace',
    },
    mirrorSnapshotId: w.snapshot.manifest.snapshot.id,
    mirrorDependencies,
    toolchain: TOOLCHAIN,
    builderId: o.builderId ?? w.ids.runner,
    builderVersion: { '@airlock/runner': '0.1.0', bubblewrap: '0.11.0', node: 'v20.19.0' },
    builderDependencies: BUILDER_DEPENDENCIES,
    invocationId: 'run-7f3a',
    startedOn: '2026-12-06T16:00:00.000Z',
    finishedOn: o.finishedOn ?? '2026-12-06T16:04:12.000Z',
    reproducibility: o.reproducibility ?? REPRODUCED,
    hermeticity: { monitor: 'strace', violations: 0 },
    logs: [{ name: 'build.log', sha256: sha256('build log'), size: 9, truncated: false }],
  };
}

const SUBJECT = { name: ARTIFACT_NAME, digest: { sha256: ARTIFACT_SHA256 } };

export function provenanceOf(input: ProvenanceInput): Statement {
  return provenanceStatement(SUBJECT, provenancePredicate(input, 3600));
}

export function sbomOf(input: ProvenanceInput): Statement {
  return sbomStatement(SUBJECT, buildSbom(SUBJECT, input));
}

/** Signs a statement as `signer`, then verifies the bundle as the CLI will (trusted root, artifact digest). */
export async function attest(
  w: World,
  signer: AirlockSigner,
  statement: Statement,
  uri: string,
): Promise<AttestationEvidence & { bundle: SerializedBundle }> {
  const bundle = await signer.attest(statement);
  const verification = w.verifier.verify(bundle, {
    artifactDigest: { sha256: ARTIFACT_SHA256 },
    allowAnyIdentity: true,
  });
  return { uri, bundleDigest: { sha256: sha256(JSON.stringify(bundle)) }, verification, bundle };
}
