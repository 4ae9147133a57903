import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { hasErrorCode } from '@airlock/core';
import { parseImageReference, RegistryClient } from '@airlock/oci';
import { requestAgentX509Svid } from '@airlock/agent';
import { readX509SvidFile, x509SvidToPem } from '@airlock/identity';
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
import { agentNodeBinding } from './run-node-binding.js';
import { RUNNER_SUBJECT } from './run.js';

export interface RunFlags extends SigningFlags, OutputOptions {
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
  referenceValues?: string;
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

export async function runAction(flags: RunFlags): Promise<void> {
  try {
    const result = await runCommand(flags);
    printResult(flags, { ok: true, ...result }, () => humanSummary(result));
  } catch (err) {
    fail(flags, err, err instanceof UsageError || isAgentRefusal(err) ? EXIT_CODES.SPEC_ERROR : exitCodeFor(err));
  }
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
  /** The build quote verified before dispatch (--reference-values), as recorded in provenance. */
  nodeAttestation?: {
    quoteDigest: string;
    nonce: string;
    akName: string;
    referenceValues: { id: string; name?: string };
  };
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

/**
 * The bridge's client certificate for an https:// mirror: cert + key files, or an SVID file (operator flags only),
 * else, with an agent socket configured, the runner's X.509 SVID fetched from the attestation agent (the same
 * kernel-attested identity its tokens carry).
 */
async function mirrorClientTls(flags: RunFlags): Promise<Pick<RunOptions, 'mirrorClientTls'>> {
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
  if (!flags.mirrorClientCert && !flags.mirrorClientKey) return agentMirrorTls(flags, read);
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

/** An https:// mirror and an agent socket (flag or $AIRLOCK_AGENT_SOCKET): the bridge presents the agent's SVID. */
async function agentMirrorTls(
  flags: RunFlags,
  read: (flag: string, file: string) => Buffer,
): Promise<Pick<RunOptions, 'mirrorClientTls'>> {
  const socket = flags.agentSocket ?? process.env.AIRLOCK_AGENT_SOCKET;
  const https = flags.mirror.some((m) => splitNamed(m).value.startsWith('https:'));
  if (!socket || !https) return {};
  const svid = x509SvidToPem(
    await requestAgentX509Svid(socket, flags.subject !== undefined ? { subject: flags.subject } : {}),
  );
  const ca = flags.mirrorCa ? read('--mirror-ca', flags.mirrorCa) : svid.bundlePem;
  return { mirrorClientTls: { cert: svid.certChainPem, key: svid.keyPem, ca } };
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
  const nodeBinding = agentNodeBinding(
    flags.referenceValues,
    flags.agentSocket ?? process.env.AIRLOCK_AGENT_SOCKET,
    flags.subject ?? subject,
  );
  const started = Date.now();
  const result = await runBuild(flags.spec, {
    outDir: flags.out,
    builderId,
    ...(signer ? { signer } : {}),
    ...mirrorOptions(flags),
    ...(await mirrorClientTls(flags)),
    passEnv: flags.passEnv,
    withheldValues: identityTokenValues(flags),
    ...(flags.workRoot ? { workRoot: flags.workRoot } : {}),
    ...(flags.keepWorkDir ? { keepWorkDir: true } : {}),
    registry,
    limits,
    ...(nodeBinding ? { nodeBinding } : {}),
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
    ...(result.nodeAttestation ? { nodeAttestation: nodeAttestationSummary(result.nodeAttestation) } : {}),
    verified: verified && (result.image === undefined || imageVerified),
    logs: { build: result.logPath, ...(result.rebuildLogPath ? { rebuild: result.rebuildLogPath } : {}) },
    durations: result.durations,
  };
}

function nodeAttestationSummary(n: NonNullable<RunResult['nodeAttestation']>): RunCommandResult['nodeAttestation'] {
  const { id, name } = n.referenceValues;
  return {
    quoteDigest: n.quoteDigest,
    nonce: n.nonce,
    akName: n.akName,
    referenceValues: { id, ...(name !== undefined ? { name } : {}) },
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
  if (r.nodeAttestation)
    lines.push(
      `  node attested: quote ${r.nodeAttestation.quoteDigest} (AK ${r.nodeAttestation.akName.slice(0, 16)}…, reference values ${r.nodeAttestation.referenceValues.id})`,
    );
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
