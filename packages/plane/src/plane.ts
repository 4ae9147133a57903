import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '@airlock/core';
import { startTlogServer } from '@airlock/tlog';
import { startCaServer } from '@airlock/ca';
import { IdentityIssuer, startIdentityIssuer, type BuildClaims, type TrustedIssuer } from '@airlock/identity';
import { buildTrustedRoot, type TrustedRootJson } from './trusted-root.js';

export type PlaneErrorCode = 'PLANE_CONFIG' | 'PLANE_NOT_RUNNING';
export class PlaneError extends AirlockError<PlaneErrorCode> {}

export interface TrustPlaneOptions {
  /** Where keys, the log database and the generated files live. Created if missing. */
  dataDir: string;
  host?: string;
  ports?: { tlog?: number; ca?: number; identity?: number };
  /** SPIFFE trust domain of the embedded workload-identity issuer. */
  trustDomain?: string;
  /** Extra OIDC issuers the CA trusts besides the embedded one (SPIRE OIDC discovery, Kubernetes SA issuer, …). */
  externalIssuers?: TrustedIssuer[];
  /** Leaf certificate lifetime (default 600 s, as Fulcio). */
  certValiditySeconds?: number;
}

/** `endpoints.json`: what clients need to reach the plane. */
export interface PlaneEndpoints {
  tlogUrl: string;
  caUrl: string;
  identityIssuerUrl: string;
  trustDomain: string;
  trustedRoot: string;
  startedAt: string;
  pid: number;
}

export interface RunningTrustPlane {
  endpoints: PlaneEndpoints;
  trustedRoot: TrustedRootJson;
  /** Mints a workload token from the embedded issuer (audience `sigstore`). */
  issueToken(subject: string, options?: WorkloadTokenOptions): Promise<string>;
  close(): Promise<void>;
}

export interface WorkloadTokenOptions {
  ttlSeconds?: number;
  /** Build/source claims the CA copies into the Fulcio certificate extensions. */
  claims?: BuildClaims;
  /** Backdate the token (tests, replays). */
  issuedAt?: Date;
}

interface PlaneState {
  createdAt: string;
}

/** Writes a file atomically: readers never see a half-written endpoints.json or trusted_root.json. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/**
 * Starts the trust plane in one process: transparency log, certificate authority and the embedded
 * workload-identity issuer, all on loopback, then writes `endpoints.json` and `trusted_root.json`.
 */
export async function startTrustPlane(options: TrustPlaneOptions): Promise<RunningTrustPlane> {
  const dataDir = options.dataDir;
  const host = options.host ?? '127.0.0.1';
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const state = loadOrCreateState(join(dataDir, 'plane.json'));
  const trustDomain = options.trustDomain ?? 'airlock.internal';

  const closers: Array<() => Promise<void>> = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const identity = await startIdentityIssuer({ dataDir, host, port: options.ports?.identity ?? 0, trustDomain });
    closers.push(() => identity.close());
    const issuers: TrustedIssuer[] = [
      { issuerUrl: identity.url, type: 'spiffe', trustDomain },
      ...(options.externalIssuers ?? []),
    ];
    const ca = await startCaServer({
      dataDir,
      host,
      port: options.ports?.ca ?? 0,
      issuers,
      ...(options.certValiditySeconds ? { certValiditySeconds: options.certValiditySeconds } : {}),
    });
    closers.push(() => ca.close());
    const tlog = await startTlogServer({ dataDir, host, port: options.ports?.tlog ?? 0 });
    closers.push(() => tlog.close());

    const trustedRoot = buildTrustedRoot({
      tlog: {
        baseUrl: tlog.url,
        publicKeyDer: tlog.publicKeyDer,
        validFrom: new Date(Date.parse(state.createdAt) - 60_000),
      },
      ca: {
        uri: ca.url,
        chainDer: ca.chainDer,
        validFrom: ca.validFrom,
        organization: ca.ca.subject.organization,
        commonName: ca.ca.subject.commonName,
      },
    });
    const trustedRootPath = join(dataDir, 'trusted_root.json');
    writeFileAtomic(trustedRootPath, JSON.stringify(trustedRoot, null, 2) + '\n');
    const endpoints: PlaneEndpoints = {
      tlogUrl: tlog.url,
      caUrl: ca.url,
      identityIssuerUrl: identity.url,
      trustDomain,
      trustedRoot: trustedRootPath,
      startedAt: new Date().toISOString(),
      pid: process.pid,
    };
    writeFileAtomic(join(dataDir, 'endpoints.json'), JSON.stringify(endpoints, null, 2) + '\n');

    return {
      endpoints,
      trustedRoot,
      issueToken: (subject, o = {}) => identity.issueToken({ subject, ...o }),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function loadOrCreateState(path: string): PlaneState {
  if (existsSync(path)) {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<PlaneState>;
    if (typeof parsed.createdAt !== 'string' || Number.isNaN(Date.parse(parsed.createdAt))) {
      throw new PlaneError('PLANE_CONFIG', `${path}: createdAt missing or invalid`);
    }
    return { createdAt: parsed.createdAt };
  }
  const state = { createdAt: new Date().toISOString() };
  writeFileAtomic(path, JSON.stringify(state, null, 2) + '\n', 0o600);
  return state;
}

/** Reads `endpoints.json` written by a running plane. */
export function readEndpoints(dataDir: string): PlaneEndpoints {
  const path = join(dataDir, 'endpoints.json');
  if (!existsSync(path)) {
    throw new PlaneError(
      'PLANE_NOT_RUNNING',
      `${path} not found: start the trust plane first with 'airlock up --data ${dataDir}'`,
    );
  }
  return JSON.parse(readFileSync(path, 'utf8')) as PlaneEndpoints;
}

/**
 * Mints a workload token with the embedded issuer of the plane in `dataDir`, in-process (the signing key is in
 * the data directory, so only whoever can read it can mint). The `iss` is the running issuer's URL.
 */
export async function issueWorkloadToken(
  dataDir: string,
  subject: string,
  options: WorkloadTokenOptions = {},
): Promise<string> {
  const e = readEndpoints(dataDir);
  const issuer = await IdentityIssuer.open({ dataDir, issuerUrl: e.identityIssuerUrl, trustDomain: e.trustDomain });
  return issuer.issueToken({ subject, ...options });
}
