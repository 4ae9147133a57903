import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseImageReference, RegistryClient } from '@airlock/oci';
import { PolicyError, verifyImageByPolicy, type ImagePolicyRun } from '@airlock/policy';
import { fail, UsageError, type OutputOptions } from '../../output.js';
import { addPolicyInputOptions, finishVerify } from './artifact.js';
import { exitCodeFor } from './errors.js';
import type { ArtifactVerifyFlags } from './evaluate.js';
import { policyContext } from './inputs.js';
import { addVsaOptions, type VsaSigningFlags } from './vsa.js';

export interface RegistryFlags {
  registryPlainHttp?: boolean;
  registryCa?: string;
  registryUsername?: string;
  registryPasswordFile?: string;
}

type Flags = ArtifactVerifyFlags & VsaSigningFlags & RegistryFlags & OutputOptions;

/** The registry options `verify image`, `verify vsa REF` and `report REF` share. */
export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .option('--registry-plain-http', 'talk to the registry over plain HTTP (loopback or lab registries)')
    .option('--registry-ca <pem>', 'CA certificate(s) for the registry’s TLS')
    .option('--registry-username <user>', 'registry user for HTTP Basic auth (with --registry-password-file)')
    .option('--registry-password-file <file>', 'file holding the registry password');
}

/**
 * `airlock verify image REF`: @airlock/policy's verifyImageByPolicy with the flags' policy, trusted root, snapshots
 * and a registry client for REF's host. The verdict, the JSON and the VSA are about the digest the tag resolved to.
 */
export function registerVerifyImage(verify: Command): void {
  addVsaOptions(
    addRegistryOptions(
      addPolicyInputOptions(
        verify
          .command('image')
          .description('verify an OCI image’s attestations (registry referrers) against a release policy')
          .argument('<ref>', 'host[:port]/repository(:tag|@sha256:…)'),
      ),
    ),
  ).action(async (ref: string, flags: Flags) => {
    let run: ImagePolicyRun;
    try {
      if (flags.bundle && flags.bundle.length > 0)
        throw new UsageError('verify image reads its bundles from the registry: --bundle is for files');
      run = await verifyImageRef(ref, flags);
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
    await finishVerify(run, flags, { image: run.resourceUri, cosignAttestations: run.cosign.attestations });
  });
}

export async function verifyImageRef(ref: string, flags: ArtifactVerifyFlags & RegistryFlags): Promise<ImagePolicyRun> {
  const ctx = policyContext(flags);
  return verifyImageByPolicy({ ...ctx, client: registryClientFor(ref, flags), reference: ref });
}

/** A client for the registry REF names, with the flags' TLS CA and credentials. */
export function registryClientFor(ref: string, flags: RegistryFlags): RegistryClient {
  let host: string | undefined;
  try {
    host = parseImageReference(ref).registry;
  } catch (cause) {
    throw new PolicyError('POLICY_INPUT_INVALID', (cause as Error).message, { cause });
  }
  if (!host) throw new UsageError(`'${ref}' names no registry (host[:port]/repository…)`);
  if ((flags.registryUsername === undefined) !== (flags.registryPasswordFile === undefined))
    throw new UsageError('--registry-username and --registry-password-file go together');
  const read = (p: string, what: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${what} '${p}': ${(err as Error).message}`);
    }
  };
  return new RegistryClient({
    url: `${flags.registryPlainHttp ? 'http' : 'https'}://${host}`,
    ...(flags.registryCa !== undefined ? { ca: read(flags.registryCa, 'registry CA') } : {}),
    ...(flags.registryUsername !== undefined
      ? {
          auth: {
            username: flags.registryUsername,
            password: read(flags.registryPasswordFile!, 'registry password').trim(),
          },
        }
      : {}),
  });
}

/** True when the operand names an image (`host[:port]/repo…` with a registry) rather than a file on disk. */
export function looksLikeImageRef(operand: string): boolean {
  try {
    return parseImageReference(operand).registry !== undefined;
  } catch {
    return false;
  }
}
