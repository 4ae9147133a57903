import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { makeStatement, sha256Hex, type DigestSet } from '@airlock/core';
import { AirlockSigner, KeySigner, type SerializedBundle } from '@airlock/sign';
import { basename } from 'node:path';
import { contextExitCode, readJsonFile, resolveSigningContext, type SigningFlags } from '../context.js';
import { fail, info, printResult, UsageError, type OutputOptions } from '../output.js';

interface SignFlags extends SigningFlags, OutputOptions {
  bundle?: string;
  key?: string;
}

function addSigningOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'trust plane data directory (uses its endpoints.json and embedded identity issuer)')
    .option('--fulcio-url <url>', 'Fulcio-compatible CA URL (overrides --data; not needed with --key)')
    .option('--rekor-url <url>', 'Rekor v1-compatible log URL (overrides --data)')
    .option('--identity-token <jwt>', 'OIDC identity token (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the OIDC identity token from a file')
    .option('--subject <spiffe-id>', 'SPIFFE ID to mint a token for with the embedded issuer')
    .option('--key <pem>', 'sign with this private key (ECDSA P-256 or Ed25519) instead of a certificate')
    .option('--bundle <file>', 'where to write the Sigstore bundle (default: <FILE>.sigstore.json)')
    .option('--json', 'machine-readable output on stdout')
    .option('-q, --quiet', 'no progress output');
}

function makeSigner(flags: SignFlags): AirlockSigner {
  const ctx = resolveSigningContext(flags, { keyBased: flags.key !== undefined });
  if (flags.key) {
    return new AirlockSigner({
      fulcioUrl: ctx.fulcioUrl,
      rekorUrl: ctx.rekorUrl,
      keySigner: new KeySigner(readFileSync(flags.key)),
    });
  }
  return new AirlockSigner({ fulcioUrl: ctx.fulcioUrl, rekorUrl: ctx.rekorUrl, identity: ctx.identity });
}

function summarize(bundle: SerializedBundle): { logIndex?: string; integratedTime?: string } {
  const e = bundle.verificationMaterial.tlogEntries[0];
  return e ? { logIndex: e.logIndex ?? '0', integratedTime: e.integratedTime } : {};
}

export function registerSignCommands(program: Command): void {
  addSigningOptions(
    program
      .command('sign')
      .description('sign a file through the CA and log; writes a Sigstore bundle v0.3 (message signature)')
      .argument('<file>', 'the file to sign'),
  ).action(async (file: string, flags: SignFlags) => {
    try {
      const data = readFileOrUsage(file);
      info(flags, `signing ${file} (sha256:${sha256Hex(data)})…`);
      const bundle = await makeSigner(flags).signBlob(data);
      const out = flags.bundle ?? `${file}.sigstore.json`;
      writeFileSync(out, JSON.stringify(bundle) + '\n');
      const s = summarize(bundle);
      printResult(
        flags,
        { ok: true, file, sha256: sha256Hex(data), bundle: out, ...s },
        () => `signed ${file}\n  bundle:    ${out}\n  log index: ${s.logIndex ?? '(not logged)'}`,
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
      .requiredOption('--predicate-type <uri>', 'predicate type URI, e.g. https://slsa.dev/provenance/v1')
      .requiredOption('--predicate <file>', 'JSON file with the predicate'),
  ).action(async (file: string, flags: SignFlags & { predicateType: string; predicate: string }) => {
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
      info(flags, `attesting ${file} (${flags.predicateType})…`);
      const bundle = await makeSigner(flags).attest(statement);
      const out = flags.bundle ?? `${file}.sigstore.json`;
      writeFileSync(out, JSON.stringify(bundle) + '\n');
      const s = summarize(bundle);
      printResult(
        flags,
        { ok: true, file, sha256: digest.sha256, predicateType: flags.predicateType, bundle: out, ...s },
        () => `attested ${file}\n  bundle:    ${out}\n  log index: ${s.logIndex ?? '(not logged)'}`,
      );
    } catch (err) {
      fail(flags, err, contextExitCode(err));
    }
  });
}

export function readFileOrUsage(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UsageError(`cannot read '${file}': ${(e as Error).message}`);
  }
}
