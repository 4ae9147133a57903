import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseStatement } from '@airlock/core';
import { BundleVerifier } from '@airlock/verify';
import { readEndpoints } from '@airlock/plane';
import { readJsonFile } from '../context.js';
import { EXIT, fail, UsageError } from '../output.js';
import { readPublicKeyFile } from './verify.js';

/**
 * The sigstore-conformance CLI protocol (sigstore-conformance docs/cli_protocol.md): the exit status is the only
 * result. Endpoints come from --signing-config (SigningConfig v0.2 JSON: caUrls / rekorTlogUrls) or from the
 * plane in $AIRLOCK_DATA. The public-good instance (--staging, or no --trusted-root) is unreachable in here.
 */
function signingEndpoints(signingConfig?: string): { fulcioUrl: string; rekorUrl: string; tsaUrl?: string } {
  if (signingConfig) {
    const cfg = readJsonFile(signingConfig, 'signing config') as {
      caUrls?: Array<{ url?: string }>;
      rekorTlogUrls?: Array<{ url?: string; majorApiVersion?: number }>;
      tsaUrls?: Array<{ url?: string }>;
    };
    const tsaUrl = cfg.tsaUrls?.[0]?.url;
    const fulcioUrl = cfg.caUrls?.[0]?.url;
    const rekorUrl = cfg.rekorTlogUrls?.find((t) => (t.majorApiVersion ?? 1) === 1)?.url;
    if (!fulcioUrl || !rekorUrl)
      throw new UsageError(`signing config '${signingConfig}' names no CA URL or no Rekor v1 URL`);
    return { fulcioUrl, rekorUrl, ...(tsaUrl ? { tsaUrl } : {}) };
  }
  const data = process.env.AIRLOCK_DATA;
  if (!data) throw new UsageError('pass --signing-config or set AIRLOCK_DATA to a trust plane data directory');
  const e = readEndpoints(data);
  return { fulcioUrl: e.caUrl, rekorUrl: e.tlogUrl, ...(e.tsaUrl ? { tsaUrl: e.tsaUrl } : {}) };
}

export function registerConformanceCommands(program: Command): void {
  const conf = program
    .command('conformance')
    .description('sigstore-conformance compatible entry point (result by exit code)');
  conf
    .command('sign-bundle')
    .argument('<file>')
    .option('--staging', 'public staging instance (not reachable here: refused)')
    .option('--in-toto', 'FILE is an in-toto statement to sign as DSSE')
    .requiredOption('--identity-token <token>')
    .requiredOption('--bundle <file>')
    .option('--trusted-root <file>')
    .option('--signing-config <file>')
    .action(
      async (
        file: string,
        flags: { staging?: boolean; inToto?: boolean; identityToken: string; bundle: string; signingConfig?: string },
      ) => {
        try {
          if (flags.staging)
            throw new UsageError(
              '--staging needs the public Sigstore instance, which is not reachable inside the perimeter',
            );
          // The signer loads only to sign, not to register `conformance` (top-level --help, verify-bundle).
          const { AirlockSigner } = await import('@airlock/sign');
          const signer = new AirlockSigner({ ...signingEndpoints(flags.signingConfig), identity: flags.identityToken });
          const data = readFileSync(file);
          const bundle = flags.inToto ? await signer.attest(parseStatement(data)) : await signer.signBlob(data);
          writeFileSync(flags.bundle, JSON.stringify(bundle));
        } catch (err) {
          fail({}, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
        }
      },
    );
  conf
    .command('verify-bundle')
    .argument('<file-or-digest>')
    .option('--staging')
    .requiredOption('--bundle <file>')
    .option('--certificate-identity <identity>')
    .option('--certificate-oidc-issuer <url>')
    .option('--key <file>')
    .option('--trusted-root <file>')
    .action(
      (
        target: string,
        flags: {
          staging?: boolean;
          bundle: string;
          certificateIdentity?: string;
          certificateOidcIssuer?: string;
          key?: string;
          trustedRoot?: string;
        },
      ) => {
        try {
          if (flags.staging || !flags.trustedRoot)
            throw new UsageError('the public-good trusted root is not available offline: pass --trusted-root');
          const isDigest = /^sha256:[0-9a-f]{64}$/.test(target) && !existsSync(target);
          const verifier = new BundleVerifier(
            readJsonFile(flags.trustedRoot, 'trusted root'),
            flags.key ? { publicKeys: { '': readPublicKeyFile(flags.key) } } : {},
          );
          let policy;
          if (!flags.key) {
            if (!flags.certificateIdentity || !flags.certificateOidcIssuer)
              throw new UsageError('--certificate-identity and --certificate-oidc-issuer, or --key, are required');
            policy = { subject: flags.certificateIdentity, issuer: flags.certificateOidcIssuer };
          }
          verifier.verify(readJsonFile(flags.bundle, 'bundle'), {
            ...(isDigest
              ? { artifactDigest: { sha256: target.slice('sha256:'.length) } }
              : { artifact: readFileSync(target) }),
            ...(policy ? { policy } : {}),
          });
        } catch (err) {
          fail({}, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
        }
      },
    );
}
