import type { Command } from 'commander';
import { EXIT, fail, info, printResult, type OutputOptions } from '../../output.js';
import { exitCodeFor } from './errors.js';
import { humanVerdict, verifyArtifactByPolicy, type ArtifactVerifyFlags, type PolicyRun } from './evaluate.js';
import { addVsaOptions, signVsa, type VsaSigningFlags } from './vsa.js';

type Flags = ArtifactVerifyFlags & VsaSigningFlags & OutputOptions;

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The policy inputs `verify artifact` and `report` share. */
export function addPolicyInputOptions(cmd: Command): Command {
  return cmd
    .option('--policy <file>', 'the release policy (YAML or JSON, schemas/policy.v1.schema.json)')
    .option('--bundle <file>', 'an attestation bundle (repeatable; default: the runner bundles beside FILE)', collect)
    .option('--trusted-root <file>', 'trusted_root.json (default: <--data>/trusted_root.json, else the policy)')
    .option('--data <dir>', 'trust plane data directory (its trusted_root.json; with --vsa, its CA and log)')
    .option('--mirror-store <dir>', 'a mirror store: dependencies must be in a snapshot signed by a sync authority')
    .option('--mirror <url>', 'a running mirror: its lookup API, each snapshot re-verified against the trusted root')
    .option('--snapshot <path>', 'a signed snapshot: transfer-bundle dir or manifest.json (repeatable)', collect)
    .option('--osv-dir <dir>', 'OSV advisory files (default: the policy’s advisories.osvDirectory)')
    .option('--source-uri <uri>', 'shortcut: the source repository URI (glob)')
    .option('--source-ref <ref>', 'shortcut: refs/heads/<branch> or refs/tags/<tag>')
    .option('--source-branch <branch>', 'shortcut: the branch built')
    .option('--source-tag <tag>', 'shortcut: the tag built (glob)')
    .option('--source-versioned-tag <vX[.Y[.Z]]>', 'shortcut: a semver tag within this version')
    .option('--builder-id <uri>', 'shortcut: the provenance builder.id')
    .option('--certificate-identity <san>', 'shortcut: exact signer identity of the attestations')
    .option('--certificate-identity-regexp <re>', 'shortcut: anchored regular expression for the signer identity')
    .option('--certificate-oidc-issuer <url>', 'shortcut: exact OIDC issuer of the signer')
    .option('--certificate-oidc-issuer-regexp <re>', 'shortcut: anchored regular expression for the issuer')
    .option('--predicate-type <uri>', 'shortcut: the attestation type required (default SLSA provenance v1)')
    .option('--max-age <duration>', 'shortcut: maximum provenance age, e.g. 30d, 12h')
    .option('--json', 'machine-readable output on stdout');
}

export function registerVerifyArtifact(verify: Command): void {
  addVsaOptions(
    addPolicyInputOptions(
      verify
        .command('artifact')
        .description('verify a file’s provenance, dependencies, SBOM and advisories against a release policy')
        .argument('<file>', 'the artifact'),
    ),
  ).action(async (file: string, flags: Flags) => {
    let run: PolicyRun;
    try {
      run = await verifyArtifactByPolicy(file, flags);
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
    await finishVerify(run, flags, { file });
  });
}

/** Signs the VSA when asked (PASS, or FAIL with --vsa-on-fail), prints the verdict, sets exit 0 PASS / 1 FAIL. */
export async function finishVerify(run: PolicyRun, flags: Flags, extra: Record<string, unknown>): Promise<void> {
  const v = run.verdict;
  let vsa: { path: string; logIndex?: string } | undefined;
  try {
    if (flags.vsa !== undefined && (v.result === 'PASS' || flags.vsaOnFail)) {
      info(flags, `signing the VSA (${v.result}) to ${flags.vsa}…`);
      vsa = await signVsa(run, flags);
    }
  } catch (err) {
    fail(flags, err, exitCodeFor(err));
  }
  const vsaLine = vsa
    ? [`  VSA:    ${vsa.path} (log index ${vsa.logIndex ?? '?'})`]
    : flags.vsa !== undefined
      ? [`  VSA:    not written (${v.result}; --vsa-on-fail writes one for a FAIL)`]
      : [];
  printResult(flags, { ok: v.result === 'PASS', ...extra, ...v, ...(vsa ? { vsa } : {}) }, () =>
    [humanVerdict(run), ...vsaLine].join('\n'),
  );
  process.exitCode = v.result === 'PASS' ? EXIT.OK : EXIT.FAILURE;
}
