import type { Command } from 'commander';
import {
  BundleVerifier,
  parsePublicKeyPem,
  VerifyError,
  type IdentityPolicy,
  type VerificationResult,
} from '@airlock/verify';
import { readJsonFile } from '../context.js';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { readFileOrUsage } from './sign.js';
import { registerVerifyArtifact } from './verify/artifact.js';
import { registerVerifyImage } from './verify/image.js';
import { registerVerifyVsa } from './verify/vsa.js';

interface VerifyFlags extends OutputOptions {
  bundle?: string;
  trustedRoot?: string;
  data?: string;
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  certificateOidcIssuerRegexp?: string;
  key?: string;
  predicateType?: string;
  payloadType?: string;
  timestampThreshold?: string;
  ctlogThreshold?: string;
}

/**
 * `airlock verify FILE --bundle B` checks one signature and signer identity; `verify artifact|vsa` are subcommands.
 * Commander dispatches to a subcommand when the first operand names one, else runs this action. Positional options
 * (on the program, whose only options are --version/--help, and on `verify`) keep `verify`'s own options from
 * swallowing a subcommand's options of the same name (--trusted-root, --bundle, --json…); --bundle is checked in the
 * action because commander checks an ancestor's mandatory options for its subcommands too.
 */
export function registerVerifyCommand(program: Command): void {
  program.enablePositionalOptions();
  const verify = program
    .command('verify')
    .description(
      'verify a Sigstore bundle for a file (signature + identity); `verify artifact` / `verify vsa` check a policy / a VSA',
    )
    .enablePositionalOptions()
    .argument('<file>', 'the artifact (for DSSE bundles: the in-toto subject)')
    .option('--bundle <file>', 'Sigstore bundle (JSON), required')
    .option('--trusted-root <file>', 'trusted_root.json (default: <--data>/trusted_root.json)')
    .option('--data <dir>', 'trust plane data directory, for its trusted_root.json')
    .option('--certificate-identity <san>', 'exact expected signer identity (SPIFFE ID URI or email)')
    .option('--certificate-identity-regexp <re>', 'anchored regular expression for the signer identity')
    .option('--certificate-oidc-issuer <url>', 'exact expected OIDC issuer of the signer')
    .option('--certificate-oidc-issuer-regexp <re>', 'anchored regular expression for the OIDC issuer')
    .option('--key <pem>', 'verify a key-signed bundle with this public key instead of an identity')
    .option('--predicate-type <uri>', 'require this in-toto predicate type (DSSE bundles)')
    .option('--payload-type <type>', 'require this DSSE payload type', 'application/vnd.in-toto+json')
    .option(
      '--timestamp-threshold <n>',
      'minimum verified timestamps: RFC 3161 tokens from a trusted TSA plus v1 log integrated times (default 1; 0 with --key)',
    )
    .option(
      '--ctlog-threshold <n>',
      "minimum verified SCTs (RFC 6962) in the signing certificate from the trusted root's ctlogs (default 0)",
    )
    .option('--json', 'machine-readable output on stdout')
    .option('-q, --quiet', 'no progress output on stderr')
    .action((file: string, flags: VerifyFlags) => {
      try {
        if (flags.bundle === undefined) throw new UsageError("required option '--bundle <file>' not specified");
        const result = verifyFile(file, flags);
        printResult(flags, { ok: true, file, ...summarizeResult(result) }, () => humanResult(file, result));
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      }
    });
  registerVerifyArtifact(verify);
  registerVerifyImage(verify);
  registerVerifyVsa(verify);
}

export function verifyFile(file: string, flags: VerifyFlags): VerificationResult {
  const rootPath = flags.trustedRoot ?? (flags.data ? `${flags.data}/trusted_root.json` : undefined);
  if (!rootPath) throw new UsageError('--trusted-root (or --data) is required');
  const policy = flags.key === undefined ? policyFromFlags(flags) : undefined;
  if (flags.key !== undefined) refuseIdentityFlagsWithKey(flags);
  const threshold = parseTimestampThreshold(flags.timestampThreshold);
  const ctlogThreshold = parseThreshold('--ctlog-threshold', flags.ctlogThreshold);
  const verifier = new BundleVerifier(readJsonFile(rootPath, 'trusted root'), {
    ...(flags.key !== undefined ? { publicKeys: { '': readPublicKeyFile(flags.key) } } : {}),
    ...(threshold !== undefined ? { timestampThreshold: threshold } : {}),
    ...(ctlogThreshold !== undefined ? { ctlogThreshold } : {}),
  });
  return verifier.verify(readJsonFile(flags.bundle ?? '', 'bundle'), {
    artifact: readFileOrUsage(file),
    ...(policy ? { policy } : {}),
    ...(flags.predicateType ? { expectedPredicateType: flags.predicateType } : {}),
    ...(flags.payloadType ? { expectedPayloadType: flags.payloadType } : {}),
  });
}

