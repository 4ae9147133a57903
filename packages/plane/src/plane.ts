import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AirlockError, type HttpLimits, type ServiceTls } from '@airlock/core';
import type { LogStorage, TileStore } from '@airlock/tlog';
import type { BuildClaims, TrustedIssuer } from '@airlock/identity';
import { openPkcs11Signer } from './pkcs11.js';
import { buildTrustedRoot, type TrustedRootJson } from './trusted-root.js';
import { buildSigningConfig, SIGNING_CONFIG_FILE } from './signing-config.js';

export type PlaneErrorCode =
  | 'PLANE_CONFIG'
  | 'PLANE_NOT_RUNNING' // clients: exit 3
  | 'PLANE_ALREADY_RUNNING' // exit 3
  | 'PLANE_PORT_IN_USE' // a recorded (or given) port is taken: exit 3
  | 'PLANE_PORT_CONFLICT' // a flag contradicts the recorded port: exit 2
  | 'PLANE_PKCS11_URI' // --ca-key/--log-key pkcs11: URI malformed: exit 2
  | 'PLANE_PKCS11_MODULE' // the PKCS#11 module cannot be loaded: exit 2
  | 'PLANE_PKCS11_PIN' // the PIN file/variable is missing: exit 2
  | 'PLANE_PKCS11_LOGIN' // the token refused the PIN: exit 2
  | 'PLANE_PKCS11_OBJECT'; // no token/key, or not a P-256 key pair: exit 2
export class PlaneError extends AirlockError<PlaneErrorCode> {}

export interface TrustPlaneOptions {
  /** Where keys, the log database and the generated files live. Created if missing. */
  dataDir: string;
  /** Address to bind; default the recorded one, else 127.0.0.1. */
  host?: string;
  /** Ports; 0/absent = the port recorded in `plane.json` on first start (else any free port, then recorded). */
  ports?: Partial<PlanePorts>;
  /** Let `host`/`ports` replace recorded values (the URLs in trusted roots, certificates and policies change). */
  reassignPorts?: boolean;
  /** Load limits of the three services. */
  limits?: Partial<HttpLimits>;
  /** SPIFFE trust domain of the embedded workload-identity issuer. */
  trustDomain?: string;
  /** Extra OIDC issuers the CA trusts besides the embedded one (SPIRE OIDC discovery, Kubernetes SA issuer, …). */
  externalIssuers?: TrustedIssuer[];
  /** Leaf certificate lifetime (default 600 s, as Fulcio). */
  certValiditySeconds?: number;
  /** RFC 7512 `pkcs11:` URI of the CA's intermediate key: no CA key is written to the data dir. */
  caKey?: string;
  /** RFC 7512 `pkcs11:` URI of the log's signing key: no log key is written to the data dir. */
  logKey?: string;
  /** RFC 7512 `pkcs11:` URI of the identity issuer's key: no issuer key file, the break-glass path is closed. */
  identityKey?: string;
  /** Per service HTTPS / mTLS (SPIFFE SVID authorization); absent = plain HTTP as before. */
  mtls?: Partial<Record<keyof PlanePorts, ServiceTls>>;
  /** The log's entries and tree outside the data dir (PostgreSQL); default SQLite in it. Closed with the log. */
  logStorage?: LogStorage;
  /** Where the log publishes its tiles: a directory or a TileStore (an S3 bucket); default `<dataDir>/tiles`. */
  logTiles?: string | TileStore;
}

export interface PlanePorts {
  tlog: number;
  ca: number;
  identity: number;
  /** The RFC 3161 timestamp authority (added with issue 11; older plane.json files lack it). */
  tsa: number;
}

/** `endpoints.json`: what clients need to reach the plane, and whether it is running. */
export interface PlaneEndpoints {
  tlogUrl: string;
  caUrl: string;
  identityIssuerUrl: string;
  /** RFC 3161 timestamp authority (sigstore/timestamp-authority API); absent in files written before issue 11. */
  tsaUrl?: string;
  trustDomain: string;
  trustedRoot: string;
  /** Sigstore signing config v0.2 beside the trusted root (CA, TSA and log URLs for stock clients). */
  signingConfig?: string;
  startedAt: string;
  /** The plane's process; with `hostname`, lets clients tell a live plane from a stale file. */
  pid: number;
  hostname?: string;
  /** `running` while serving; `stopped` after a clean shutdown (a crash leaves `running` with a dead pid). */
  state?: 'running' | 'stopped';
  stoppedAt?: string;
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
  /** Attested node claims (canonical JSON), for in-process callers that verified the node (the identity agent). */
  nodeAttestation?: string;
}

