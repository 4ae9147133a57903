import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { hasErrorCode } from '@airlock/core';
import type { RunningTrustPlane } from '@airlock/plane';
import type { PolicyRun } from '@airlock/policy';
import type { RunResult } from '@airlock/runner';
import type { AirlockSigner } from '@airlock/sign';
import { EXIT, fail, printResult, type OutputOptions } from '../output.js';
import type { DemoRegistry } from './demo-registry.js';

const execFileAsync = promisify(execFile);
const FIXTURES = fileURLToPath(new URL('../../../../fixtures/demo/', import.meta.url));
const PACKAGE = 'airlock-demo-greet';

interface DemoStep {
  step: string;
  ms: number;
  detail: Record<string, unknown>;
}

export interface DemoReport {
  ok: boolean;
  dataDir: string;
  steps: DemoStep[];
  /** Set when the hermetic build could not run here (a missing system tool), with the reason. */
  skipped?: string;
  /** The release policy the demo wrote and verified the build against. */
  policy?: string;
  /** The signed VSA (Sigstore bundle) about the built artifact. */
  vsa?: string;
  /** The HTML report of the chain. */
  report?: string;
  /** The admission webhook's verdicts on the demo's signed image and on an unsigned one. */
  admission?: { allowed: string; denied: string };
  /** Set when the admission stage could not run here (docker-registry missing), with the reason. */
  admissionSkipped?: string;
}

/** What the steps after the build share; steps record what later steps (and the summary) use. */
export interface DemoContext {
  dataDir: string;
  plane: RunningTrustPlane;
  identities: { issuer: string; runner: string; sync: string; verifier: string };
  signerFor(subject: string): AirlockSigner;
  source: { repo: string; commit: string; ref: string };
  build: RunResult;
  /** The mirror store the transfer bundle was imported into. */
  storeDir: string;
  snapshotId: string;
  policyPath?: string;
  run?: PolicyRun;
  vsaPath?: string;
  reportPath?: string;
  /** The loopback registry the build pushed its signed image to (absent when docker-registry is missing). */
  registry?: DemoRegistry;
  /** The unsigned image pushed beside it, for the admission webhook to deny. */
  unsignedImage?: string;
}

/** One step after the build: does its work and returns the detail the demo prints; throws to fail the demo. */
export interface DemoStepSpec {
  name: string;
  run(ctx: DemoContext): Promise<Record<string, unknown>>;
}

/**
 * The end-to-end main job on embedded defaults, all on loopback:
 *  1. trust plane up (transparency log, CA, workload-identity issuer),
 *  2. outside the perimeter: `sync` pins an npm lockfile and a plain file from a stand-in "public" upstream,
 *     checks every hash, and writes a transfer bundle signed by the sync job's identity, with an SBOM,
 *  3. inside: `import` verifies all of it into a content-addressed store; the mirror serves it; the upstream is gone,
 *  4. `run`: the project is built from an exact commit in a bwrap sandbox whose only endpoint is the mirror
 *     (npm ci + a pinned file), rebuilt to check reproducibility, and its SLSA provenance and SBOM are signed,
 *  5. AFTER_BUILD_STEPS: verification by a release policy (builder, source repo and commit, reproducible, every
 *     dependency in a sync-signed snapshot of the imported mirror store, SBOM), the same build rejected under a
 *     policy naming another builder identity, a signed VSA checked as a consumer would, and the HTML report,
 *  6. ADMISSION_STEPS (when Debian's docker-registry is installed; it is started before the build, which pushes
 *     its output as a signed OCI image there): an unsigned image is pushed beside it, and the admission webhook
 *     admits a Deployment of the signed image and denies one of the unsigned image.
 */
