import { readFileSync } from 'node:fs';
import { issueWorkloadToken, readEndpoints } from '@airlock/plane';
import { EXIT, UsageError } from './output.js';

export interface SigningFlags {
  data?: string;
  fulcioUrl?: string;
  rekorUrl?: string;
  /** RFC 3161 timestamp authority base URL (overrides the plane's). */
  tsaUrl?: string;
  /** commander's `--no-timestamp`: false = sign without a TSA timestamp. */
  timestamp?: boolean;
  identityToken?: string;
  identityTokenFile?: string;
  subject?: string;
  /** The workload attestation agent's socket (else $AIRLOCK_AGENT_SOCKET). */
  agentSocket?: string;
}

export interface SigningContext {
  fulcioUrl: string;
  rekorUrl: string;
  /** The timestamp authority every bundle gets a signed timestamp from; absent with --no-timestamp. */
  tsaUrl?: string;
  identity: () => Promise<string>;
  /** Asks the agent once before any work, so a refused caller fails fast (no-op for other token sources). */
  preflight: () => Promise<void>;
}

/** Agent refusals: the caller is not (or no longer) the registered workload, or asked wrongly → exit 2. */
const AGENT_REFUSALS = new Set(['AGENT_NO_MATCH', 'AGENT_PEER_CHANGED', 'AGENT_PEER_UNKNOWN', 'AGENT_REQUEST_INVALID']);

export function isAgentRefusal(err: unknown): boolean {
  return AGENT_REFUSALS.has(String((err as { code?: unknown }).code ?? ''));
}

/**
 * Tokens from the agent live ≤ 5 minutes: reuse one while it has a minute left, else ask again (the agent checks
 * the caller afresh every time), so a long build signs with a fresh token.
 */
function agentIdentity(socketPath: string, subject: string | undefined): () => Promise<string> {
  let cached: { token: string; expiresAt: number } | undefined;
  return async () => {
    if (cached && cached.expiresAt - Date.now() > 60_000) return cached.token;
    // Loaded on use: the agent client pulls in the identity package (jose), which most calls never need.
    const { requestAgentToken } = await import('@airlock/agent');
    const t = await requestAgentToken(socketPath, subject !== undefined ? { subject } : {});
    cached = { token: t.token, expiresAt: Date.parse(t.expiresAt) };
    return t.token;
  };
}

/**
 * Exit code for a failure around the signing context: a usage error → 2, a trust plane that is not running
 * (`PLANE_NOT_RUNNING` from `readEndpoints`: missing, stopped or stale endpoints.json) → 3, else `fallback`.
 */
export function contextExitCode(err: unknown, fallback: number = EXIT.FAILURE): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  const code = (err as { code?: unknown }).code;
  if (code === 'PLANE_NOT_RUNNING' || code === 'AGENT_UNAVAILABLE') return EXIT.UNAVAILABLE;
  if (isAgentRefusal(err)) return EXIT.USAGE;
  return fallback;
}

/**
 * Where to sign and with which token. Explicit URLs win over the plane's `endpoints.json`; the token comes
 * from --identity-token, --identity-token-file, --agent-socket, $SIGSTORE_ID_TOKEN, $AIRLOCK_AGENT_SOCKET (the
 * workload attestation agent: the default way for runners and sync jobs), or else is minted from the issuer key
 * file of the plane in --data for --subject (default spiffe://<trust domain>/airlock/cli; needs the plane's user). With --data, a plane that is not
 * running throws `PLANE_NOT_RUNNING` here (stopped or dead pid), or when minting (its CA does not answer).
 */
export function resolveSigningContext(flags: SigningFlags, options: { keyBased?: boolean } = {}): SigningContext {
  const endpoints = flags.data ? readEndpoints(flags.data) : undefined;
  const fulcioUrl = flags.fulcioUrl ?? endpoints?.caUrl ?? '';
  const rekorUrl = flags.rekorUrl ?? endpoints?.tlogUrl;
  if (!rekorUrl)
    throw new UsageError('no transparency log given: pass --data DIR (a running `airlock up`) or --rekor-url');
  // Timestamped by default (the plane's TSA); --no-timestamp opts out, e.g. for a plane from before the TSA.
  const tsaUrl = flags.timestamp === false ? undefined : (flags.tsaUrl ?? endpoints?.tsaUrl);
  const tsa = tsaUrl ? { tsaUrl } : {};
  if (options.keyBased) {
    // A key signs without a certificate: no CA and no identity token are involved.
    return {
      fulcioUrl,
      rekorUrl,
      ...tsa,
      identity: () => Promise.reject(new UsageError('key-based signing needs no identity token')),
      preflight: async () => undefined,
    };
  }
  if (!fulcioUrl)
    throw new UsageError('no certificate authority given: pass --data DIR (a running `airlock up`) or --fulcio-url');
  const agentSocket = flags.agentSocket ?? process.env.AIRLOCK_AGENT_SOCKET;
  let identity: () => Promise<string>;
  let preflight = async (): Promise<void> => undefined;
  if (flags.identityToken) {
    const token = flags.identityToken;
    identity = async () => token;
  } else if (flags.identityTokenFile) {
    const file = flags.identityTokenFile;
    identity = async () => readFileSync(file, 'utf8').trim();
  } else if (flags.agentSocket === undefined && process.env.SIGSTORE_ID_TOKEN) {
    const token = process.env.SIGSTORE_ID_TOKEN;
    identity = async () => token;
  } else if (agentSocket) {
    // The agent decides who we are from the kernel; --subject only picks among the IDs we are registered for.
    identity = agentIdentity(agentSocket, flags.subject);
    preflight = async () => void (await identity());
  } else if (flags.data && endpoints) {
    const dataDir = flags.data;
    const subject = flags.subject ?? `spiffe://${endpoints.trustDomain}/airlock/cli`;
    identity = () => issueWorkloadToken(dataDir, subject);
  } else {
    throw new UsageError(
      'no identity token: pass --agent-socket (or set AIRLOCK_AGENT_SOCKET), --identity-token, --identity-token-file, ' +
        'set SIGSTORE_ID_TOKEN, or --data DIR to use the embedded issuer',
    );
  }
  return { fulcioUrl, rekorUrl, ...tsa, identity, preflight };
}

/** The signer endpoints of a context (CA, log and, unless --no-timestamp, the TSA). */
export function signingEndpointsOf(ctx: SigningContext): { fulcioUrl: string; rekorUrl: string; tsaUrl?: string } {
  return { fulcioUrl: ctx.fulcioUrl, rekorUrl: ctx.rekorUrl, ...(ctx.tsaUrl ? { tsaUrl: ctx.tsaUrl } : {}) };
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