/** `plane.json`: what must survive restarts so that every URL in a certificate or policy stays the same. */
interface PlaneState {
  createdAt: string;
  host?: string;
  ports?: RecordedPorts;
}

/** Ports as recorded: a plane.json from before the TSA existed has no `tsa` (it gets one on next start). */
type RecordedPorts = Omit<PlanePorts, 'tsa'> & { tsa?: number };

/** Writes a file atomically: readers never see a half-written endpoints.json or trusted_root.json. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/**
 * Starts the trust plane in one process: transparency log, certificate authority and the embedded
 * workload-identity issuer, all on loopback, then writes `endpoints.json` and `trusted_root.json`. Host and ports
 * are recorded in `plane.json` on first start and reused, so the issuer, CA and log URLs survive restarts.
 */
export async function startTrustPlane(options: TrustPlaneOptions): Promise<RunningTrustPlane> {
  const dataDir = options.dataDir;
  // The servers load here, not at import: CLI calls that only read endpoints.json import this module too.
  const [{ startTlogServer }, { startCaServer }, { startTsaServer }, { startIdentityIssuer }] = await Promise.all([
    import('@airlock/tlog'),
    import('@airlock/ca'),
    import('@airlock/tsa'),
    import('@airlock/identity'),
  ]);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  await refuseIfRunning(dataDir);
  const statePath = join(dataDir, 'plane.json');
  const state = loadOrCreateState(statePath);
  const { host, ports } = resolveBinding(state, options, statePath);
  const trustDomain = options.trustDomain ?? 'airlock.internal';
  const limits = options.limits ? { limits: options.limits } : {};

  const closers: Array<() => Promise<void>> = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const caSigner = options.caKey ? openPkcs11Signer(options.caKey) : undefined;
    if (caSigner) closers.push(async () => caSigner.close());
    // One module session serves both keys when they share a token: open the log key only if it differs.
    const logSigner =
      options.logKey === undefined
        ? undefined
        : options.logKey === options.caKey
          ? caSigner
          : openPkcs11Signer(options.logKey);
    if (logSigner && logSigner !== caSigner) closers.push(async () => logSigner.close());
    const identitySigner = options.identityKey ? openPkcs11Signer(options.identityKey) : undefined;
    if (identitySigner) closers.push(async () => identitySigner.close());
    const identity = await bind('identity issuer', ports.identity, statePath, () =>
      startIdentityIssuer({
        dataDir,
        host,
        port: ports.identity,
        trustDomain,
        ...limits,
        ...options.mtls?.identity,
        ...(identitySigner ? { signer: identitySigner } : {}),
      }),
    );
    closers.push(() => identity.close());
    const issuers: TrustedIssuer[] = [
      // Trusted in-process: the CA gets the issuer's keys directly and fetches nothing over plain http.
      // The only issuer trusted for attested node claims: it signs them only for the agent, after node attestation.
      { issuerUrl: identity.url, type: 'spiffe', trustDomain, jwks: identity.issuer.jwks(), attestationClaims: true },
      ...(options.externalIssuers ?? []),
    ];
    const ca = await bind('certificate authority', ports.ca, statePath, () =>
      startCaServer({
        dataDir,
        host,
        port: ports.ca,
        issuers,
        ...limits,
        ...options.mtls?.ca,
        ...(options.certValiditySeconds ? { certValiditySeconds: options.certValiditySeconds } : {}),
        ...(caSigner ? { intermediateSigner: caSigner } : {}),
      }),
    );
    closers.push(() => ca.close());
    const tlog = await bind('transparency log', ports.tlog, statePath, () =>
      startTlogServer({
        dataDir,
        host,
        port: ports.tlog,
        ...limits,
        ...options.mtls?.tlog,
        ...(logSigner ? { signer: logSigner } : {}),
        ...(options.logStorage ? { storage: options.logStorage } : {}),
        ...(options.logTiles ? { tiles: options.logTiles } : {}),
      }),
    );
    closers.push(() => tlog.close());
    const tsa = await bind('timestamp authority', ports.tsa, statePath, () =>
      startTsaServer({ dataDir, host, port: ports.tsa, ...limits, ...options.mtls?.tsa }),
    );
    closers.push(() => tsa.close());
    recordBinding(statePath, state, host, {
      tlog: portOf(tlog.url),
      ca: portOf(ca.url),
      identity: portOf(identity.url),
      tsa: portOf(tsa.url),
    });

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
      tsa: { uri: tsa.url, chainDer: tsa.chainDer, validFrom: tsa.validFrom },
    });
    const trustedRootPath = join(dataDir, 'trusted_root.json');
    writeFileAtomic(trustedRootPath, JSON.stringify(trustedRoot, null, 2) + '\n');
    const signingConfigPath = join(dataDir, SIGNING_CONFIG_FILE);
    const signingConfig = buildSigningConfig({
      ca: { url: ca.url, validFrom: ca.validFrom },
      tsa: { url: tsa.url, validFrom: tsa.validFrom },
      oidc: { url: identity.url, validFrom: new Date(state.createdAt) },
      // One log, two APIs on the same tree: Rekor v1 and Rekor v2 (tiles). Both list the same URL; a v2 client
      // picks majorApiVersion 2 and posts to /api/v2/log/entries.
      // Stock clients take the newest start: v1 stays first because @sigstore/verify 3 cannot verify a DSSE bundle
      // whose v2 entry is a hashedrekord over the PAE digest (verify ≥ 4.1 can); blobs work with either.
      tlogs: [
        { url: tlog.url, majorApiVersion: 1, validFrom: new Date(Date.parse(state.createdAt) - 60_000) },
        { url: tlog.url, majorApiVersion: 2, validFrom: new Date(Date.parse(state.createdAt) - 61_000) },
      ],
    });
    writeFileAtomic(signingConfigPath, JSON.stringify(signingConfig, null, 2) + '\n');
    const endpoints: PlaneEndpoints = {
      tlogUrl: tlog.url,
      caUrl: ca.url,
      identityIssuerUrl: identity.url,
      tsaUrl: tsa.url,
      trustDomain,
      trustedRoot: trustedRootPath,
      signingConfig: signingConfigPath,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      hostname: hostname(),
      state: 'running',
    };
    const endpointsPath = join(dataDir, 'endpoints.json');
    writeFileAtomic(endpointsPath, JSON.stringify(endpoints, null, 2) + '\n');
    let closing: Promise<void> | undefined;
    return {
      endpoints,
      trustedRoot,
      issueToken: (subject, o = {}) => identity.issueToken({ subject, ...o }),
      close: () =>
        (closing ??= closeAll().then(() => {
          const stopped: PlaneEndpoints = { ...endpoints, state: 'stopped', stoppedAt: new Date().toISOString() };
          writeFileAtomic(endpointsPath, JSON.stringify(stopped, null, 2) + '\n');
        })),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

const SERVICES = ['tlog', 'ca', 'identity', 'tsa'] as const;
/** Services every plane.json with ports records; `tsa` came later and may be missing. */
const REQUIRED_SERVICES = ['tlog', 'ca', 'identity'] as const;
const FLAG: Record<keyof PlanePorts, string> = {
  tlog: '--tlog-port',
  ca: '--ca-port',
  identity: '--identity-port',
  tsa: '--tsa-port',
};

/**
 * Host and ports to bind: a given value must agree with the recorded one unless `reassignPorts` (a silent change
 * would move the issuer/CA/log URLs that policies and trusted roots name). 0 or absent means "the recorded one".
 */
function resolveBinding(
  state: PlaneState,
  options: TrustPlaneOptions,
  statePath: string,
): { host: string; ports: PlanePorts } {
  const conflict = (what: string, given: string, recorded: string): never => {
    throw new PlaneError(
      'PLANE_PORT_CONFLICT',
      `${what} ${given} differs from ${recorded} recorded in ${statePath}; the URLs in the trusted root, ` +
        `certificates and identity policies would change. Drop the flag, or pass --reassign-ports to move the plane`,
    );
  };
  const reassign = options.reassignPorts === true;
  if (options.host && state.host && options.host !== state.host && !reassign)
    conflict('--host', options.host, state.host);
  const host = options.host ?? state.host ?? '127.0.0.1';
  const ports = { tlog: 0, ca: 0, identity: 0, tsa: 0 };
  for (const svc of SERVICES) {
    const given = options.ports?.[svc] ?? 0;
    const recorded = state.ports?.[svc] ?? 0;
    if (given && recorded && given !== recorded && !reassign) conflict(FLAG[svc], String(given), String(recorded));
    ports[svc] = given || recorded;
  }
  return { host, ports };
}

/** Runs a service's start, turning "address in use" into an error that names the recorded port. */
async function bind<T>(what: string, port: number, statePath: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EADDRINUSE') throw err;
    throw new PlaneError(
      'PLANE_PORT_IN_USE',
      `port ${port} of the ${what} (recorded in ${statePath} so that its URL stays stable) is in use by another ` +
        `process: stop it, or move the plane with --reassign-ports and a new port flag`,
      { cause: err },
    );
  }
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function recordBinding(statePath: string, state: PlaneState, host: string, ports: PlanePorts): void {
  const same = state.host === host && SERVICES.every((s) => state.ports?.[s] === ports[s]);
  if (same) return;
  state.host = host;
  state.ports = ports;
  writeFileAtomic(statePath, JSON.stringify(state, null, 2) + '\n', 0o600);
}

/**
 * A second `airlock up` on the same data dir would fight over the log store and the ports. Running = its pid is
 * alive AND its CA answers (a crashed plane's pid may have been reused by an unrelated process).
 */
async function refuseIfRunning(dataDir: string): Promise<void> {
  const e = readEndpointsFile(dataDir);
  if (e && liveness(e) === 'alive' && e.pid !== process.pid && (await answers(e.caUrl))) {
    throw new PlaneError(
      'PLANE_ALREADY_RUNNING',
      `a trust plane is already running on ${dataDir} (pid ${e.pid}); stop it first`,
    );
  }
}

function loadOrCreateState(path: string): PlaneState {
  if (existsSync(path)) {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<PlaneState>;
    if (typeof parsed.createdAt !== 'string' || Number.isNaN(Date.parse(parsed.createdAt))) {
      throw new PlaneError('PLANE_CONFIG', `${path}: createdAt missing or invalid`);
    }
    const ports = parsed.ports;
    const valid = (p: unknown): boolean => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536;
    if (
      ports !== undefined &&
      (!REQUIRED_SERVICES.every((s) => valid(ports[s])) || (ports.tsa !== undefined && !valid(ports.tsa)))
    )
      throw new PlaneError('PLANE_CONFIG', `${path}: ports must hold tlog, ca and identity (and tsa) port numbers`);
    return {
      createdAt: parsed.createdAt,
      ...(typeof parsed.host === 'string' ? { host: parsed.host } : {}),
      ...(ports ? { ports } : {}),
    };
  }
  const state = { createdAt: new Date().toISOString() };
  writeFileAtomic(path, JSON.stringify(state, null, 2) + '\n', 0o600);
  return state;
}

function readEndpointsFile(dataDir: string): PlaneEndpoints | undefined {
  const path = join(dataDir, 'endpoints.json');
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PlaneEndpoints;
  } catch (err) {
    throw new PlaneError('PLANE_CONFIG', `${path} is not valid JSON`, { cause: err });
  }
}