export async function runDemo(opts: { data?: string; log: (line: string) => void }): Promise<DemoReport> {
  // The whole chain loads when the demo runs, not to register `demo` (top-level --help loads none of it).
  const [
    { MirrorStore },
    { importBundle, startMirrorServer },
    { syncToBundle },
    { startTrustPlane },
    { runBuild },
    { sbomFromManifest },
    { AirlockSigner },
    { ADMISSION_STEPS, demoImageSpec },
    { demoRegistryProblem, startDemoRegistry },
    { AFTER_BUILD_STEPS },
  ] = await Promise.all([
    import('@airlock/cas'),
    import('@airlock/mirror'),
    import('@airlock/mirror-sync'),
    import('@airlock/plane'),
    import('@airlock/runner'),
    import('@airlock/sbom'),
    import('@airlock/sign'),
    import('./demo-admission.js'),
    import('./demo-registry.js'),
    import('./demo-steps.js'),
  ]);
  const dataDir = opts.data ?? mkdtempSync(join(tmpdir(), 'airlock-demo-'));
  mkdirSync(dataDir, { recursive: true });
  if (readdirSync(dataDir).length > 0) throw new Error(`demo data directory ${dataDir} is not empty`);
  const steps: DemoStep[] = [];
  const step = async <T>(name: string, fn: () => Promise<T>, detail: (t: T) => Record<string, unknown>): Promise<T> => {
    const t0 = performance.now();
    opts.log(`→ ${name}…`);
    const result = await fn();
    const s = { step: name, ms: Math.round(performance.now() - t0), detail: detail(result) };
    steps.push(s);
    opts.log(
      `  ✓ ${name} (${s.ms} ms)\n${Object.entries(s.detail)
        .map(([k, v]) => `      ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join('\n')}`,
    );
    return result;
  };

  const plane = await step(
    'start trust plane',
    () => startTrustPlane({ dataDir: join(dataDir, 'plane') }),
    (p) => ({ tlog: p.endpoints.tlogUrl, ca: p.endpoints.caUrl, issuer: p.endpoints.identityIssuerUrl }),
  );
  const cleanups: (() => Promise<unknown>)[] = [() => plane.close()];
  try {
    const td = plane.endpoints.trustDomain;
    const issuer = plane.endpoints.identityIssuerUrl;
    const syncIdentity = `spiffe://${td}/airlock/mirror-sync`;
    const runnerIdentity = `spiffe://${td}/airlock/runner`;
    const signerFor = (subject: string) =>
      new AirlockSigner({
        fulcioUrl: plane.endpoints.caUrl,
        rekorUrl: plane.endpoints.tlogUrl,
        ...(plane.endpoints.tsaUrl ? { tsaUrl: plane.endpoints.tsaUrl } : {}),
        identity: () => plane.issueToken(subject),
      });

    // ---- outside the perimeter
    const upstream = await step(
      'start the stand-in public upstream (npm registry + file server)',
      () => startDemoUpstream(join(dataDir, 'upstream')),
      (u) => ({ url: u.url, package: `${PACKAGE}@1.0.0`, file: 'words.txt' }),
    );
    cleanups.unshift(() => upstream.close());
    const project = join(dataDir, 'src');
    cpSync(join(FIXTURES, 'project'), project, { recursive: true });
    writeFileSync(join(project, 'package-lock.json'), `${JSON.stringify(upstream.lockfile(), null, 2)}\n`);
    writeFileSync(join(project, 'words.sha256'), `${upstream.wordsSha256}\n`);
    writeFileSync(
      join(dataDir, 'pins.json'),
      JSON.stringify([{ url: upstream.wordsUrl, sha256: upstream.wordsSha256 }]),
    );
    const bundlePath = join(dataDir, 'transfer-bundle.tar');
    await step(
      'sync: fetch the pinned lockfile and file, check every hash, sign the transfer bundle',
      () =>
        syncToBundle({
          inputs: [
            { kind: 'npm-lock', path: join(project, 'package-lock.json') },
            { kind: 'generic', path: join(dataDir, 'pins.json') },
          ],
          out: bundlePath,
          signer: signerFor(syncIdentity),
          sbom: async (manifest) => sbomFromManifest(manifest),
          quiet: true,
        }),
      (r) => ({
        bundle: r.bundlePath,
        snapshot: r.snapshotId,
        entries: r.entries,
        blobs: r.blobs,
        signedBy: syncIdentity,
      }),
    );

    // ---- inside the perimeter
    const store = await MirrorStore.open(join(dataDir, 'mirror-store'));
    cleanups.unshift(() => store.close());
    const imported = await step(
      'import: verify signature, identity, every digest and the sequence; publish atomically',
      () =>
        importBundle(bundlePath, {
          store,
          trustedRoot: plane.trustedRoot,
          syncIdentity: { subject: syncIdentity, issuer },
        }),
      (r) => ({
        snapshot: r.snapshot.id,
        sequence: r.snapshot.sequence,
        blobs: r.blobs,
        manifestLogIndex: r.logIndexes.join(', '),
      }),
    );
    const mirror = await step(
      'serve the mirror; stop the upstream (nothing outside is reachable now)',
      async () => {
        const m = await startMirrorServer({ store });
        await upstream.close();
        return m;
      },
      (m) => ({ mirror: m.url }),
    );
    cleanups.unshift(() => mirror.close());

    const repo = join(dataDir, 'repo');
    const commit = await step(
      'commit the project source',
      () => commitProject(project, repo),
      (c) => ({ repo, commit: c }),
    );

    const registryProblem = demoRegistryProblem();
    const registry = registryProblem
      ? undefined
      : await step(
          "registry: start Debian's docker-registry on loopback for the image the build pushes",
          () => startDemoRegistry(join(dataDir, 'registry')),
          (r) => ({ registry: r.url, image: demoImageSpec(r.host).repository }),
        );
    if (registry) cleanups.unshift(() => registry.stop());
    else opts.log(`  ! admission stage skipped: ${registryProblem}`);

    let build: RunResult;
    try {
      build = await step(
        'run: hermetic build in a bwrap sandbox (mirror only), rebuild check, sign provenance + SBOM',
        () =>
          runBuild(
            {
              source: { repo, commit, ref: 'refs/heads/main' },
              builder: {
                type: 'command',
                argv: [
                  'sh',
                  '-c',
                  'npm ci --registry="$AIRLOCK_MIRROR_URL/" --replace-registry-host=always --cache /tmp/npm-cache --fetch-retries=0 --no-audit --no-fund --no-update-notifier --loglevel=error && node build.js',
                ],
              },
              outputs: ['greeting.txt'],
              reproducible: true,
              timeoutSeconds: 600,
              ...(registry ? { image: demoImageSpec(registry.host) } : {}),
            },
            {
              outDir: join(dataDir, 'out'),
              builderId: runnerIdentity,
              mirrorUrl: mirror.url,
              signer: signerFor(runnerIdentity),
              ...(registry ? { registry: { plainHttp: true, hosts: [registry.host] } } : {}),
              onProgress: (e) => opts.log(`      [${(e.elapsedMs / 1000).toFixed(1)} s] ${e.phase}: ${e.message}`),
            },
          ),
        (r) => ({
          artifact: `${r.artifacts[0]!.name} sha256:${r.artifacts[0]!.sha256}`,
          reproducibility: r.reproducibility.status,
          mirrorBlobsUsed: r.mirror?.dependencies.length ?? 0,
          ...(r.image ? { image: r.image.reference, imageSigned: r.image.signed } : {}),
          provenance: r.artifacts[0]!.provenanceBundlePath,
          logIndexes: r.artifacts
            .flatMap((a) => [logIndexOf(a.provenanceBundlePath), logIndexOf(a.sbomBundlePath)])
            .join(', '),
        }),
      );
    } catch (err) {
      if (hasErrorCode(err, 'RUNNER_TOOL_MISSING')) {
        const reason = (err as Error).message;
        opts.log(`  ! hermetic build skipped: ${reason}`);
        return {
          ok: true,
          dataDir,
          steps,
          skipped: reason,
          ...(registryProblem ? { admissionSkipped: registryProblem } : {}),
        };
      }
      throw err;
    }

    const ctx: DemoContext = {
      dataDir,
      plane,
      identities: { issuer, runner: runnerIdentity, sync: syncIdentity, verifier: `spiffe://${td}/airlock/verifier` },
      signerFor,
      source: { repo, commit, ref: 'refs/heads/main' },
      build,
      storeDir: join(dataDir, 'mirror-store'),
      snapshotId: imported.snapshot.id,
      ...(registry ? { registry } : {}),
    };
    const last = registry ? [...AFTER_BUILD_STEPS, ...ADMISSION_STEPS] : AFTER_BUILD_STEPS;
    let admission: DemoReport['admission'];
    for (const s of last) {
      const detail = await step(
        s.name,
        () => s.run(ctx),
        (d) => d,
      );
      if (typeof detail['allowed'] === 'string' && typeof detail['denied'] === 'string')
        admission = { allowed: detail['allowed'], denied: detail['denied'] };
    }
    return {
      ok: true,
      dataDir,
      steps,
      ...(ctx.policyPath ? { policy: ctx.policyPath } : {}),
      ...(ctx.vsaPath ? { vsa: ctx.vsaPath } : {}),
      ...(ctx.reportPath ? { report: ctx.reportPath } : {}),
      ...(admission ? { admission } : {}),
      ...(registryProblem ? { admissionSkipped: registryProblem } : {}),
    };
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
  }
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function logIndexOf(bundlePath: string | undefined): string {
  if (!bundlePath || !existsSync(bundlePath)) return '-';
  const b = readJson(bundlePath) as { verificationMaterial?: { tlogEntries?: { logIndex?: string }[] } };
  const e = b.verificationMaterial?.tlogEntries?.[0];
  return e ? (e.logIndex ?? '0') : '-';
}

async function commitProject(project: string, repo: string): Promise<string> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: repo,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'airlock demo',
    GIT_AUTHOR_EMAIL: 'demo@airlock.invalid',
    GIT_COMMITTER_NAME: 'airlock demo',
    GIT_COMMITTER_EMAIL: 'demo@airlock.invalid',
    GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
    GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
  };
  const git = async (args: string[], cwd: string) => (await execFileAsync('git', args, { cwd, env })).stdout.trim();
  mkdirSync(repo, { recursive: true });
  await git(['init', '-q', '-b', 'main'], repo);
  cpSync(project, repo, { recursive: true });
  await git(['add', '-A'], repo);
  await git(['commit', '-q', '-m', 'airlock demo project'], repo);
  return git(['rev-parse', 'HEAD'], repo);
}

