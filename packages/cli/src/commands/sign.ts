import { randomBytes } from 'node:crypto';
import { SLSA_PROVENANCE_V1 } from '@airlock/schemas';
import {
  closeSync,
  constants,
  copyFileSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { makeStatement, sha256Hex, type DigestSet } from '@airlock/core';
import type { AirlockSigner, SerializedBundle } from '@airlock/sign';
import { certificateIdentity, type CertificateIdentity } from '@airlock/verify';
import {
  contextExitCode,
  readJsonFile,
  resolveSigningContext,
  signingEndpointsOf,
  type SigningFlags,
} from '../context.js';
import { fail, info, printResult, UsageError, type OutputOptions } from '../output.js';

interface SignFlags extends SigningFlags, OutputOptions {
  bundle?: string;
  key?: string;
  force?: boolean;
}

type AttestFlags = SignFlags & { predicateType: string; predicate: string };

/** Default bundle names: distinct for sign and attest, so attesting a file never replaces its signature. */
export const DEFAULT_BUNDLE_SUFFIX = { sign: '.sigstore.json', attest: '.intoto.sigstore.json' } as const;

function addSigningOptions(cmd: Command, defaultSuffix: string): Command {
  return cmd
    .option('--data <dir>', 'trust plane data directory (uses its endpoints.json and embedded identity issuer)')
    .option('--fulcio-url <url>', 'Fulcio-compatible CA URL (overrides --data; not needed with --key)')
    .option('--rekor-url <url>', 'Rekor v1-compatible log URL (overrides --data)')
    .option('--tsa-url <url>', 'RFC 3161 timestamp authority URL (overrides --data)')
    .option('--no-timestamp', 'do not request an RFC 3161 timestamp (default: every bundle carries one)')
    .option('--identity-token <jwt>', 'OIDC identity token (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the OIDC identity token from a file')
    .option('--subject <spiffe-id>', 'SPIFFE ID to mint a token for with the embedded issuer')
    .option('--agent-socket <path>', 'get the token from the workload attestation agent (else $AIRLOCK_AGENT_SOCKET)')
    .option('--key <pem>', 'sign with this private key (ECDSA P-256 or Ed25519) instead of a certificate')
    .option('--bundle <file>', `where to write the Sigstore bundle (default: <FILE>${defaultSuffix})`)
    .option('--force', 'overwrite the bundle file if it exists (default: refuse)')
    .option('--json', 'machine-readable output on stdout')
    .option('-q, --quiet', 'no progress output');
}

async function makeSigner(flags: SignFlags): Promise<AirlockSigner> {
  // Loaded on use: sigstore's signer and its HTTP stack are not needed to register or to verify.
  const { AirlockSigner, KeySigner } = await import('@airlock/sign');
  const ctx = resolveSigningContext(flags, { keyBased: flags.key !== undefined });
  await ctx.preflight();
  if (flags.key) {
    return new AirlockSigner({
      ...signingEndpointsOf(ctx),
      keySigner: new KeySigner(readFileOrUsage(flags.key)),
    });
  }
  return new AirlockSigner({ ...signingEndpointsOf(ctx), identity: ctx.identity });
}

interface SignSummary {
  logIndex?: string;
  integratedTime?: string;
  /** Who a verifier must expect: the certificate's SAN and OIDC issuer, or the key hint for key-signed bundles. */
  signer: CertificateIdentity & { keyHint?: string };
  /** The `airlock verify` command line that verifies this bundle. */
  verifyCommand: string;
}

function summarize(
  file: string,
  out: string,
  bundle: SerializedBundle,
  flags: SignFlags,
  extra: string[],
): SignSummary {
  const e = bundle.verificationMaterial.tlogEntries[0];
  const vm = bundle.verificationMaterial;
  const signer: SignSummary['signer'] =
    'certificate' in vm && vm.certificate
      ? certificateIdentity(Buffer.from(vm.certificate.rawBytes, 'base64'))
      : 'publicKey' in vm && vm.publicKey
        ? { keyHint: vm.publicKey.hint ?? '' }
        : {};
  const trust = flags.data ? ['--data', flags.data] : ['--trusted-root', 'TRUSTED_ROOT.json'];
  const who =
    signer.subjectAlternativeName !== undefined
      ? ['--certificate-identity', signer.subjectAlternativeName, '--certificate-oidc-issuer', signer.issuer ?? '']
      : ['--key', 'PUBLIC_KEY.pem'];
  const verifyCommand = ['airlock', 'verify', file, '--bundle', out, ...trust, ...who, ...extra].map(shellWord);
  return {
    ...(e ? { logIndex: e.logIndex ?? '0', integratedTime: e.integratedTime } : {}),
    signer,
    verifyCommand: verifyCommand.join(' '),
  };
}

function humanSummary(verb: string, file: string, out: string, s: SignSummary): string {
  const lines = [`${verb} ${file}`, `  bundle:    ${out}`, `  log index: ${s.logIndex ?? '(not logged)'}`];
  if (s.signer.subjectAlternativeName !== undefined)
    lines.push(`  identity:  ${s.signer.subjectAlternativeName}`, `  issuer:    ${s.signer.issuer ?? '(none)'}`);
  else lines.push(`  key hint:  ${s.signer.keyHint ?? ''}`);
  lines.push('verify with:', `  ${s.verifyCommand}`);
  return lines.join('\n');
}

/** Quotes a word for a POSIX shell when it needs it. */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export function registerSignCommands(program: Command): void {
  addSigningOptions(
    program
      .command('sign')
      .description('sign a file through the CA and log; writes a Sigstore bundle v0.3 (message signature)')
      .argument('<file>', 'the file to sign'),
    DEFAULT_BUNDLE_SUFFIX.sign,
  ).action(async (file: string, flags: SignFlags) => {
    try {
      const data = readFileOrUsage(file);
      const out = flags.bundle ?? `${file}${DEFAULT_BUNDLE_SUFFIX.sign}`;
      const signer = await makeSigner(flags);
      const bundle = await withBundleOutput(out, flags.force === true, () => {
        info(flags, `signing ${file} (sha256:${sha256Hex(data)})…`);
        return signer.signBlob(data);
      });
      const s = summarize(file, out, bundle, flags, []);
      printResult(flags, { ok: true, file, sha256: sha256Hex(data), bundle: out, ...s }, () =>
        humanSummary('signed', file, out, s),
      );
    } catch (err) {
      fail(flags, err, contextExitCode(err));
    }
  });

  addSigningOptions(
    program
      .command('attest')
      .description('sign an in-toto Statement v1 about a file as DSSE (subject = the file, predicate from a JSON file)')
      .argument('<file>', 'the artifact the statement is about')
      .requiredOption('--predicate-type <uri>', `predicate type URI, e.g. ${SLSA_PROVENANCE_V1}`)
      .requiredOption('--predicate <file>', 'JSON file with the predicate'),
    DEFAULT_BUNDLE_SUFFIX.attest,
  ).action(async (file: string, flags: AttestFlags) => {
    try {
      const data = readFileOrUsage(file);
      const predicate = readJsonFile(flags.predicate, 'predicate');
      if (typeof predicate !== 'object' || predicate === null || Array.isArray(predicate))
        throw new UsageError('predicate must be a JSON object');
      const digest: DigestSet = { sha256: sha256Hex(data) };
      const statement = makeStatement(
        [{ name: basename(file), digest: digest as Record<string, string> }],
        flags.predicateType,
        predicate,
      );
      const out = flags.bundle ?? `${file}${DEFAULT_BUNDLE_SUFFIX.attest}`;
      const signer = await makeSigner(flags);
      const bundle = await withBundleOutput(out, flags.force === true, () => {
        info(flags, `attesting ${file} (${flags.predicateType})…`);
        return signer.attest(statement);
      });
      const s = summarize(file, out, bundle, flags, ['--predicate-type', flags.predicateType]);
      printResult(
        flags,
        { ok: true, file, sha256: digest.sha256, predicateType: flags.predicateType, bundle: out, ...s },
        () => humanSummary('attested', file, out, s),
      );
    } catch (err) {
      fail(flags, err, contextExitCode(err));
    }
  });
}

/**
 * Runs `sign` only once the bundle path is known to be writable, then writes its bundle there. Signing is
 * permanent (a certificate and a log entry), so everything cheap is checked first: the path is not a directory,
 * it does not exist unless `force`, and its directory takes a new file — proven by creating the temporary file
 * the bundle is written to, which then replaces the path (no-clobber without `force`).
 */
async function withBundleOutput(
  out: string,
  force: boolean,
  sign: () => Promise<SerializedBundle>,
): Promise<SerializedBundle> {
  const tmp = reserveBundlePath(out, force);
  let keep = false;
  try {
    const bundle = await sign();
    writeFileSync(tmp, JSON.stringify(bundle) + '\n');
    keep = true; // from here on the file holds a logged signature: never delete it
    publish(tmp, out, force);
    return bundle;
  } finally {
    if (!keep) unlinkSync(tmp);
  }
}

function reserveBundlePath(out: string, force: boolean): string {
  let existing: ReturnType<typeof statSync>;
  try {
    existing = statSync(out, { throwIfNoEntry: false });
  } catch (e) {
    throw new UsageError(`cannot write the bundle '${out}': ${errText(e)}`);
  }
  if (existing?.isDirectory()) throw new UsageError(`bundle path '${out}' is a directory`);
  if (existing && !force)
    throw new UsageError(`bundle '${out}' already exists: pass --force to overwrite it, or --bundle FILE`);
  const dir = dirname(out);
  const tmp = join(dir, `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    closeSync(openSync(tmp, 'wx', 0o644));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `directory '${dir}' does not exist` : errText(e);
    throw new UsageError(`cannot write the bundle '${out}': ${why}`);
  }
  return tmp;
}

function publish(tmp: string, out: string, force: boolean): void {
  if (force) return renameSync(tmp, out);
  try {
    linkSync(tmp, out); // fails with EEXIST if the path appeared meanwhile: never clobber without --force
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new UsageError(`bundle '${out}' appeared while signing; the new bundle is in '${tmp}'`);
    copyFileSync(tmp, out, constants.COPYFILE_EXCL); // file systems without hard links
  }
  unlinkSync(tmp);
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code} (${err.message.replace(/^[A-Z]+: /, '').replace(/, open .*$/, '')})` : String(e);
}

export function readFileOrUsage(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UsageError(`cannot read '${file}': ${(e as Error).message}`);
  }
}