/**
 * Whether the plane that wrote `e` still runs, judged without the network: `stopped` after a clean shutdown,
 * `dead` when its pid is gone on this host; `alive` otherwise (another host's pid cannot be checked).
 */
function liveness(e: PlaneEndpoints): 'alive' | 'stopped' | 'dead' {
  if (e.state === 'stopped') return 'stopped';
  if (e.hostname !== undefined && e.hostname !== hostname()) return 'alive';
  try {
    process.kill(e.pid, 0);
    return 'alive';
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM' ? 'alive' : 'dead';
  }
}

function notRunning(dataDir: string, why: string): PlaneError {
  return new PlaneError(
    'PLANE_NOT_RUNNING',
    `trust plane not running (${why}): start it with 'airlock up --data ${dataDir}'`,
  );
}

/**
 * Reads `endpoints.json` of a running plane. Throws `PLANE_NOT_RUNNING` (clients exit 3) when the file is missing,
 * says the plane stopped, or names a process that is gone.
 */
export function readEndpoints(dataDir: string): PlaneEndpoints {
  const e = readEndpointsFile(dataDir);
  if (!e) return missing(dataDir);
  const state = liveness(e);
  if (state === 'stopped') throw notRunning(dataDir, `it stopped at ${e.stoppedAt ?? 'an unknown time'}`);
  if (state === 'dead') throw notRunning(dataDir, `its process ${e.pid} is gone; endpoints.json is stale`);
  return e;
}

function missing(dataDir: string): never {
  throw notRunning(dataDir, `${join(dataDir, 'endpoints.json')} not found`);
}

async function answers(caUrl: string, timeoutMs = 3_000): Promise<boolean> {
  try {
    const res = await fetch(`${caUrl}/api/v2/configuration`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** `readEndpoints` plus a request to the CA: the pid may have been reused by an unrelated process. */
export async function readLiveEndpoints(dataDir: string, timeoutMs = 3_000): Promise<PlaneEndpoints> {
  const e = readEndpoints(dataDir);
  if (await answers(e.caUrl, timeoutMs)) return e;
  throw notRunning(dataDir, `its certificate authority at ${e.caUrl} does not answer`);
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
  const e = await readLiveEndpoints(dataDir);
  const { IdentityIssuer } = await import('@airlock/identity');
  const issuer = await IdentityIssuer.open({ dataDir, issuerUrl: e.identityIssuerUrl, trustDomain: e.trustDomain });
  return issuer.issueToken({ subject, ...options });
}
