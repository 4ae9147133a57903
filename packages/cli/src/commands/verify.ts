import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { BundleVerifier, type VerificationResult } from '@airlock/verify';
import { readJsonFile } from '../context.js';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { readFileOrUsage } from './sign.js';

interface VerifyFlags extends OutputOptions {
  bundle: string;
  trustedRoot?: string;
  data?: string;
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  key?: string;
  predicateType?: string;
  payloadType?: string;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('verify a Sigstore bundle for a file against a trusted root and an identity policy (or a key)')
    .argument('<file>', 'the artifact (for DSSE bundles: the in-toto subject)')
    .requiredOption('--bundle <file>', 'Sigstore bundle (JSON)')
    .option('--trusted-root <file>', 'trusted_root.json (default: <--data>/trusted_root.json)')
    .option('--data <dir>', 'trust plane data directory, for its trusted_root.json')
    .option('--certificate-identity <san>', 'exact expected signer identity (SPIFFE ID URI or email)')
    .option('--certificate-identity-regexp <re>', 'anchored regular expression for the signer identity')
    .option('--certificate-oidc-issuer <url>', 'exact expected OIDC issuer of the signer')
    .option('--key <pem>', 'verify a key-signed bundle with this public key instead of an identity')
    .option('--predicate-type <uri>', 'require this in-toto predicate type (DSSE bundles)')
    .option('--payload-type <type>', 'require this DSSE payload type', 'application/vnd.in-toto+json')
    .option('--json', 'machine-readable output on stdout')
    .action((file: string, flags: VerifyFlags) => {
      try {
        const result = verifyFile(file, flags);
        printResult(flags, { ok: true, file, ...summarizeResult(result) }, () => humanResult(file, result));
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      }
    });
}

export function verifyFile(file: string, flags: VerifyFlags): VerificationResult {
  const rootPath = flags.trustedRoot ?? (flags.data ? `${flags.data}/trusted_root.json` : undefined);
  if (!rootPath) throw new UsageError('--trusted-root (or --data) is required');
  if (
    !flags.key &&
    (!flags.certificateOidcIssuer || (!flags.certificateIdentity && !flags.certificateIdentityRegexp))
  ) {
    throw new UsageError(
      'give --certificate-identity (or --certificate-identity-regexp) and --certificate-oidc-issuer, or --key',
    );
  }
  const verifier = new BundleVerifier(
    readJsonFile(rootPath, 'trusted root'),
    flags.key ? { publicKeys: { '': readFileSync(flags.key, 'utf8') } } : {},
  );
  return verifier.verify(readJsonFile(flags.bundle, 'bundle'), {
    artifact: readFileOrUsage(file),
    ...(flags.key
      ? {}
      : {
          policy: {
            issuer: flags.certificateOidcIssuer!,
            ...(flags.certificateIdentity
              ? { subject: flags.certificateIdentity }
              : { subjectRegExp: flags.certificateIdentityRegexp! }),
          },
        }),
    ...(flags.predicateType ? { expectedPredicateType: flags.predicateType } : {}),
    ...(flags.payloadType ? { expectedPayloadType: flags.payloadType } : {}),
  });
}

export function summarizeResult(r: VerificationResult): Record<string, unknown> {
  return {
    content: r.content,
    signer: r.signer,
    certificate: r.certificate,
    tlogEntries: r.tlogEntries,
    ...(r.statement ? { predicateType: r.statement.predicateType, subjects: r.statement.subject } : {}),
  };
}

function humanResult(file: string, r: VerificationResult): string {
  const lines = [`verified ${file}`];
  if (r.signer.subjectAlternativeName)
    lines.push(`  signer:    ${r.signer.subjectAlternativeName}`, `  issuer:    ${r.signer.issuer ?? ''}`);
  else lines.push(`  key hint:  ${r.signer.keyHint ?? ''}`);
  for (const e of r.tlogEntries)
    lines.push(`  log entry: #${e.logIndex} at ${new Date(e.integratedTime * 1000).toISOString()} (${e.kind})`);
  if (r.statement) lines.push(`  statement: ${r.statement.predicateType}`);
  return lines.join('\n');
}
