#!/usr/bin/env node
// Release verification by policy (issue 8): full policy verifications per second for a provenance with 200 mirror
// dependencies, checked against a mirror store, next to signature-only verification of the same bundles with
// stock @sigstore/verify, in one run. Target: the policy adds ≤ 25% to signature verification.
//
// Setup (real trust plane on loopback, as fast as possible): 200 npm packages → a transfer manifest built by
// mirror-sync's builder, signed as the sync job and imported into a real mirror store by the real importer;
// provenance and SBOM built by the runner's builders and signed as the runner. Then, per verification:
//   stock:  @sigstore/verify on the provenance, SBOM and snapshot bundles (parse, verify, identity regexp)
//   store:  what `verify artifact --mirror-store` does: parse the policy, verify provenance + SBOM (BundleVerifier),
//           open the store index, re-verify its snapshot's sync bundle, evaluate every rule (200 lookups)
//   mirror: the same with `--mirror URL`: a fresh MirrorLookupSnapshotSource per verification (200 lookups over
//           HTTP to the real mirror server on loopback + one snapshot fetch and signature check)
// Overheads: "policy + store loaded once" (a long-running verifier such as the admission webhook: the policy parsed and
// the store's snapshots verified once, as they are immutable; per verification: both bundles + every rule)
// against stock on provenance + SBOM; the per-run CLI paths (which also verify the snapshot's sync bundle) against
// stock on all three bundles. The contenders take turns in short slices so machine load falls on all alike.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { ASN1Obj } from '@sigstore/core';
import { canonicalBytes, canonicalize } from '../../packages/core/dist/index.js';
import { MIRROR_STORE_LAYOUT, MirrorIndex, MirrorStore } from '../../packages/cas/dist/index.js';
import { canonicalTarHeader, importBundle, startMirrorServer } from '../../packages/mirror/dist/index.js';
import { startTrustPlane } from '../../packages/plane/dist/index.js';
import {
  MirrorLookupSnapshotSource,
  TransferManifestSnapshotSource,
  evaluatePolicy,
  parsePolicy,
} from '../../packages/policy/dist/index.js';
import { AirlockSigner } from '../../packages/sign/dist/index.js';
import { BundleVerifier } from '../../packages/verify/dist/index.js';
import { buildManifest, compareEntries } from '../../mirror-sync/dist/manifest.js';
import { buildManifestStatement } from '../../mirror-sync/dist/statement.js';
import { buildSbom, provenancePredicate, provenanceStatement, sbomStatement } from '../../runner/dist/provenance.js';

const DEPENDENCIES = Number(process.env.BENCH_POLICY_DEPENDENCIES ?? 200);
const VERIFY_MS = Number(process.env.BENCH_VERIFY_MS ?? 6000);
const ROUNDS = Number(process.env.BENCH_VERIFY_ROUNDS ?? 6);
const TARGET_OVERHEAD = 0.25;

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

