import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { sha256Hex } from '@airlock/core';
import { readEndpoints } from '@airlock/plane';
import { buildVsa, checkVsa, SLSA_VSA_V1, type VsaPredicate } from '@airlock/policy';
import { AirlockSigner, type SerializedBundle } from '@airlock/sign';
import { BundleVerifier, type VerificationResult } from '@airlock/verify';
import { readJsonFile, resolveSigningContext, type SigningFlags } from '../../context.js';
import { VERSION } from '../../program.js';
import { fail, printResult, UsageError, type OutputOptions } from '../../output.js';
import { exitCodeFor } from './errors.js';
import type { PolicyRun } from './evaluate.js';

export interface VsaSigningFlags extends SigningFlags {
  vsa?: string;
  vsaOnFail?: boolean;
  verifierSubject?: string;
  verifierId?: string;
  force?: boolean;
}

/** The signing options of `verify artifact --vsa` (as `airlock attest` names them). */
export function addVsaOptions(cmd: Command): Command {
  return cmd
    .option('--vsa <file>', 'on PASS, write a signed SLSA VSA (Sigstore bundle) about the artifact here')
    .option('--vsa-on-fail', 'write the VSA on FAIL too (verificationResult FAILED)')
    .option('--fulcio-url <url>', 'CA URL for signing the VSA (overrides --data)')
    .option('--rekor-url <url>', 'transparency log URL for the VSA (overrides --data)')
    .option('--identity-token <jwt>', 'OIDC token of the verifier (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the verifier OIDC token from a file')
    .option('--verifier-subject <spiffe-id>', 'SPIFFE ID minted with --data (default spiffe://<td>/airlock/verifier)')
    .option('--verifier-id <uri>', "the VSA's verifier.id (default: the verifier's signing identity)")
    .option('--force', 'overwrite the VSA file if it exists');
}

/**
 * Signs the VSA of a verdict as the verifier's workload identity (DSSE, logged), writes the bundle, and returns its
 * path and log index. verifier.id is the identity it signs as, so a consumer checks one against the other.
 */
export async function signVsa(run: PolicyRun, flags: VsaSigningFlags): Promise<{ path: string; logIndex?: string }> {
  const out = flags.vsa!;
  const subject = flags.verifierSubject ?? defaultVerifierSubject(flags);
  const external = flags.identityToken ?? flags.identityTokenFile ?? process.env.SIGSTORE_ID_TOKEN;
  const verifierId = flags.verifierId ?? (external === undefined ? subject : undefined);
  if (verifierId === undefined)
    throw new UsageError('--verifier-id is required when the verifier signs with its own OIDC token');
  const ctx = resolveSigningContext({ ...flags, ...(subject ? { subject } : {}) });
  const statement = buildVsa({
    verdict: run.verdict,
    verifier: { id: verifierId, version: { '@airlock/cli': VERSION } },
    resourceUri: run.resourceUri,
    subjectName: run.artifact.name,
  });
  const signer = new AirlockSigner({ fulcioUrl: ctx.fulcioUrl, rekorUrl: ctx.rekorUrl, identity: ctx.identity });
  const bundle: SerializedBundle = await signer.attest(statement);
  try {
    writeFileSync(out, `${JSON.stringify(bundle, null, 2)}\n`, { flag: flags.force ? 'w' : 'wx' });
  } catch (err) {
    throw new UsageError(`cannot write the VSA to '${out}': ${(err as Error).message} (use --force to overwrite)`);
  }
  const e = bundle.verificationMaterial.tlogEntries[0];
  return { path: out, ...(e?.logIndex !== undefined ? { logIndex: e.logIndex } : {}) };
}

function defaultVerifierSubject(flags: VsaSigningFlags): string | undefined {
  if (!flags.data) return undefined;
  return `spiffe://${readEndpoints(flags.data).trustDomain}/airlock/verifier`;
}

interface VerifyVsaFlags extends OutputOptions {
  bundle: string;
  trustedRoot?: string;
  data?: string;
  verifierIdentity?: string;
  verifierIdentityRegexp?: string;
  verifierIssuer?: string;
  verifierIssuerRegexp?: string;
  verifierId?: string;
  policyDigest: string;
  minimumLevel?: string;
}