/** `--timestamp-threshold`: a non-negative integer (a usage error otherwise). */
export function parseTimestampThreshold(value: string | undefined): number | undefined {
  return parseThreshold('--timestamp-threshold', value);
}

/** A threshold flag: a non-negative integer (a usage error otherwise). */
function parseThreshold(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,3}$/.test(value)) throw new UsageError(`${flag} must be a non-negative integer, not '${value}'`);
  return Number(value);
}

/** The identity policy the flags describe: one identity form and one issuer form, valid regular expressions. */
function policyFromFlags(flags: VerifyFlags): IdentityPolicy {
  const identity = oneOf(flags.certificateIdentity, flags.certificateIdentityRegexp, '--certificate-identity');
  const issuer = oneOf(flags.certificateOidcIssuer, flags.certificateOidcIssuerRegexp, '--certificate-oidc-issuer');
  if (!identity || !issuer) {
    throw new UsageError(
      'give --certificate-identity (or --certificate-identity-regexp) and --certificate-oidc-issuer ' +
        '(or --certificate-oidc-issuer-regexp), or --key',
    );
  }
  return {
    ...(identity.exact !== undefined ? { subject: identity.exact } : { subjectRegExp: identity.regexp! }),
    ...(issuer.exact !== undefined ? { issuer: issuer.exact } : { issuerRegExp: issuer.regexp! }),
  };
}

/** At most one of `--flag` and `--flag-regexp`; the expression must compile (it is anchored when used). */
function oneOf(
  exact: string | undefined,
  regexp: string | undefined,
  flag: string,
): { exact?: string; regexp?: string } | undefined {
  if (exact !== undefined && regexp !== undefined)
    throw new UsageError(`${flag} and ${flag}-regexp are mutually exclusive: give one`);
  if (regexp !== undefined) {
    try {
      new RegExp(`^(?:${regexp})$`);
    } catch (e) {
      throw new UsageError(`${flag}-regexp is not a valid regular expression: ${(e as Error).message}`);
    }
    return { regexp };
  }
  return exact !== undefined ? { exact } : undefined;
}

function refuseIdentityFlagsWithKey(flags: VerifyFlags): void {
  const given = (
    [
      ['--certificate-identity', flags.certificateIdentity],
      ['--certificate-identity-regexp', flags.certificateIdentityRegexp],
      ['--certificate-oidc-issuer', flags.certificateOidcIssuer],
      ['--certificate-oidc-issuer-regexp', flags.certificateOidcIssuerRegexp],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (given.length > 0)
    throw new UsageError(`--key verifies key-signed bundles: it cannot be combined with ${given[0]![0]}`);
}

/** A `--key` file's text, checked to be a PEM public key (a usage error saying so, not an OpenSSL code). */
export function readPublicKeyFile(path: string): string {
  const pem = readFileOrUsage(path).toString('utf8');
  try {
    parsePublicKeyPem(pem);
  } catch (e) {
    if (e instanceof VerifyError) throw new UsageError(`--key '${path}': ${e.message}`);
    throw e;
  }
  return pem;
}

export function summarizeResult(r: VerificationResult): Record<string, unknown> {
  return {
    content: r.content,
    signer: r.signer,
    certificate: r.certificate,
    tlogEntries: r.tlogEntries,
    timestamps: r.timestamps,
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
  for (const t of r.timestamps.filter((x) => x.source === 'timestamp-authority'))
    lines.push(`  timestamp: ${t.time} (RFC 3161, trusted TSA)`);
  if (r.statement) lines.push(`  statement: ${r.statement.predicateType}`);
  return lines.join('\n');
}
