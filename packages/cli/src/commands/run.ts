import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { readEndpoints } from '@airlock/plane';
import { EXIT_CODES, RunnerError, exitCodeFor, runBuild, type RunResult } from '@airlock/runner';
import { AirlockSigner } from '@airlock/sign';
import { BundleVerifier } from '@airlock/verify';
import { readJsonFile, resolveSigningContext, type SigningFlags } from '../context.js';
import { fail, info, printResult, UsageError, type OutputOptions } from '../output.js';

interface RunFlags extends SigningFlags, OutputOptions {
  spec: string;
  out: string;
  builderId?: string;
  mirror?: string;
  mirrorSocket?: string;
  sign: boolean;
  verify: boolean;
  workRoot?: string;
  keepWorkDir?: boolean;
}

/** One signed artifact as the summary reports it. */
export interface RunArtifactSummary {
  name: string;
  path: string;
  sha256: string;
  size: number;
  provenance: { statement: string; bundle?: string; logIndex?: string };
  sbom: { statement: string; bundle?: string; logIndex?: string };
}

const RUNNER_SUBJECT = 'airlock/runner';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('build an exact source commit hermetically (bwrap sandbox, mirror only), then write and sign SLSA provenance and a CycloneDX SBOM per output')
    .requiredOption('--spec <file>', 'build spec (JSON or YAML, schemas/build-spec.v1.schema.json)')
    .option('--out <dir>', 'output directory for artifacts, attestations and logs (must be empty)', 'airlock-out')
    .option('--data <dir>', 'trust plane data directory: its CA, log, embedded identity issuer and trusted root')
    .option('--fulcio-url <url>', 'Fulcio-compatible CA URL (overrides --data)')
    .option('--rekor-url <url>', 'Rekor v1-compatible log URL (overrides --data)')
    .option('--identity-token <jwt>', 'OIDC token of this runner (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the runner OIDC token from a file')
    .option('--subject <spiffe-id>', `SPIFFE ID the embedded issuer mints for (default spiffe://<trust domain>/${RUNNER_SUBJECT})`)
    .option('--builder-id <uri>', 'SLSA runDetails.builder.id (default: the runner SPIFFE ID)')
    .option('--mirror <url>', "the mirror (http://host:port[/path] or unix:/path); overrides the spec's mirror.url")
    .option('--mirror-socket <path>', 'the mirror as a UNIX socket (no TCP port needed on the host)')
    .option('--no-sign', 'write unsigned provenance and SBOM statements only')
    .option('--no-verify', 'skip verifying the written bundles against the trusted root')
    .option('--work-root <dir>', 'where the scratch directory is made (default: the OS temp dir)')
    .option('--keep-work-dir', 'keep the scratch directory (debugging)')
    .option('--json', 'machine-readable result on stdout')
    .option('-q, --quiet', 'no progress output')
    .addHelpText(
      'after',
      [
        '',
        'The build runs in a bubblewrap sandbox with its own network namespace: the only endpoint is the mirror,',
        'bridged in as $AIRLOCK_MIRROR_URL. Every response the build receives is hashed and resolved against the',
        "mirror's snapshot, so provenance lists exactly the blobs used. With `reproducible: true` it builds twice",
        '(different path, hostname, environment and clock) and compares the outputs.',
        '',
        'Exit codes: 0 ok, 1 internal error, 2 spec error, 3 a tool or the mirror is unavailable, 10 build failed,',
        '11 hermeticity violation, 12 not reproducible, 13 signing failed, 14 builder not implemented.',
        '',
        'Example:',
        '  airlock up --data plane &',
        '  airlock run --spec build.yaml --out out --data plane --mirror http://127.0.0.1:4873',
      ].join('\n'),
    )
    .action(async (flags: RunFlags) => {
      try {
        const result = await runCommand(flags);
        printResult(flags, { ok: true, ...result }, () => humanSummary(result));
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT_CODES.SPEC_ERROR : exitCodeFor(err));
      }
    });
}

export interface RunCommandResult {
  invocationId: string;
  builderId: string;
  source: RunResult['source'];
  artifacts: RunArtifactSummary[];
  reproducibility: RunResult['reproducibility']['status'];
  hermeticity: RunResult['hermeticity'];
  mirror?: { snapshotId?: string; dependencies: number };
  verified: boolean;
  logs: { build: string; rebuild?: string };
  durations: RunResult['durations'];
}

