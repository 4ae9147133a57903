import { readFileSync } from 'node:fs';
import { issueWorkloadToken, readEndpoints } from '@airlock/plane';
import { EXIT, UsageError } from './output.js';

export interface SigningFlags {
  data?: string;
  fulcioUrl?: string;
  rekorUrl?: string;
  identityToken?: string;
  identityTokenFile?: string;
  subject?: string;
}

export interface SigningContext {
  fulcioUrl: string;
  rekorUrl: string;
  identity: () => Promise<string>;
}

/**
 * Exit code for a failure around the signing context: a usage error → 2, a trust plane that is not running
 * (`PLANE_NOT_RUNNING` from `readEndpoints`: missing, stopped or stale endpoints.json) → 3, else `fallback`.
 */
export function contextExitCode(err: unknown, fallback: number = EXIT.FAILURE): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if ((err as { code?: unknown }).code === 'PLANE_NOT_RUNNING') return EXIT.UNAVAILABLE;
  return fallback;
}

/**
 * Where to sign and with which token. Explicit URLs win over the plane's `endpoints.json`; the token comes
 * from --identity-token, --identity-token-file, $SIGSTORE_ID_TOKEN, or is minted by the embedded issuer of
 * the plane in --data for --subject (default spiffe://<trust domain>/airlock/cli). With --data, a plane that is not
 * running throws `PLANE_NOT_RUNNING` here (stopped or dead pid), or when minting (its CA does not answer).
 */
export function resolveSigningContext(flags: SigningFlags, options: { keyBased?: boolean } = {}): SigningContext {
  const endpoints = flags.data ? readEndpoints(flags.data) : undefined;
  const fulcioUrl = flags.fulcioUrl ?? endpoints?.caUrl ?? '';
  const rekorUrl = flags.rekorUrl ?? endpoints?.tlogUrl;
  if (!rekorUrl)
    throw new UsageError('no transparency log given: pass --data DIR (a running `airlock up`) or --rekor-url');
  if (options.keyBased) {
    // A key signs without a certificate: no CA and no identity token are involved.
    return {
      fulcioUrl,
      rekorUrl,
      identity: () => Promise.reject(new UsageError('key-based signing needs no identity token')),
    };
  }
  if (!fulcioUrl)
    throw new UsageError('no certificate authority given: pass --data DIR (a running `airlock up`) or --fulcio-url');
  let identity: () => Promise<string>;
  if (flags.identityToken) {
    const token = flags.identityToken;
    identity = async () => token;
  } else if (flags.identityTokenFile) {
    const file = flags.identityTokenFile;
    identity = async () => readFileSync(file, 'utf8').trim();
  } else if (process.env.SIGSTORE_ID_TOKEN) {
    const token = process.env.SIGSTORE_ID_TOKEN;
    identity = async () => token;
  } else if (flags.data && endpoints) {
    const dataDir = flags.data;
    const subject = flags.subject ?? `spiffe://${endpoints.trustDomain}/airlock/cli`;
    identity = () => issueWorkloadToken(dataDir, subject);
  } else {
    throw new UsageError(
      'no identity token: pass --identity-token, --identity-token-file, set SIGSTORE_ID_TOKEN, or --data DIR to use the embedded issuer',
    );
  }
  return { fulcioUrl, rekorUrl, identity };
}

export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${what} '${path}': ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what} '${path}' is not JSON: ${(e as Error).message}`);
  }
}