interface DemoUpstream {
  url: string;
  wordsUrl: string;
  wordsSha256: string;
  lockfile(): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * The stand-in for the public internet (which cannot exist in here): a loopback npm registry with one package,
 * packed by the real `npm pack`, and a plain file server. Only the sync job ever talks to it.
 */
async function startDemoUpstream(work: string): Promise<DemoUpstream> {
  mkdirSync(work, { recursive: true });
  const packed = JSON.parse(
    (
      await execFileAsync('npm', ['pack', '--json', '--pack-destination', work, join(FIXTURES, 'upstream', PACKAGE)], {
        cwd: work,
        env: { ...process.env, npm_config_update_notifier: 'false' },
      })
    ).stdout,
  ) as { filename: string; integrity: string; shasum: string }[];
  const tarball = readFileSync(join(work, packed[0]!.filename));
  const words = readFileSync(join(FIXTURES, 'upstream', 'words.txt'));
  const manifest = readJson(join(FIXTURES, 'upstream', PACKAGE, 'package.json')) as Record<string, unknown>;
  let base = '';
  const published = '2026-01-01T00:00:00.000Z';
  const routes = new Map<string, { body: Buffer; type: string }>();
  const server: Server = createServer((req, res) => {
    const r = routes.get(req.url ?? '');
    if (!r) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': r.type, 'content-length': r.body.length }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tarballUrl = `${base}/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`;
  const packument = {
    _id: PACKAGE,
    name: PACKAGE,
    'dist-tags': { latest: '1.0.0' },
    versions: {
      '1.0.0': {
        ...manifest,
        _id: `${PACKAGE}@1.0.0`,
        dist: { tarball: tarballUrl, integrity: packed[0]!.integrity, shasum: packed[0]!.shasum },
      },
    },
    time: { created: published, modified: published, '1.0.0': published },
  };
  routes.set(`/${PACKAGE}`, { body: Buffer.from(JSON.stringify(packument)), type: 'application/json' });
  routes.set(`/${PACKAGE}/-/${PACKAGE}-1.0.0.tgz`, { body: tarball, type: 'application/octet-stream' });
  routes.set('/files/words.txt', { body: words, type: 'text/plain' });
  let closed = false;
  return {
    url: base,
    wordsUrl: `${base}/files/words.txt`,
    wordsSha256: createHash('sha256').update(words).digest('hex'),
    lockfile: () => ({
      name: 'airlock-demo-app',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'airlock-demo-app', version: '1.0.0', dependencies: { [PACKAGE]: '1.0.0' } },
        [`node_modules/${PACKAGE}`]: {
          version: '1.0.0',
          resolved: tarballUrl,
          integrity: packed[0]!.integrity,
          license: 'Apache-2.0',
        },
      },
    }),
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole chain on embedded defaults: trust plane, sync, verified import, mirror, hermetic build, signed provenance + SBOM + image, verification, admission',
    )
    .option(
      '--data <dir>',
      'keep the plane data, store, bundle and outputs in this (empty) directory (default: a new temp directory)',
    )
    .option('--json', 'print the report as JSON (progress still goes to stderr)')
    .action(async (flags: OutputOptions & { data?: string }) => {
      try {
        const log = flags.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
        const report = await runDemo({ ...(flags.data ? { data: flags.data } : {}), log });
        printResult(flags, report, () =>
          report.skipped
            ? `\nairlock demo: ${report.steps.length} steps passed; the hermetic build was skipped (${report.skipped}). Data in ${report.dataDir}`
            : [
                `\nairlock demo: all ${report.steps.length} steps passed. Data, bundles and build outputs in ${report.dataDir}`,
                ...(report.vsa ? [`  VSA:    ${report.vsa}`] : []),
                ...(report.report ? [`  report: ${report.report}`] : []),
                ...(report.admission
                  ? [`  admission: ${report.admission.allowed}`, `             ${report.admission.denied}`]
                  : []),
                ...(report.admissionSkipped ? [`  admission skipped: ${report.admissionSkipped}`] : []),
              ].join('\n'),
        );
      } catch (err) {
        fail(flags, err, EXIT.FAILURE);
      }
    });
}