export function registerVerifyVsa(verify: Command): void {
  verify
    .command('vsa')
    .description('check a signed SLSA VSA for a file: one signature, the file digest, the policy digest, PASSED')
    .argument('<file>', 'the artifact the VSA must be about')
    .requiredOption('--bundle <file>', 'the VSA Sigstore bundle (written by `airlock verify artifact --vsa`)')
    .requiredOption('--policy-digest <sha256>', 'sha256 of the policy file the VSA must have been issued under')
    .option('--verifier-identity <san>', "the verifier's exact signing identity")
    .option('--verifier-identity-regexp <re>', "anchored regular expression for the verifier's identity")
    .option('--verifier-issuer <url>', "the verifier's exact OIDC issuer")
    .option('--verifier-issuer-regexp <re>', "anchored regular expression for the verifier's OIDC issuer")
    .option('--verifier-id <uri>', 'the verifier.id the VSA must name (default: --verifier-identity)')
    .option('--minimum-level <level>', 'a level the VSA must claim at least, e.g. SLSA_BUILD_LEVEL_3')
    .option('--trusted-root <file>', 'trusted_root.json (default: <--data>/trusted_root.json)')
    .option('--data <dir>', 'trust plane data directory, for its trusted_root.json')
    .option('--json', 'machine-readable output on stdout')
    .action((file: string, flags: VerifyVsaFlags) => {
      try {
        const r = verifyVsaFile(file, flags);
        printResult(flags, { ok: true, file, ...r }, () =>
          [
            `verified VSA for ${file}`,
            `  verifier: ${r.predicate.verifier.id} (signed by ${r.signer})`,
            `  result:   ${r.predicate.verificationResult} ${r.predicate.verifiedLevels.join(', ')}`,
            `  policy:   ${r.predicate.policy.uri} (sha256:${r.predicate.policy.digest.sha256})`,
            `  verified: ${r.predicate.timeVerified}`,
          ].join('\n'),
        );
      } catch (err) {
        fail(flags, err, exitCodeFor(err));
      }
    });
}

function verifyVsaFile(
  file: string,
  flags: VerifyVsaFlags,
): { sha256: string; signer: string; predicate: VsaPredicate; logIndex?: number } {
  const rootPath = flags.trustedRoot ?? (flags.data ? `${flags.data}/trusted_root.json` : undefined);
  if (!rootPath) throw new UsageError('--trusted-root (or --data) is required');
  if (!/^(sha256:)?[0-9a-f]{64}$/.test(flags.policyDigest))
    throw new UsageError(`--policy-digest '${flags.policyDigest}' is not sha256:<64 hex digits>`);
  const identity = flags.verifierIdentity ?? flags.verifierIdentityRegexp;
  const issuer = flags.verifierIssuer ?? flags.verifierIssuerRegexp;
  if (identity === undefined || issuer === undefined)
    throw new UsageError('give --verifier-identity[-regexp] and --verifier-issuer[-regexp]');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
  }
  const verifier = new BundleVerifier(readJsonFile(rootPath, 'trusted root'));
  const result: VerificationResult = verifier.verify(readJsonFile(flags.bundle, 'VSA bundle'), {
    artifact: bytes,
    expectedPredicateType: SLSA_VSA_V1,
    policy: {
      ...(flags.verifierIdentity !== undefined
        ? { subject: flags.verifierIdentity }
        : { subjectRegExp: flags.verifierIdentityRegexp! }),
      ...(flags.verifierIssuer !== undefined
        ? { issuer: flags.verifierIssuer }
        : { issuerRegExp: flags.verifierIssuerRegexp! }),
    },
  });
  const sha256 = sha256Hex(bytes);
  const predicate = checkVsa(result.statement, {
    subjectDigest: { sha256 },
    policyDigest: flags.policyDigest,
    verifierId: flags.verifierId ?? flags.verifierIdentity ?? result.signer.subjectAlternativeName ?? '',
    ...(flags.minimumLevel ? { minimumLevel: flags.minimumLevel } : {}),
  });
  const e = result.tlogEntries[0];
  return {
    sha256,
    signer: result.signer.subjectAlternativeName ?? '',
    predicate,
    ...(e ? { logIndex: e.logIndex } : {}),
  };
}
