import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { sha256Hex } from '@airlock/core';
import { readEndpoints } from '@airlock/plane';
import {
  buildVsa,
  checkImageVsa,
  checkVsaBundle,
  resolveImageDigest,
  type CheckedVsa,
  type PolicyRun,
} from '@airlock/policy';
import type { AirlockSigner, SerializedBundle } from '@airlock/sign';
import { BundleVerifier, type IdentityPolicy } from '@airlock/verify';
import { readJsonFile, resolveSigningContext, signingEndpointsOf, type SigningFlags } from '../../context.js';
import { VERSION } from '../../program-base.js';
import { fail, printResult, UsageError, type OutputOptions } from '../../output.js';
import { exitCodeFor } from './errors.js';
import { addRegistryOptions, looksLikeImageRef, registryClientFor, type RegistryFlags } from './registry.js';

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
  const { AirlockSigner } = await import('@airlock/sign');
  const signer = new AirlockSigner({ ...signingEndpointsOf(ctx), identity: ctx.identity });
  return writeSignedVsa(run, { signer, verifierId, out, ...(flags.force ? { force: true } : {}) });
}

/** Builds the VSA of a verdict, signs it (DSSE, logged) with `signer`, writes the bundle to `out` (never over a file unless `force`). */
export async function writeSignedVsa(
  run: PolicyRun,
  o: { signer: AirlockSigner; verifierId: string; out: string; force?: boolean },
): Promise<{ path: string; logIndex?: string }> {
  const statement = buildVsa({
    verdict: run.verdict,
    verifier: { id: o.verifierId, version: { '@airlock/cli': VERSION } },
    resourceUri: run.resourceUri,
    subjectName: run.artifact.name,
  });
  const bundle: SerializedBundle = await o.signer.attest(statement);
  try {
    writeFileSync(o.out, `${JSON.stringify(bundle, null, 2)}\n`, { flag: o.force ? 'w' : 'wx' });
  } catch (err) {
    throw new UsageError(`cannot write the VSA to '${o.out}': ${(err as Error).message} (use --force to overwrite)`);
  }
  const e = bundle.verificationMaterial.tlogEntries[0];
  return { path: o.out, ...(e?.logIndex !== undefined ? { logIndex: e.logIndex } : {}) };
}

function defaultVerifierSubject(flags: VsaSigningFlags): string | undefined {
  if (!flags.data) return undefined;
  return `spiffe://${readEndpoints(flags.data).trustDomain}/airlock/verifier`;
}