function npmPackage(i) {
  const name = `dep-${i}`;
  const version = `1.${i}.0`;
  const bytes = Buffer.from(`package/${name}@${version} tarball contents\n`.repeat(8));
  const d = {
    sha256: sha256(bytes),
    sha512: createHash('sha512').update(bytes).digest('hex'),
    sha1: createHash('sha1').update(bytes).digest('hex'),
  };
  const filename = `${name}-${version}.tgz`;
  const tarball = `https://registry.npmjs.org/${name}/-/${filename}`;
  const integrity = `sha512-${Buffer.from(d.sha512, 'hex').toString('base64')}`;
  const purl = `pkg:npm/${name}@${version}`;
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

function transferTar(manifestBytes, bundle, packages) {
  const entries = [
    ['manifest.json', manifestBytes],
    ['attestations/manifest.sigstore.json', Buffer.from(JSON.stringify(bundle))],
    ...packages.map((p) => [`blobs/sha256/${p.entry.digests.sha256}`, p.bytes]),
  ];
  const parts = [];
  for (const [name, body] of entries)
    parts.push(canonicalTarHeader(name, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The runner's ProvenanceInput for a command build that fetched every package from the mirror. */
function provenanceInput(ids, snapshotId, packages) {
  const repo = 'https://git.corp.example/acme/app.git';
  const commit = 'a3c1f0e29b7d4c5e8f6a1b2c3d4e5f60718293a4';
  const ref = 'refs/tags/v1.4.2';
  const spec = {
    source: { repo, commit, ref },
    builder: { type: 'command', argv: ['sh', '-c', 'npm ci --offline && npm run build'] },
    outputs: ['dist/app.tgz'],
    mirror: { url: 'http://127.0.0.1:18080' },
    reproducible: true,
  };
  const now = new Date().toISOString();
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
    mirrorSnapshotId: snapshotId,
    mirrorDependencies: packages.map((p) => ({
      purl: p.purl,
      uri: p.entry.urls[0],
      name: p.name,
      version: p.version,
      digest: { ...p.entry.digests },
    })),
    toolchain: [{ path: '/bin/sh', resolvedPath: '/usr/bin/dash', sha256: sha256('dash'), size: 125560 }],
    builderId: ids.runner,
    builderVersion: { '@airlock/runner': '0.1.0' },
    builderDependencies: [],
    invocationId: 'run-bench',
    startedOn: now,
    finishedOn: now,
    reproducibility: {
      status: 'reproduced',
      files: 1,
      variations: { buildPath: true, hostname: true, home: true, environmentNoise: true, time: 'faketime' },
      rebuildDurationMs: 1000,
    },
    hermeticity: { monitor: 'strace', violations: 0 },
    logs: [],
  };
}

function policyText(ids, issuer) {
  return `apiVersion: airlock.dev/policy/v1
name: bench release
authorities:
  runner: { keyless: { subject: '${ids.runner}', issuer: '${issuer}' } }
  mirror-sync: { keyless: { subject: '${ids.sync}', issuer: '${issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${ids.runner}']
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

// @airlock/verify puts a faster, byte-identical ASN1Obj.toDER into @sigstore/core (memo-certificate.ts): the stock
// contenders run with the library's own (swapped per slice, never per call), so the peer stays stock.
const AIRLOCK_TO_DER = ASN1Obj.prototype.toDER;
const STOCK_TO_DER = ASN1Obj.prototype[Symbol.for('airlock.verify.stockToDER')] ?? AIRLOCK_TO_DER;
const derFor = (name) => (ASN1Obj.prototype.toDER = name.startsWith('stock') ? STOCK_TO_DER : AIRLOCK_TO_DER);

/** Interleaved slices; returns verifications per second for each contender. */
async function measure(contenders) {
  const totals = contenders.map(() => ({ n: 0, ms: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [c, [name, one]] of contenders.entries()) {
      const t = totals[c];
      derFor(name);
      const start = performance.now();
      while (performance.now() - start < VERIFY_MS / ROUNDS) {
        await one();
        t.n++;
      }
      t.ms += performance.now() - start;
    }
  }
  derFor('airlock');
  return contenders.map(([name], c) => ({ name, n: totals[c].n, perSecond: totals[c].n / (totals[c].ms / 1000) }));
}

const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-policy-'));
const plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
let store;
let mirror;
try {
  const t0 = performance.now();
  const td = plane.endpoints.trustDomain;
  const issuer = plane.endpoints.identityIssuerUrl;
  const ids = { runner: `spiffe://${td}/runner/ci`, sync: `spiffe://${td}/sync/mirror` };
  const signer = (sub) =>
    new AirlockSigner({
      fulcioUrl: plane.endpoints.caUrl,
      rekorUrl: plane.endpoints.tlogUrl,
      identity: () => plane.issueToken(sub),
    });
  const packages = Array.from({ length: DEPENDENCIES }, (_, i) => npmPackage(i));
  const manifest = buildManifest({
    entries: packages.map((p) => p.entry).sort(compareEntries),
    sequence: 1,
    previous: null,
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  });
  const manifestBytes = Buffer.from(canonicalize(manifest), 'utf8');
  const snapshotBundle = await signer(ids.sync).attest(buildManifestStatement(manifest, sha256(manifestBytes), []));
  const tarPath = join(dir, 'transfer.tar');
  writeFileSync(tarPath, transferTar(manifestBytes, snapshotBundle, packages));
  const storeDir = join(dir, 'store');
  store = await MirrorStore.open(storeDir);
  await importBundle(tarPath, { store, trustedRoot: plane.trustedRoot, syncIdentity: { subject: ids.sync, issuer } });

  const artifact = Buffer.from('acme app 1.4.2 release tarball\n'.repeat(64));
  const subject = { name: 'dist/app.tgz', digest: { sha256: sha256(artifact) } };
  const input = provenanceInput(ids, manifest.snapshot.id, packages);
  const runner = signer(ids.runner);
  const bundleBytes = {
    provenance: Buffer.from(
      JSON.stringify(await runner.attest(provenanceStatement(subject, provenancePredicate(input, 3600)))),
    ),
    sbom: Buffer.from(JSON.stringify(await runner.attest(sbomStatement(subject, buildSbom(subject, input))))),
  };
  const snapshotBundleBytes = Buffer.from(JSON.stringify(snapshotBundle));
  const policyBytes = Buffer.from(policyText(ids, issuer));
  mirror = await startMirrorServer({ store, host: '127.0.0.1', port: 0 });
  const setupSeconds = (performance.now() - t0) / 1000;

  // Built once per process, as the CLI builds it once per run: trust material parsing is not per verification.
  const verifier = new BundleVerifier(plane.trustedRoot);
  const stock = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(plane.trustedRoot)), {
    ctlogThreshold: 0,
    tlogThreshold: 1,
    timestampThreshold: 1,
  });
  const anchored = (s) => `^${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
  const runnerPolicy = { subjectAlternativeName: anchored(ids.runner), extensions: { issuer } };
  const syncPolicy = { subjectAlternativeName: anchored(ids.sync), extensions: { issuer } };

  const stockOne = () => {
    for (const b of [bundleBytes.provenance, bundleBytes.sbom])
      stock.verify(toSignedEntity(bundleFromJSON(JSON.parse(b.toString('utf8')))), runnerPolicy);
    stock.verify(toSignedEntity(bundleFromJSON(JSON.parse(snapshotBundleBytes.toString('utf8')))), syncPolicy);
  };

  /** The CLI's --mirror-store source: every snapshot's kept sync bundle re-verified (inputs.ts fromMirrorStore). */
  const storeSource = () => {
    const index = MirrorIndex.open(join(storeDir, MIRROR_STORE_LAYOUT.index));
    const s = new TransferManifestSnapshotSource();
    try {
      for (const rec of index.listSnapshots()) {
        const d = index.getSnapshot(rec.sequence);
        s.add(canonicalBytes(d.manifest), d.signedBundles['attestations/manifest.sigstore.json'], verifier);
      }
    } finally {
      index.close();
    }
    return { source: s, close: () => {} };
  };
  const mirrorSource = () => {
    const s = new MirrorLookupSnapshotSource(mirror.url, { verifiers: [verifier] });
    return { source: s, close: () => s.close() };
  };

  const policyOne = (makeSource, loadedPolicy) => async () => {
    const policy = loadedPolicy ?? parsePolicy(policyBytes, 'bench.policy.yaml');
    const attestations = Object.entries(bundleBytes).map(([uri, bytes]) => ({
      uri,
      bundleDigest: { sha256: sha256(bytes) },
      verification: verifier.verify(JSON.parse(bytes.toString('utf8')), {
        artifactDigest: subject.digest,
        allowAnyIdentity: true,
      }),
    }));
    const { source, close } = makeSource();
    try {
      const verdict = await evaluatePolicy(
        policy,
        { artifact: { digest: subject.digest, name: subject.name }, attestations, snapshots: source },
        { now: new Date() },
      );
      if (verdict.result !== 'PASS')
        throw new Error(
          `bench setup: verdict ${verdict.result}: ${JSON.stringify(verdict.rules.filter((r) => !r.passed))}`,
        );
      return verdict;
    } finally {
      close();
    }
  };

  // Correctness first: both policy paths pass and check all dependencies.
  const check = await policyOne(storeSource)();
  const depRule = check.rules.find((r) => r.rule === 'dependencies.snapshot');
  if (depRule?.seen?.dependencies !== DEPENDENCIES) throw new Error(`expected ${DEPENDENCIES} dependencies checked`);
  await policyOne(mirrorSource)();
  const resolved = JSON.parse(
    Buffer.from(JSON.parse(bundleBytes.provenance).dsseEnvelope.payload, 'base64').toString('utf8'),
  ).predicate.buildDefinition.resolvedDependencies.length;

  // Where a policy verification's time goes (mean ms over a few runs of each part alone).
  const meanMs = async (fn, n = 10) => {
    await fn();
    const t = performance.now();
    for (let i = 0; i < n; i++) await fn();
    return (performance.now() - t) / n;
  };
  const provJson = () => JSON.parse(bundleBytes.provenance.toString('utf8'));
  const storeBuilt = storeSource().source;
  const attestationsOnce = Object.entries(bundleBytes).map(([uri, bytes]) => ({
    uri,
    bundleDigest: { sha256: sha256(bytes) },
    verification: verifier.verify(JSON.parse(bytes.toString('utf8')), {
      artifactDigest: subject.digest,
      allowAnyIdentity: true,
    }),
  }));
  const parsedPolicy = parsePolicy(policyBytes, 'bench.policy.yaml');
  derFor('stock');
  const stockOneBundle = await meanMs(() => stock.verify(toSignedEntity(bundleFromJSON(provJson())), runnerPolicy));
  derFor('airlock');
  const breakdown = {
    stockOneBundle,
    airlockOneBundle: await meanMs(() =>
      verifier.verify(provJson(), { artifactDigest: subject.digest, allowAnyIdentity: true }),
    ),
    parsePolicy: await meanMs(() => parsePolicy(policyBytes, 'bench.policy.yaml')),
    storeSource: await meanMs(() => storeSource()),
    rules: await meanMs(() =>
      evaluatePolicy(
        parsedPolicy,
        {
          artifact: { digest: subject.digest, name: subject.name },
          attestations: attestationsOnce,
          snapshots: storeBuilt,
        },
        { now: new Date() },
      ),
    ),
  };
  console.log(
    `breakdown (mean ms): ${Object.entries(breakdown)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ')}`,
  );

  const warm = { source: storeBuilt, close: () => {} };
  const stock2 = () => {
    for (const b of [bundleBytes.provenance, bundleBytes.sbom])
      stock.verify(toSignedEntity(bundleFromJSON(JSON.parse(b.toString('utf8')))), runnerPolicy);
  };
  const rows = await measure([
    ['stock: provenance + SBOM', stock2],
    ['stock: provenance + SBOM + snapshot', stockOne],
    ['policy: policy + store loaded once', policyOne(() => warm, parsedPolicy)],
    ['policy: --mirror-store (CLI, per run)', policyOne(storeSource)],
    ['policy: --mirror URL (per run)', policyOne(mirrorSource)],
  ]);
  const [base2, base3, viaWarm, viaStore, viaMirror] = rows;
  const against = new Map([
    [viaWarm, base2],
    [viaStore, base3],
    [viaMirror, base3],
  ]);
  const overhead = (r) => against.get(r).perSecond / r.perSecond - 1;
  const pct = (r) => Number((overhead(r) * 100).toFixed(1));
  console.log(
    `setup ${setupSeconds.toFixed(1)} s; provenance with ${resolved} resolvedDependencies (${DEPENDENCIES} mirror blobs checked)`,
  );
  console.log('full verifications per second (one thread, contenders interleaved):');
  for (const r of rows)
    console.log(
      `  ${r.name.padEnd(40)} ${r.perSecond.toFixed(1).padStart(8)}/s  (${r.n} runs)${against.has(r) ? `  policy adds ${pct(r)}% vs "${against.get(r).name}"` : ''}`,
    );
  const met = overhead(viaWarm) <= TARGET_OVERHEAD;
  const metCli = overhead(viaStore) <= TARGET_OVERHEAD;
  console.log(
    `target (policy adds ≤ ${TARGET_OVERHEAD * 100}% to signature verification): store loaded once ${met ? 'MET' : 'NOT MET'} (${pct(viaWarm)}%); CLI --mirror-store per run ${metCli ? 'MET' : 'NOT MET'} (${pct(viaStore)}%)`,
  );
  console.log(
    'BENCH_JSON ' +
      JSON.stringify({
        bench: 'policy',
        summary: {
          stockPerSecond: Number(base2.perSecond.toFixed(1)),
          policyPerSecond: Number(viaWarm.perSecond.toFixed(1)),
          overheadPct: pct(viaWarm),
          targetMet: met,
          cliStorePerSecond: Number(viaStore.perSecond.toFixed(1)),
          cliStoreOverheadPct: pct(viaStore),
          cliMirrorPerSecond: Number(viaMirror.perSecond.toFixed(1)),
          cliMirrorOverheadPct: pct(viaMirror),
        },
        perSecond: Object.fromEntries(rows.map((r) => [r.name, Number(r.perSecond.toFixed(1))])),
        breakdownMs: Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, Number(v.toFixed(2))])),
        dependencies: DEPENDENCIES,
        resolvedDependencies: resolved,
        targetOverheadPct: TARGET_OVERHEAD * 100,
      }),
  );
} finally {
  await mirror?.close();
  await store?.close();
  await plane.close();
  rmSync(dir, { recursive: true, force: true });
}
