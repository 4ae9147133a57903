import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseImageReference, RegistryClient } from '@airlock/oci';
import { PolicyError } from '@airlock/policy';
import { UsageError } from '../../output.js';

export interface RegistryFlags {
  registryPlainHttp?: boolean;
  registryCa?: string;
  registryUsername?: string;
  registryPasswordFile?: string;
}

/** The registry options `verify image`, `verify vsa REF` and `report REF` share. */
export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .option('--registry-plain-http', 'talk to the registry over plain HTTP (loopback or lab registries)')
    .option('--registry-ca <pem>', 'CA certificate(s) for the registry’s TLS')
    .option('--registry-username <user>', 'registry user for HTTP Basic auth (with --registry-password-file)')
    .option('--registry-password-file <file>', 'file holding the registry password');
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

/** True when the operand is no file on disk and names an image (`host[:port]/repo…`, with a registry). */
export function looksLikeImageRef(operand: string): boolean {
  if (existsSync(operand)) return false;
  try {
    return parseImageReference(operand).registry !== undefined;
  } catch {
    return false;
  }
}