interface VerifyVsaFlags extends OutputOptions, RegistryFlags {
  bundle?: string;
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
  addRegistryOptions(
    verify
      .command('vsa')
      .description(
        'check a signed SLSA VSA for a file or an image: one signature, the digest, the policy digest, PASSED',
      )
      .argument('<file|ref>', 'the artifact, or an image host[:port]/repository(:tag|@sha256:…) (tags resolved)')
      .option('--bundle <file>', 'the VSA Sigstore bundle (required for a file; for an image: else its referrers)')
      .requiredOption('--policy-digest <sha256>', 'sha256 of the policy file the VSA must have been issued under')
      .option('--verifier-identity <san>', "the verifier's exact signing identity")
      .option('--verifier-identity-regexp <re>', "anchored regular expression for the verifier's identity")
      .option('--verifier-issuer <url>', "the verifier's exact OIDC issuer")
      .option('--verifier-issuer-regexp <re>', "anchored regular expression for the verifier's OIDC issuer")
      .option('--verifier-id <uri>', 'the verifier.id the VSA must name (default: --verifier-identity)')
      .option('--minimum-level <level>', 'a level the VSA must claim at least, e.g. SLSA_BUILD_LEVEL_3')
      .option('--trusted-root <file>', 'trusted_root.json (default: <--data>/trusted_root.json)')
      .option('--data <dir>', 'trust plane data directory, for its trusted_root.json')
      .option('--json', 'machine-readable output on stdout'),
  ).action(async (operand: string, flags: VerifyVsaFlags) => {
    try {
      const r = await verifyVsaOperand(operand, flags);
      const key = r.image ? 'image' : 'file';
      printResult(flags, { ok: true, [key]: r.image ?? operand, ...r.checked, sha256: r.sha256 }, () =>
        [
          `verified VSA for ${r.image ?? operand}`,
          `  vsa:      ${r.checked.uri}`,
          `  verifier: ${r.checked.predicate.verifier.id} (signed by ${r.checked.signer})`,
          `  result:   ${r.checked.predicate.verificationResult} ${r.checked.predicate.verifiedLevels.join(', ')}`,
          `  policy:   ${r.checked.predicate.policy.uri} (sha256:${r.checked.predicate.policy.digest.sha256})`,
          `  verified: ${r.checked.predicate.timeVerified}`,
        ].join('\n'),
      );
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
  });
}

/**
 * A file's VSA (--bundle), or an image's: the tag resolved to its digest first, the VSA from --bundle or else from
 * the image's Sigstore referrers (the first that passes).
 */
async function verifyVsaOperand(
  operand: string,
  flags: VerifyVsaFlags,
): Promise<{ sha256: string; image?: string; checked: CheckedVsa }> {
  const rootPath = flags.trustedRoot ?? (flags.data ? `${flags.data}/trusted_root.json` : undefined);
  if (!rootPath) throw new UsageError('--trusted-root (or --data) is required');
  if (!/^(sha256:)?[0-9a-f]{64}$/.test(flags.policyDigest))
    throw new UsageError(`--policy-digest '${flags.policyDigest}' is not sha256:<64 hex digits>`);
  const identity = identityOf(flags);
  const verifiers = [new BundleVerifier(readJsonFile(rootPath, 'trusted root'))];
  const expect = {
    policyDigest: flags.policyDigest,
    ...((flags.verifierId ?? flags.verifierIdentity)
      ? { verifierId: (flags.verifierId ?? flags.verifierIdentity)! }
      : {}),
    ...(flags.minimumLevel ? { minimumLevel: flags.minimumLevel } : {}),
  };
  if (looksLikeImageRef(operand)) {
    const client = registryClientFor(operand, flags);
    const target = await resolveImageDigest({ client, reference: operand });
    const image = `${client.host}/${target.repository}@${target.digest}`;
    const sha256 = target.digest.slice('sha256:'.length);
    const checked =
      flags.bundle !== undefined
        ? checkVsaBundle(readJsonFile(flags.bundle, 'VSA bundle'), flags.bundle, {
            verifiers,
            identity,
            expect: { ...expect, subjectDigest: { sha256 } },
          })
        : await checkImageVsa({ client, ...target }, { verifiers, identity, expect });
    return { sha256, image, checked };
  }
  if (flags.bundle === undefined) throw new UsageError("required option '--bundle <file>' not specified");
  let bytes: Buffer;
  try {
    bytes = readFileSync(operand);
  } catch (err) {
    throw new UsageError(`cannot read '${operand}': ${(err as Error).message}`);
  }
  const sha256 = sha256Hex(bytes);
  const checked = checkVsaBundle(readJsonFile(flags.bundle, 'VSA bundle'), flags.bundle, {
    verifiers,
    identity,
    expect: { ...expect, subjectDigest: { sha256 } },
  });
  return { sha256, checked };
}

function identityOf(flags: VerifyVsaFlags): IdentityPolicy {
  const identity = flags.verifierIdentity ?? flags.verifierIdentityRegexp;
  const issuer = flags.verifierIssuer ?? flags.verifierIssuerRegexp;
  if (identity === undefined || issuer === undefined)
    throw new UsageError('give --verifier-identity[-regexp] and --verifier-issuer[-regexp]');
  return {
    ...(flags.verifierIdentity !== undefined
      ? { subject: flags.verifierIdentity }
      : { subjectRegExp: flags.verifierIdentityRegexp! }),
    ...(flags.verifierIssuer !== undefined
      ? { issuer: flags.verifierIssuer }
      : { issuerRegExp: flags.verifierIssuerRegexp! }),
  };
}
