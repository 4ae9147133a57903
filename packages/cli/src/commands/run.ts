import type { Command } from 'commander';
import type { RunFlags } from './run-action.js';

export type { RunArtifactSummary, RunCommandResult, RunImageSummary } from './run-action.js';

export const RUNNER_SUBJECT = 'airlock/runner';

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
    .option(
      '--reference-values <file>',
      "bind the build to the agent's TPM-attested node before dispatch: a quote by the attested AK over sha256(invocation id, spec digest), verified against these reference value sets (JSON array), recorded in provenance; needs --agent-socket",
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
      "the runner's X509-SVID as a Workload-API-shaped JSON file (spiffe_id, x509_svid, x509_svid_key, bundle; base64 DER); " +
        'without it (and without --mirror-client-cert) an https:// mirror gets the SVID from --agent-socket',
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
        'implemented, 15 image push refused, 16 a resource limit (memory, pids, disk) was exceeded, 17 node',
        'attestation of the build failed (--reference-values; nothing was dispatched).',
        '',
        'With --reference-values the run first asks the identity agent (which attested this node with its TPM) for',
        'a quote over sha256(invocation id, spec digest) and verifies it: the AK and reference value set must be',
        "the ones in the agent token's node claims, the PCRs must match a given set. The quote goes into the",
        'provenance (internalParameters.nodeAttestation), where `requireAttestedBuilder` policies re-check it.',
        '',
        "Each build runs in its own cgroup (v2, or the v1 memory/pids/cpu hierarchies) below the runner's, with",
        'the limits above; where no cgroup is writable it says so once and falls back to rlimits (prlimit).',
        '',
        'Example:',
        '  airlock up --data plane &',
        '  airlock run --spec build.yaml --out out --data plane --mirror http://127.0.0.1:4873',
        '  airlock run --spec build.yaml --data plane --mirror lab=http://10.0.0.5:4873 --mirror-socket local=/run/mirror.sock',
        '  airlock run --spec build.yaml --data plane --agent-socket /run/airlock/agent.sock --reference-values rv.json --json',
      ].join('\n'),
    )
    // The runner, policy engine and signer load only when a build runs, not to register `run` or print help.
    .action(async (flags: RunFlags) => (await import('./run-action.js')).runAction(flags));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