async function runCommand(flags: RunFlags): Promise<RunCommandResult> {
  const endpoints = flags.data ? readEndpoints(flags.data) : undefined;
  const subject = flags.subject ?? (endpoints ? `spiffe://${endpoints.trustDomain}/${RUNNER_SUBJECT}` : undefined);
  const builderId = flags.builderId ?? subject ?? `https://airlock.dev/runners/${hostname()}`;
  let signer: AirlockSigner | undefined;
  if (flags.sign) {
    const ctx = resolveSigningContext({ ...flags, ...(subject ? { subject } : {}) });
    signer = new AirlockSigner({ fulcioUrl: ctx.fulcioUrl, rekorUrl: ctx.rekorUrl, identity: ctx.identity });
  }
  const started = Date.now();
  const result = await runBuild(flags.spec, {
    outDir: flags.out,
    builderId,
    ...(signer ? { signer } : {}),
    ...(flags.mirror ? { mirrorUrl: flags.mirror } : {}),
    ...(flags.mirrorSocket ? { mirrorUnixSocket: flags.mirrorSocket } : {}),
    ...(flags.workRoot ? { workRoot: flags.workRoot } : {}),
    ...(flags.keepWorkDir ? { keepWorkDir: true } : {}),
    onProgress: (e) => info(flags, `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${e.phase.padEnd(8)} ${e.message}`),
  });
  let verified = false;
  if (signer && flags.verify) {
    verified = verifyOutputs(result, flags, endpoints?.identityIssuerUrl, subject);
    info(flags, `verified ${result.artifacts.length * 2} bundles against the trusted root`);
  }
  return {
    invocationId: result.invocationId,
    builderId: result.builderId,
    source: result.source,
    artifacts: result.artifacts.map((a) => ({
      name: a.name,
      path: a.path,
      sha256: a.sha256,
      size: a.size,
      provenance: { statement: a.provenancePath, ...bundleInfo(a.provenanceBundlePath) },
      sbom: { statement: a.sbomPath, ...bundleInfo(a.sbomBundlePath) },
    })),
    reproducibility: result.reproducibility.status,
    hermeticity: result.hermeticity,
    ...(result.mirror ? { mirror: { ...(result.mirror.snapshotId ? { snapshotId: result.mirror.snapshotId } : {}), dependencies: result.mirror.dependencies.length } } : {}),
    verified,
    logs: { build: result.logPath, ...(result.rebuildLogPath ? { rebuild: result.rebuildLogPath } : {}) },
    durations: result.durations,
  };
}

function bundleInfo(path: string | undefined): { bundle?: string; logIndex?: string } {
  if (!path) return {};
  const bundle = JSON.parse(readFileSync(path, 'utf8')) as { verificationMaterial?: { tlogEntries?: { logIndex?: string }[] } };
  const logIndex = bundle.verificationMaterial?.tlogEntries?.[0]?.logIndex;
  return { bundle: path, ...(logIndex !== undefined ? { logIndex } : {}) };
}

/**
 * Checks what was just written the way a release engineer will: each bundle against the trusted root, the runner's
 * identity and the artifact bytes. A runner that produces bundles its own verifiers refuse must not report success.
 */
function verifyOutputs(result: RunResult, flags: RunFlags, issuer: string | undefined, subject: string | undefined): boolean {
  if (!flags.data) {
    info(flags, 'not verifying the bundles: no --data (trusted root) given');
    return false;
  }
  if (!issuer || !subject) return false;
  const verifier = new BundleVerifier(readJsonFile(`${flags.data}/trusted_root.json`, 'trusted root'));
  for (const a of result.artifacts) {
    const artifact = readFileSync(a.path);
    for (const [kind, path, predicateType] of [
      ['provenance', a.provenanceBundlePath, 'https://slsa.dev/provenance/v1'],
      ['SBOM', a.sbomBundlePath, 'https://cyclonedx.org/bom'],
    ] as const) {
      if (!path) continue;
      try {
        verifier.verify(JSON.parse(readFileSync(path, 'utf8')), { artifact, policy: { issuer, subject }, expectedPredicateType: predicateType });
      } catch (cause) {
        throw new RunnerError('RUNNER_SIGNING_FAILED', `the ${kind} bundle of ${a.name} does not verify: ${(cause as Error).message}`, { cause });
      }
    }
  }
  return true;
}

function humanSummary(r: RunCommandResult): string {
  const lines = [
    `built ${r.source.repo}@${r.source.commit.slice(0, 12)} (${r.reproducibility === 'reproduced' ? 'reproduced' : 'not rebuilt'}, ${(r.durations.totalMs / 1000).toFixed(1)} s)`,
  ];
  if (r.mirror) lines.push(`  mirror snapshot ${r.mirror.snapshotId ?? '(unknown)'}, ${r.mirror.dependencies} blob${r.mirror.dependencies === 1 ? '' : 's'} used`);
  for (const a of r.artifacts) {
    lines.push(`  ${a.name}  sha256:${a.sha256}  ${a.size} bytes`);
    lines.push(`    provenance ${a.provenance.bundle ?? a.provenance.statement}${a.provenance.logIndex !== undefined ? `  (log index ${a.provenance.logIndex})` : ''}`);
    lines.push(`    sbom       ${a.sbom.bundle ?? a.sbom.statement}${a.sbom.logIndex !== undefined ? `  (log index ${a.sbom.logIndex})` : ''}`);
  }
  lines.push(`  verified: ${r.verified ? 'yes' : 'no'}; log: ${r.logs.build}`);
  return lines.join('\n');
}
