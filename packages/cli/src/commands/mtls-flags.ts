import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ServiceTls } from '@airlock/core';
import { UsageError } from '../output.js';

/** `--tls-cert/--tls-key/--client-ca/--allow-spiffe-id`: a service's mTLS with SPIFFE X509-SVIDs (operator flags). */
export interface MtlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  allowSpiffeId?: string[];
}

export function addMtlsOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate (chain)')
    .option('--tls-key <pem>', 'private key for --tls-cert')
    .option('--client-ca <pem>', `require an X509-SVID from this trust bundle for ${what} (mTLS)`)
    .option(
      '--allow-spiffe-id <id>',
      'with --client-ca: only this SPIFFE ID (exact, or anchored ^…$ pattern; repeatable)',
      (v: string, acc: string[] = []) => [...acc, v],
    );
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch {
    throw new UsageError(`${flag} ${file}: cannot read the file`);
  }
}

/**
 * The server options for the flags (undefined without --tls-cert); `scope` = which requests need an SVID.
 * @airlock/identity (with jose) loads only when a client CA is given, so `--help` stays light.
 */
export async function mtlsFromFlags(flags: MtlsFlags, scope: 'all' | 'writes'): Promise<ServiceTls | undefined> {
  if (!!flags.tlsCert !== !!flags.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
  if (flags.clientCa && !flags.tlsCert) throw new UsageError('--client-ca needs --tls-cert/--tls-key');
  if (flags.allowSpiffeId && !flags.clientCa) throw new UsageError('--allow-spiffe-id needs --client-ca');
  if (!flags.tlsCert) return undefined;
  const cert = readFlagFile('--tls-cert', flags.tlsCert);
  const key = readFlagFile('--tls-key', flags.tlsKey!);
  if (!flags.clientCa) return { tls: { cert, key, minVersion: 'TLSv1.2' } };
  const { serviceMtls } = await import('@airlock/identity');
  try {
    return serviceMtls({
      cert,
      key,
      trustBundle: readFlagFile('--client-ca', flags.clientCa),
      allow: flags.allowSpiffeId ?? [],
      scope,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
