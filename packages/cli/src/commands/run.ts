import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { hasErrorCode } from '@airlock/core';
import { parseImageReference, RegistryClient } from '@airlock/oci';
import { readX509SvidFile } from '@airlock/identity';
import { readEndpoints } from '@airlock/plane';
import {
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_PROVENANCE_V1,
  parsePolicy,
  readBundleFiles,
  verifyArtifactByPolicy,
  verifyImageByPolicy,
  type ImagePolicyRun,
  type LoadedPolicy,
  type PolicyRun,
} from '@airlock/policy';
import {
  EXIT_CODES,
  RunnerError,
  exitCodeFor,
  registryCredentialsFor,
  parseCores,
  parseCount,
  parseSize,
  runBuild,
  type ImageResult,
  type MirrorConfig,
  type RegistryOptions,
  type RunOptions,
  type ResourceLimitOptions,
  type RunResult,
} from '@airlock/runner';
import { AirlockSigner } from '@airlock/sign';
import {
  isAgentRefusal,
  readJsonFile,
  resolveSigningContext,
  signingEndpointsOf,
  type SigningFlags,
} from '../context.js';
import { fail, info, printResult, UsageError, type OutputOptions } from '../output.js';

interface RunFlags extends SigningFlags, OutputOptions {
  spec: string;
  out: string;
  builderId?: string;
  mirror: string[];
  mirrorSocket: string[];
  mirrorClientCert?: string;
  mirrorClientKey?: string;
  mirrorCa?: string;
  mirrorSvid?: string;
  passEnv: string[];
  sign: boolean;
  verify: boolean;
  workRoot?: string;
  keepWorkDir?: boolean;
  registryPlainHttp?: boolean;
  registryCa?: string;
  registry: string[];
  registryUsername?: string;
  registryPasswordFile?: string;
  memoryLimit?: string;
  pidsLimit?: string;
  cpuLimit?: string;
  diskLimit?: string;
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
    .description(
      'build an exact source commit hermetically (bwrap sandbox, mirror only), then write and sign SLSA provenance and a CycloneDX SBOM per output',
    )
    .requiredOption('--spec <file>', 'build spec (JSON or YAML, schemas/build-spec.v1.schema.json)')
    .option('--out <dir>', 'output directory for artifacts, attestations and logs (must be empty)', 'airlock-out')
    .option('--data <dir>', 'trust plane data directory: its CA, log, embedded identity issuer and trusted root')
    .option('--fulcio-url <url>', 'Fulcio-compatible CA URL (overrides --data)')
    .option('--rekor-url <url>', 'Rekor v1-compatible log URL (overrides --data)')
    .option('--tsa-url <url>', 'RFC 3161 timestamp authority URL (overrides --data)')
    .option('--no-timestamp', 'do not request RFC 3161 timestamps for the attestations (default: every bundle has one)')
    .option('--identity-token <jwt>', 'OIDC token of this runner (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the runner OIDC token from a file')
    .option(
      '--subject <spiffe-id>',
      `SPIFFE ID the embedded issuer mints for (default spiffe://<trust domain>/${RUNNER_SUBJECT})`,
    )
    .option(
      '--agent-socket <path>',
      'get the token from the workload attestation agent (else $AIRLOCK_AGENT_SOCKET); --subject then picks the ID',
    )
    .option('--builder-id <uri>', 'SLSA runDetails.builder.id (default: the runner SPIFFE ID)')
    .option(
      '--mirror <[name=]url>',
      "an approved mirror (http://host:port[/path]); repeatable; a spec's `mirror` may only select one of these (by name or exact URL), else the first is used",
      collect,
      [],
    )
    .option(
      '--mirror-socket <[name=]path>',
      'an approved mirror as a UNIX socket (no TCP port needed on the host); repeatable',
      collect,
      [],
    )
    .option('--mirror-client-cert <pem>', "client certificate chain (the runner's X509-SVID) for an https:// mirror")
    .option('--mirror-client-key <pem>', 'private key for --mirror-client-cert')
    .option('--mirror-ca <pem>', "trust bundle for the https:// mirror's server certificate")
    .option(
      '--mirror-svid <file>',
      "the runner's X509-SVID as a Workload-API-shaped JSON file (spiffe_id, x509_svid, x509_svid_key, bundle; base64 DER)",
    )
    .option(
      '--pass-env <name>',
      "let the spec's env pass this credential-like variable (…TOKEN…, …SECRET…, …PASSWORD…, …KEY…, AWS_*, SIGSTORE_*, ACTIONS_*); repeatable; SIGSTORE_ID_TOKEN never passes",
      collect,
      [],
    )
    .option('--no-sign', 'write unsigned provenance and SBOM statements only')
    .option('--no-verify', 'skip verifying the written bundles against the trusted root')
    .option('--work-root <dir>', 'where the scratch directory is made (default: the OS temp dir)')
    .option('--keep-work-dir', 'keep the scratch directory (debugging)')
    .option(
      '--registry <host[:port]>',
      "a registry the spec's image may be pushed to; repeatable; when given, image.repository must name one of them, and --registry-username credentials go to these only",
      collect,
      [],
    )
    .option('--registry-plain-http', "push the spec's OCI image over plain HTTP (loopback or lab registries)")
    .option(
      '--registry-ca <pem>',
      'PEM file of the CA certificate(s) trusted for the registry (instead of the system store)',
    )
    .option(
      '--registry-username <user>',
      'registry user for HTTP Basic auth (with --registry-password-file and --registry)',
    )
    .option('--registry-password-file <file>', 'file holding the registry password')
    .option('--memory-limit <size>', 'memory of each build sandbox, page cache included (default 8G)')
    .option('--pids-limit <n>', 'processes and threads alive at once in each build sandbox (default 4096)')
    .option('--cpu-limit <cores>', 'CPU bandwidth of each build sandbox in cores, e.g. 2 or 0.5 (default: all)')
    .option('--disk-limit <size>', 'bytes a build may hold in its writable directories (default 20G)')
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
        'The spec is input, the flags are policy: a spec may only select one of the --mirror/--mirror-socket mirrors',
        '(by name or exact URL), pass credential-like variables only when --pass-env names them (the runner token',
        'never), and push an image only to a --registry host (when given); anything else is a spec error (exit 2).',
        '',
        'With `image` in the spec the outputs are also pushed as a reproducible OCI image, with a cosign signature,',
        'the provenance and SBOM as cosign attestations and Sigstore bundles as referrers; unless --no-verify, they',
        'are read back from the registry and verified.',
        '',
        'Exit codes: 0 ok, 1 internal error, 2 spec error, 3 a tool, the mirror or the registry is unavailable,',
        '10 build failed, 11 hermeticity violation, 12 not reproducible, 13 signing failed, 14 builder not',
        'implemented, 15 image push refused, 16 a resource limit (memory, pids, disk) was exceeded.',
        '',
        "Each build runs in its own cgroup (v2, or the v1 memory/pids/cpu hierarchies) below the runner's, with",
        'the limits above; where no cgroup is writable it says so once and falls back to rlimits (prlimit).',
        '',
        'Example:',
        '  airlock up --data plane &',
        '  airlock run --spec build.yaml --out out --data plane --mirror http://127.0.0.1:4873',
        '  airlock run --spec build.yaml --data plane --mirror lab=http://10.0.0.5:4873 --mirror-socket local=/run/mirror.sock',
      ].join('\n'),
    )
    .action(async (flags: RunFlags) => {
      try {
        const result = await runCommand(flags);
        printResult(flags, { ok: true, ...result }, () => humanSummary(result));
      } catch (err) {
        fail(flags, err, err instanceof UsageError || isAgentRefusal(err) ? EXIT_CODES.SPEC_ERROR : exitCodeFor(err));
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
  image?: RunImageSummary;
  verified: boolean;
  logs: { build: string; rebuild?: string };
  durations: RunResult['durations'];
}

/** The pushed image as the summary reports it. */
export interface RunImageSummary {
  reference: string;
  digest: string;
  tags: string[];
  signature?: { tag: string; manifestDigest: string };
  attestations?: { tag: string; manifestDigest: string };
  referrers: { kind: string; digest: string }[];
  referrersIndex?: { tag: string; digest?: string };
  metadata: string;
  verified: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `[name=]value`: a name is letters, digits, `.`, `_`, `-` before the first `=` (a URL's scheme has a `:`). */
function splitNamed(value: string): { name?: string; value: string } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$/.exec(value);
  return m ? { name: m[1]!, value: m[2]! } : { value };
}

/**
 * The operator's mirrors. One unnamed --mirror-socket with one unnamed --mirror is a single mirror (the socket,
 * with the URL's path prefix), as before; otherwise each flag is a mirror of its own, sockets first.
 */
function mirrorOptions(flags: RunFlags): Pick<RunOptions, 'mirrorUrl' | 'mirrorUnixSocket' | 'mirrors'> {
  const urls = flags.mirror.map(splitNamed);
  const sockets = flags.mirrorSocket.map(splitNamed);
  for (const u of urls)
    if (!/^(https?:\/\/|unix:\/)/.test(u.value))
      throw new UsageError(`--mirror ${u.value}: expected http(s)://host:port[/path] (or unix:/path)`);
  const single = urls.length <= 1 && sockets.length <= 1 && [...urls, ...sockets].every((m) => m.name === undefined);
  if (single)
    return {
      ...(urls[0] ? { mirrorUrl: urls[0].value } : {}),
      ...(sockets[0] ? { mirrorUnixSocket: sockets[0].value } : {}),
    };
  const mirrors: MirrorConfig[] = [
    ...sockets.map((m) => ({ ...(m.name ? { name: m.name } : {}), unixSocket: m.value })),
    ...urls.map((m) =>
      m.value.startsWith('unix:')
        ? { ...(m.name ? { name: m.name } : {}), unixSocket: m.value.slice('unix:'.length) }
        : { ...(m.name ? { name: m.name } : {}), url: m.value },
    ),
  ];
  return { mirrors };
}

/** The bridge's client certificate for an https:// mirror: cert + key files, or an SVID file (operator flags only). */
function mirrorClientTls(flags: RunFlags): Pick<RunOptions, 'mirrorClientTls'> {
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch {
      throw new UsageError(`${flag} ${file}: cannot read the file`);
    }
  };
  if (flags.mirrorSvid !== undefined) {
    if (flags.mirrorClientCert || flags.mirrorClientKey)
      throw new UsageError('--mirror-svid replaces --mirror-client-cert/--mirror-client-key');
    let svid: ReturnType<typeof readX509SvidFile>;
    try {
      svid = readX509SvidFile(flags.mirrorSvid);
    } catch (err) {
      throw new UsageError(`--mirror-svid: ${(err as Error).message}`);
    }
    const ca = flags.mirrorCa ? read('--mirror-ca', flags.mirrorCa) : svid.bundlePem;
    return { mirrorClientTls: { cert: svid.certChainPem, key: svid.keyPem, ca } };
  }
  if (!flags.mirrorClientCert && !flags.mirrorClientKey) return {};
  if (!flags.mirrorClientCert || !flags.mirrorClientKey)
    throw new UsageError('--mirror-client-cert and --mirror-client-key go together');
  return {
    mirrorClientTls: {
      cert: read('--mirror-client-cert', flags.mirrorClientCert),
      key: read('--mirror-client-key', flags.mirrorClientKey),
      ...(flags.mirrorCa ? { ca: read('--mirror-ca', flags.mirrorCa) } : {}),
    },
  };
}

/** The runner's own identity token, wherever it came from: never visible to a build under any name. */
function identityTokenValues(flags: RunFlags): string[] {
  const values = [flags.identityToken, process.env.SIGSTORE_ID_TOKEN];
  if (flags.identityTokenFile !== undefined) {
    try {
      values.push(readFileSync(flags.identityTokenFile, 'utf8').trim());
    } catch {
      // resolveSigningContext reports an unreadable file when signing needs it
    }
  }
  return values.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim());
}

/** The operator's resource limits (flags only: the spec cannot raise them). */
function limitOptions(flags: RunFlags): ResourceLimitOptions {
  const parse = <T>(value: string | undefined, flag: string, fn: (v: string, what: string) => T): T | undefined => {
    if (value === undefined) return undefined;
    try {
      return fn(value, flag);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  const memoryBytes = parse(flags.memoryLimit, '--memory-limit', parseSize);
  const pids = parse(flags.pidsLimit, '--pids-limit', parseCount);
  const cpuCores = parse(flags.cpuLimit, '--cpu-limit', parseCores);
  const diskBytes = parse(flags.diskLimit, '--disk-limit', parseSize);
  return {
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(pids !== undefined ? { pids } : {}),
    ...(cpuCores !== undefined ? { cpuCores } : {}),
    ...(diskBytes !== undefined ? { diskBytes } : {}),
  };
}

function registryOptions(flags: RunFlags): RegistryOptions {
  if (flags.registryUsername !== undefined && flags.registryPasswordFile === undefined)
    throw new UsageError('--registry-username needs --registry-password-file');
  if (flags.registryPasswordFile !== undefined && flags.registryUsername === undefined)
    throw new UsageError('--registry-password-file needs --registry-username');
  if (flags.registryUsername !== undefined && flags.registry.length === 0)
    throw new UsageError(
      '--registry-username needs --registry HOST[:PORT]: credentials go to the registries named there only',
    );
  for (const h of flags.registry)
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(h))
      throw new UsageError(`--registry ${h}: expected HOST[:PORT]`);
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${what} '${path}': ${(e as Error).message}`);
    }
  };
  return {
    ...(flags.registry.length > 0 ? { hosts: flags.registry } : {}),
    ...(flags.registryPlainHttp ? { plainHttp: true } : {}),
    ...(flags.registryCa !== undefined ? { caCertPem: read(flags.registryCa, 'registry CA certificate') } : {}),
    ...(flags.registryUsername !== undefined
      ? {
          username: flags.registryUsername,
          password: read(flags.registryPasswordFile!, 'registry password file').replace(/\r?\n$/, ''),
        }
      : {}),
  };
}

async function runCommand(flags: RunFlags): Promise<RunCommandResult> {
  const limits = limitOptions(flags);
  const endpoints = flags.data ? readEndpoints(flags.data) : undefined;
  const subject = flags.subject ?? (endpoints ? `spiffe://${endpoints.trustDomain}/${RUNNER_SUBJECT}` : undefined);
  const builderId = flags.builderId ?? subject ?? `https://airlock.dev/runners/${hostname()}`;
  let signer: AirlockSigner | undefined;
  if (flags.sign) {
    const ctx = resolveSigningContext({ ...flags, ...(subject ? { subject } : {}) });
    await ctx.preflight();
    signer = new AirlockSigner({ ...signingEndpointsOf(ctx), identity: ctx.identity });
  }
  const registry = registryOptions(flags);
  const started = Date.now();
  const result = await runBuild(flags.spec, {
    outDir: flags.out,
    builderId,
    ...(signer ? { signer } : {}),
    ...mirrorOptions(flags),
    ...mirrorClientTls(flags),
    passEnv: flags.passEnv,
    withheldValues: identityTokenValues(flags),
    ...(flags.workRoot ? { workRoot: flags.workRoot } : {}),
    ...(flags.keepWorkDir ? { keepWorkDir: true } : {}),
    registry,
    limits,
    onProgress: (e) =>
      info(flags, `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${e.phase.padEnd(8)} ${e.message}`),
  });
  let verified = false;
  if (signer && flags.verify) {
    verified = await verifyOutputs(result, flags, endpoints?.identityIssuerUrl, subject);
    info(flags, `verified ${result.artifacts.length * 2} bundles against the trusted root`);
  }
  let imageVerified = false;
  if (result.image && result.image.signed && verified && endpoints && subject) {
    const n = await verifyImage(result.image, flags, registry, { issuer: endpoints.identityIssuerUrl, subject });
    imageVerified = true;
    info(
      flags,
      `verified the image's ${n} Sigstore bundles, its cosign signature and attestations, read back from ${result.image.registry}`,
    );
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
    ...(result.mirror
      ? {
          mirror: {
            ...(result.mirror.snapshotId ? { snapshotId: result.mirror.snapshotId } : {}),
            dependencies: result.mirror.dependencies.length,
          },
        }
      : {}),
    ...(result.image ? { image: imageSummary(result.image, imageVerified) } : {}),
    verified: verified && (result.image === undefined || imageVerified),
    logs: { build: result.logPath, ...(result.rebuildLogPath ? { rebuild: result.rebuildLogPath } : {}) },
    durations: result.durations,
  };
}

function bundleInfo(path: string | undefined): { bundle?: string; logIndex?: string } {
  if (!path) return {};
  const bundle = JSON.parse(readFileSync(path, 'utf8')) as {
    verificationMaterial?: { tlogEntries?: { logIndex?: string }[] };
  };
  const logIndex = bundle.verificationMaterial?.tlogEntries?.[0]?.logIndex;
  return { bundle: path, ...(logIndex !== undefined ? { logIndex } : {}) };
}

/**
 * Checks what was just written the way a release engineer will, through @airlock/policy: each output's provenance
 * and SBOM bundles against the trusted root, the artifact bytes and a policy requiring both, signed by this runner.
 * A runner that produces bundles its own verifiers refuse must not report success.
 */
async function verifyOutputs(
  result: RunResult,
  flags: RunFlags,
  issuer: string | undefined,
  subject: string | undefined,
): Promise<boolean> {
  if (!flags.data) {
    info(flags, 'not verifying the bundles: no --data (trusted root) given');
    return false;
  }
  if (!issuer || !subject) return false;
  const policy = runnerPolicy(subject, issuer);
  const trustedRoots = [readJsonFile(`${flags.data}/trusted_root.json`, 'trusted root')];
  for (const a of result.artifacts) {
    const paths = [a.provenanceBundlePath, a.sbomBundlePath].filter((p): p is string => p !== undefined);
    const run = await verifyArtifactByPolicy({
      policy,
      trustedRoots,
      artifact: { name: a.name, bytes: readFileSync(a.path) },
      resourceUri: a.path,
      bundles: readBundleFiles(paths),
    });
    if (run.verdict.result !== 'PASS')
      throw new RunnerError('RUNNER_SIGNING_FAILED', `the bundles of ${a.name} do not verify: ${failedRules(run)}`);
  }
  return true;
}

/** What `run` checks of its own outputs: provenance and SBOM present, each signed by this runner's identity. */
function runnerPolicy(subject: string, issuer: string): LoadedPolicy {
  const doc = {
    apiVersion: 'airlock.dev/policy/v1',
    name: 'airlock run: outputs signed by this runner',
    authorities: { runner: { keyless: { subject, issuer } } },
    attestations: [
      { predicateType: SLSA_PROVENANCE_V1, authorities: ['runner'] },
      { predicateType: CYCLONEDX_PREDICATE_TYPE, authorities: ['runner'] },
    ],
  };
  return parsePolicy(JSON.stringify(doc), 'airlock:run-verification');
}

function failedRules(run: PolicyRun): string {
  return run.verdict.rules
    .filter((r) => !r.passed)
    .map((r) => `${r.rule}: ${r.message}`)
    .join('; ');
}

function humanSummary(r: RunCommandResult): string {
  const lines = [
    `built ${r.source.repo}@${r.source.commit.slice(0, 12)} (${r.reproducibility === 'reproduced' ? 'reproduced' : 'not rebuilt'}, ${(r.durations.totalMs / 1000).toFixed(1)} s)`,
  ];
  if (r.mirror)
    lines.push(
      `  mirror snapshot ${r.mirror.snapshotId ?? '(unknown)'}, ${r.mirror.dependencies} blob${r.mirror.dependencies === 1 ? '' : 's'} used`,
    );
  for (const a of r.artifacts) {
    lines.push(`  ${a.name}  sha256:${a.sha256}  ${a.size} bytes`);
    lines.push(
      `    provenance ${a.provenance.bundle ?? a.provenance.statement}${a.provenance.logIndex !== undefined ? `  (log index ${a.provenance.logIndex})` : ''}`,
    );
    lines.push(
      `    sbom       ${a.sbom.bundle ?? a.sbom.statement}${a.sbom.logIndex !== undefined ? `  (log index ${a.sbom.logIndex})` : ''}`,
    );
  }
  if (r.image) {
    const i = r.image;
    lines.push(`  image ${i.reference}  (tag${i.tags.length === 1 ? '' : 's'} ${i.tags.join(', ')})`);
    if (i.signature) lines.push(`    signature   ${i.signature.tag}  ${i.signature.manifestDigest}`);
    if (i.attestations) lines.push(`    attestations ${i.attestations.tag}  ${i.attestations.manifestDigest}`);
    for (const ref of i.referrers) lines.push(`    referrer ${ref.kind.padEnd(10)} ${ref.digest}`);
    if (i.referrersIndex)
      lines.push(
        `    referrers index ${i.referrersIndex.tag}${i.referrersIndex.digest ? `  ${i.referrersIndex.digest}` : ''}`,
      );
    lines.push(`    ${i.metadata}${i.verified ? '; read back and verified' : ''}`);
  }
  lines.push(`  verified: ${r.verified ? 'yes' : 'no'}; log: ${r.logs.build}`);
  return lines.join('\n');
}

function imageSummary(i: ImageResult, verified: boolean): RunImageSummary {
  return {
    reference: i.reference,
    digest: i.digest,
    tags: i.tags,
    ...(i.signature ? { signature: { tag: i.signature.tag, manifestDigest: i.signature.manifestDigest } } : {}),
    ...(i.attestations
      ? { attestations: { tag: i.attestations.tag, manifestDigest: i.attestations.manifestDigest } }
      : {}),
    referrers: i.referrers.map((r) => ({ kind: r.kind, digest: r.digest })),
    ...(i.referrersIndex ? { referrersIndex: i.referrersIndex } : {}),
    metadata: i.metadataPath,
    verified,
  };
}

/**
 * Reads the image's signatures back from the registry, as a deployer would, through @airlock/policy's
 * verifyImageByPolicy: every tag points at the digest; every Sigstore bundle this run attached (referrers API or the
 * `sha256-<hex>` index) verifies against the trusted root and the image digest; provenance and SBOM are signed by
 * the runner; the cosign `.sig` is backed by the signature bundle (same signature and certificate, over the payload
 * it stores) and each `.att` envelope is a verified bundle's. Returns the number of bundles verified.
 */
async function verifyImage(
  image: ImageResult,
  flags: RunFlags,
  registry: RegistryOptions,
  identity: { issuer: string; subject: string },
): Promise<number> {
  const credentials = registryCredentialsFor(image.registry, registry);
  const client = new RegistryClient({
    url: image.registryUrl,
    ...(registry.caCertPem !== undefined ? { ca: registry.caCertPem } : {}),
    ...(credentials ? { auth: credentials } : {}),
  });
  let run: ImagePolicyRun;
  try {
    run = await verifyImageByPolicy({
      policy: runnerPolicy(identity.subject, identity.issuer),
      trustedRoots: [readJsonFile(`${flags.data}/trusted_root.json`, 'trusted root')],
      client,
      repository: parseImageReference(image.reference).repository,
      digest: image.digest,
      tags: image.tags,
    });
  } catch (cause) {
    const code = hasErrorCode(cause, 'POLICY_REGISTRY_UNAVAILABLE')
      ? 'RUNNER_REGISTRY_UNAVAILABLE'
      : hasErrorCode(cause, 'POLICY_IMAGE_NOT_FOUND')
        ? 'RUNNER_SIGNING_FAILED'
        : 'RUNNER_IMAGE_PUSH_FAILED';
    throw new RunnerError(code, `reading ${image.reference} back from the registry: ${(cause as Error).message}`, {
      cause,
    });
  }
  const fail = (what: string): never => {
    throw new RunnerError('RUNNER_SIGNING_FAILED', `the image ${image.reference}: ${what}`);
  };
  if (run.verdict.result !== 'PASS') fail(`its signatures do not verify: ${failedRules(run)}`);
  const used = new Set(run.verdict.inputAttestations.map((a) => a.uri));
  for (const r of image.referrers)
    if (!used.has(`${client.host}/${run.repository}@${r.digest}`))
      fail(`its ${r.kind} referrer ${r.digest} was not found and verified in the registry`);
  if (image.signature && run.cosign.signatures === 0) fail(`${image.signature.tag} holds no cosign signature`);
  if (image.attestations && run.cosign.attestations === 0) fail(`${image.attestations.tag} holds no attestation`);
  return image.referrers.length;
}
