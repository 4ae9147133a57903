import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { openPkcs11Signer, RunningTrustPlane, startTrustPlane } from '@airlock/plane';
import type { WitnessEndpoint } from '@airlock/tlog';
import { privateKeyFileProblem } from '@airlock/core';
import { writeFileSync } from 'node:fs';
import type { HttpLimits } from '@airlock/core';
import type { TrustedIssuer } from '@airlock/identity';
import { readJsonFile } from '../context.js';
import { parseListen, parsePort, runUntilSignal } from './cli-flags.js';
import { registerIdentityCommands } from './identity.js';
import { addMtlsOptions, mtlsFromFlags, type MtlsFlags } from './mtls-flags.js';
import { EXIT, fail, info, printResult, UsageError, type OutputOptions } from '../output.js';
import {
  backendInputExit,
  openPgLogStorage,
  openTileTarget,
  TLOG_INDEX_HELP,
  TLOG_S3_CONFIG_HELP,
  TLOG_TILES_HELP,
  type TileTarget,
} from './tlog-backends.js';
import type { PgLogStorage } from '@airlock/postgres';

// Moved to the light cli-flags.ts (commands import them without loading the plane); re-exported for old importers.
export { parseListen, runUntilSignal } from './cli-flags.js';

// The plane, log and identity libraries (jose, @noble, sqlite) load when an action runs, not to print help.
const planeLib = () => import('@airlock/plane');
const tlogLib = () => import('@airlock/tlog');

const ISSUER_FIELDS = ['issuerUrl', 'type', 'trustDomain', 'subjectDomain', 'jwksUrl', 'audience'] as const;

/**
 * Extra trusted issuers from --issuer-config. Validated here (exit 2 on a bad file): external issuers and their
 * JWKS must be https unless the operator passes --allow-insecure-issuer (tests).
 */
async function loadIssuerConfig(path: string | undefined, allowInsecure: boolean): Promise<TrustedIssuer[]> {
  if (!path) return [];
  const { validateTrustedIssuers } = await import('@airlock/identity');
  const cfg = readJsonFile(path, 'issuer config');
  const list = Array.isArray(cfg) ? cfg : (cfg as { issuers?: unknown }).issuers;
  if (!Array.isArray(list))
    throw new UsageError(`issuer config '${path}' must be an array of issuers or {"issuers": [...]}`);
  const issuers = list.map((it: unknown, i) => {
    if (typeof it !== 'object' || it === null)
      throw new UsageError(`issuer config '${path}': issuers[${i}] must be an object`);
    const o = it as Record<string, unknown>;
    // Only known fields: the insecure switch is the flag's alone, and keys are always fetched from the issuer.
    const clean = Object.fromEntries(ISSUER_FIELDS.filter((f) => o[f] !== undefined).map((f) => [f, o[f]]));
    return { ...clean, ...(allowInsecure ? { allowInsecureHttp: true } : {}) };
  });
  const check = (what: string, list: unknown[]): TrustedIssuer[] => {
    try {
      return validateTrustedIssuers(list);
    } catch (err) {
      throw new UsageError(`issuer config '${path}': ${what}${(err as Error).message}`);
    }
  };
  issuers.forEach((it, i) => check(`issuers[${i}]: `, [it]));
  return check('', issuers);
}

function parsePositiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got '${v}'`);
  return n;
}

interface LimitFlags {
  maxConcurrentRequests?: string;
  headersTimeout?: string;
  bodyTimeout?: string;
  requestDeadline?: string;
}

function addLimitOptions(cmd: Command): Command {
  return cmd
    .option('--max-concurrent-requests <n>', 'per service; more are answered 503 + Retry-After (default 256)')
    .option('--headers-timeout <ms>', 'request headers must arrive within this time (default 10000)')
    .option('--body-timeout <ms>', 'a request body must arrive within this time (default 20000)')
    .option('--request-deadline <ms>', 'a request unanswered after this time gets 503 (default 30000)');
}

function parseLimits(flags: LimitFlags): Partial<HttpLimits> {
  const limits: Partial<HttpLimits> = {
    maxConcurrentRequests: parsePositiveInt(flags.maxConcurrentRequests, '--max-concurrent-requests'),
    headersTimeoutMs: parsePositiveInt(flags.headersTimeout, '--headers-timeout'),
    bodyTimeoutMs: parsePositiveInt(flags.bodyTimeout, '--body-timeout'),
    requestDeadlineMs: parsePositiveInt(flags.requestDeadline, '--request-deadline'),
  };
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
}

function collectId(v: string, acc: string[] = []): string[] {
  return [...acc, v];
}

/**
 * Key material the operator must fix (a key that does not match its certificate, a group-readable or foreign-owned
 * key file, a log key that contradicts the recorded one) is an input error, not an unavailable service.
 */
const KEY_INPUT_CODES = new Set([
  'CA_KEY_INVALID',
  'CA_KEY_PERMISSIONS',
  'CA_CONFIG_INVALID',
  'IDENTITY_KEY_INVALID',
  'IDENTITY_KEY_PERMISSIONS',
  'IDENTITY_KEY_UNREADABLE',
  'IDENTITY_KEY_IN_TOKEN',
  'TLOG_KEY_MISMATCH',
  'TLOG_SIGNING_KEY_INVALID',
  'TLOG_SIGNING_KEY_PERMISSIONS',
]);

/**
 * `up` failures: bad flags, a port that contradicts the recorded one, bad PKCS#11 URIs or bad key material → 2;
 * a taken port or a running plane → 3.
 */
function upExitCode(err: unknown): number {
  const code = (err as { code?: unknown }).code;
  if (err instanceof UsageError || code === 'PLANE_PORT_CONFLICT' || code === 'PLANE_CONFIG') return EXIT.USAGE;
  if (typeof code === 'string' && (code.startsWith('PLANE_PKCS11_') || KEY_INPUT_CODES.has(code))) return EXIT.USAGE;
  return EXIT.UNAVAILABLE;
}

type UpFlags = OutputOptions &
  LimitFlags &
  LogBackendFlags & {
    data: string;
    host?: string;
    tlogPort?: string;
    caPort?: string;
    identityPort?: string;
    tsaPort?: string;
    reassignPorts?: boolean;
    trustDomain: string;
    issuerConfig?: string;
    allowInsecureIssuer?: boolean;
    caKey?: string;
    logKey?: string;
    identityKey?: string;
    tlsCert?: string;
    tlsKey?: string;
    clientCa?: string;
    caAllowSpiffeId?: string[];
    tlogAllowSpiffeId?: string[];
    identityAllowSpiffeId?: string[];
  };

/** Per service mTLS of `up`: one server certificate and client trust bundle, an allow list per service (writes). */
async function planeMtls(
  flags: UpFlags,
): Promise<NonNullable<Parameters<typeof startTrustPlane>[0]['mtls']> | undefined> {
  const base = { ...pick(flags, 'tlsCert', 'tlsKey', 'clientCa') };
  const service = (allow: string[] | undefined) =>
    mtlsFromFlags({ ...base, ...(allow ? { allowSpiffeId: allow } : {}) }, 'writes');
  const ca = await service(flags.caAllowSpiffeId);
  const tlog = await service(flags.tlogAllowSpiffeId);
  const identity = await service(flags.identityAllowSpiffeId);
  // Who may submit to the log may also get timestamps: signers need both.
  const tsa = await service(flags.tlogAllowSpiffeId);
  return ca && tlog && identity && tsa ? { ca, tlog, identity, tsa } : undefined;
}

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Pick<T, K>;
}

async function up(flags: UpFlags): Promise<void> {
  let plane: RunningTrustPlane;
  let backends: Awaited<ReturnType<typeof openLogBackends>> | undefined;
  try {
    const port = (v: string | undefined): number => (v === undefined ? 0 : parsePort(v));
    const mtls = await planeMtls(flags);
    backends = await openLogBackends(flags);
    const { startTrustPlane } = await planeLib();
    plane = await startTrustPlane({
      ...(backends.storage ? { logStorage: backends.storage } : {}),
      ...(backends.tiles ? { logTiles: backends.tiles.tiles } : {}),
      dataDir: flags.data,
      ...(flags.host ? { host: flags.host } : {}),
      ports: {
        tlog: port(flags.tlogPort),
        ca: port(flags.caPort),
        identity: port(flags.identityPort),
        tsa: port(flags.tsaPort),
      },
      reassignPorts: flags.reassignPorts === true,
      trustDomain: flags.trustDomain,
      externalIssuers: await loadIssuerConfig(flags.issuerConfig, flags.allowInsecureIssuer === true),
      limits: parseLimits(flags),
      ...(flags.caKey ? { caKey: flags.caKey } : {}),
      ...(flags.logKey ? { logKey: flags.logKey } : {}),
      ...(flags.identityKey ? { identityKey: flags.identityKey } : {}),
      ...(mtls ? { mtls } : {}),
    });
  } catch (err) {
    await backends?.close();
    fail(flags, err, backendInputExit(err) ? EXIT.USAGE : upExitCode(err));
  }
  const e = plane.endpoints;
  const opened = backends;
  printResult(flags, e, () =>
    [
      'airlock trust plane is up',
      `  transparency log:   ${e.tlogUrl}`,
      `  certificate auth.:  ${e.caUrl}`,
      `  identity issuer:    ${e.identityIssuerUrl}  (trust domain ${e.trustDomain})`,
      `  timestamp auth.:    ${e.tsaUrl ?? '(none)'}`,
      `  trusted root:       ${e.trustedRoot}`,
      `  signing config:     ${e.signingConfig ?? '(none)'}`,
      `  endpoints:          ${flags.data}/endpoints.json`,
      'Ctrl-C to stop.',
    ].join('\n'),
  );
  runUntilSignal(async () => {
    await plane.close();
    await opened.close();
  });
}

export function registerPlaneCommands(program: Command): void {
  addLimitOptions(
    program
      .command('up')
      .description(
        'start the trust plane (transparency log, CA, workload-identity issuer, RFC 3161 timestamp authority) on loopback; ' +
          'writes DIR/endpoints.json, DIR/trusted_root.json and DIR/signing_config.json. Host and ports are recorded in DIR/plane.json on first start and reused, so the ' +
          'issuer, CA and log URLs (in certificates, trusted roots and policies) survive restarts',
      )
      .requiredOption('--data <dir>', 'data directory (keys, log database, generated files)')
      .option('--host <host>', 'address to bind (default: the recorded one, else 127.0.0.1)')
      .option('--tlog-port <port>', 'transparency log port (default: the recorded one, else any free port)')
      .option('--ca-port <port>', 'certificate authority port (default: recorded, else any)')
      .option('--identity-port <port>', 'identity issuer port (default: recorded, else any)')
      .option('--tsa-port <port>', 'RFC 3161 timestamp authority port (default: recorded, else any)')
      .option('--reassign-ports', 'let --host/--*-port replace the recorded ones (changes the URLs policies name)')
      .option('--trust-domain <domain>', 'SPIFFE trust domain of the embedded issuer', 'airlock.internal')
      .option(
        '--issuer-config <file>',
        'JSON list of extra trusted OIDC issuers ({issuerUrl, type, trustDomain?, subjectDomain?, jwksUrl?, audience?}); https only',
      )
      .option('--allow-insecure-issuer', 'accept plain-http issuers and JWKS from --issuer-config (tests only)')
      .option(
        '--ca-key <pkcs11-uri>',
        "the CA intermediate's key in a PKCS#11 token (RFC 7512: pkcs11:token=…;object=…?module-path=…&pin-source=file:…|env:…)",
      )
      .option('--log-key <pkcs11-uri>', "the transparency log's signing key in a PKCS#11 token (same URI form)")
      .option(
        '--identity-key <pkcs11-uri>',
        "the identity issuer's key in a PKCS#11 token (same URI form): no key file, so the break-glass path is closed",
      )
      .option('--tls-cert <pem>', 'serve the log, CA and issuer over HTTPS with this certificate (chain)')
      .option('--tls-key <pem>', 'private key for --tls-cert')
      .option('--client-ca <pem>', 'require an X509-SVID from this trust bundle for writes (POST) to each service')
      .option(
        '--ca-allow-spiffe-id <id>',
        'with --client-ca: SPIFFE ID (or ^…$ pattern) allowed to request certificates; repeatable',
        collectId,
      )
      .option(
        '--tlog-allow-spiffe-id <id>',
        'with --client-ca: SPIFFE ID (or ^…$ pattern) allowed to submit to the log; repeatable',
        collectId,
      )
      .option(
        '--identity-allow-spiffe-id <id>',
        'with --client-ca: SPIFFE ID (or ^…$ pattern) allowed to request tokens; repeatable',
        collectId,
      )
      .option('--index <postgres-url>', TLOG_INDEX_HELP)
      .option('--tiles <dir|s3://bucket/prefix>', TLOG_TILES_HELP)
      .option('--s3-config <file>', TLOG_S3_CONFIG_HELP)
      .option('--json', 'print the endpoints as JSON'),
  ).action(up);

  registerIdentityCommands(program);

  const tlog = program.command('tlog').description('the transparency log (Rekor v1 API)');
  const tlogServe = addLimitOptions(
    tlog
      .command('serve')
      .description('run only the transparency log')
      .requiredOption('--data <dir>', 'data directory (log database and signing key)')
      .option('--listen <addr>', 'HOST:PORT to bind', '127.0.0.1:0')
      .option('--log-name <name>', 'checkpoint key name / origin host (must occur in the trusted root baseUrl)')
      .option('--json', 'print {url, logId, publicKey} as JSON'),
  );
  tlogServe
    .option(
      '--log-key <pkcs11-uri>',
      "the log's signing key in a PKCS#11 token (RFC 7512 URI, as for `up --log-key`): no key file in --data",
    )
    .option('--index <postgres-url>', TLOG_INDEX_HELP)
    .option('--tiles <dir|s3://bucket/prefix>', TLOG_TILES_HELP)
    .option('--s3-config <file>', TLOG_S3_CONFIG_HELP)
    .option(
      '--witness-url <url>',
      'a witness asked to cosign each checkpoint (C2SP tlog-witness); repeatable',
      collectId,
    )
    .option('--witness-vkey <vkey>', 'the vkey of the --witness-url at the same position; repeatable', collectId);
  addMtlsOptions(tlogServe, 'submissions (POST; reads stay open)').action(tlogServeAction);
  tlog
    .command('monitor')
    .description(
      'check the newest checkpoint of a log is signed and a consistent extension of the last one seen ' +
        '(exit 1 when the log misbehaved: fork, shrink, bad signature or a malformed answer; 3 when unreachable)',
    )
    .requiredOption('--url <url>', 'log base URL (with --tiles: the tlog-tiles base, e.g. http://log/api/v2)')
    .requiredOption('--state <file>', 'state file: the log key (pinned on first run) and the last verified checkpoint')
    .option('--public-key <pem-file>', 'the log public key (else pinned from the first run; required with --tiles)')
    .option('--tiles', 'follow the log from its C2SP tlog-tiles alone (consistency computed from tiles)')
    .option('--log-name <name>', 'with --tiles: the checkpoint key name of the log')
    .option('--witness <vkey>', 'with --tiles: a witness key (C2SP vkey); repeatable', collectId)
    .option('--min-witnesses <n>', 'with --tiles: cosignatures required from --witness keys', '0')
    .option('--json', 'machine-readable output')
    .action(async (flags: OutputOptions & MonitorFlags) => {
      try {
        const publicKeyPem = flags.publicKey ? readPublicKeyPem(flags.publicKey) : undefined;
        const result = flags.tiles
          ? await monitorTiles(flags, publicKeyPem)
          : await (
              await tlogLib()
            ).monitorLog({ url: flags.url, stateFile: flags.state, ...(publicKeyPem ? { publicKeyPem } : {}) });
        printResult(flags, { ok: true, ...result }, () => `log ${flags.url} is consistent: ${JSON.stringify(result)}`);
      } catch (err) {
        const exit = monitorExitCode(err);
        if (exit === EXIT.FAILURE) info(flags, 'monitor: the log is NOT trustworthy');
        fail(flags, err, exit);
      }
    });
  tlog
    .command('witness')
    .description(
      'verify the newest checkpoint of a tiled log (log signature, consistency from tiles with the last one ' +
        'witnessed) and cosign it (C2SP tlog-cosignature, Ed25519); exit 1 when the log misbehaved, 3 when unreachable',
    )
    .requiredOption('--url <url>', 'tlog-tiles base URL (e.g. http://log/api/v2 or a static server)')
    .requiredOption('--public-key <pem-file>', 'the log public key')
    .requiredOption('--log-name <name>', 'the checkpoint key name of the log')
    .requiredOption('--name <name>', "this witness's name (key name of its cosignature lines)")
    .requiredOption('--key <pem-file>', "this witness's Ed25519 private key (0600)")
    .requiredOption('--state <file>', 'state file: the last checkpoint this witness cosigned')
    .option('--out <file>', 'write the cosigned checkpoint here')
    .option('--json', 'machine-readable output')
    .action(async (flags: OutputOptions & WitnessFlags) => {
      try {
        const { witnessTiledLog } = await tlogLib();
        const result = await witnessTiledLog({
          tilesUrl: flags.url,
          logPublicKeyPem: readPublicKeyPem(flags.publicKey),
          logName: flags.logName,
          stateFile: flags.state,
          witnessName: flags.name,
          witnessKey: readWitnessKey(flags.key),
        });
        if (flags.out) writeFileSync(flags.out, result.cosigned);
        printResult(flags, { ok: true, ...result }, () => result.cosigned.trimEnd());
      } catch (err) {
        fail(flags, err, monitorExitCode(err));
      }
    });
  addWitnessServe(tlog);
}

interface WitnessServeFlags {
  listen: string;
  name: string;
  key: string;
  state: string;
  origin: string;
  publicKey: string;
  logName?: string;
}

function addWitnessServe(tlog: Command): void {
  tlog
    .command('witness-serve')
    .description(
      'serve a C2SP tlog-witness endpoint (POST /add-checkpoint): cosign checkpoints of the configured log that ' +
        'are signed by its key and consistent with the last one cosigned',
    )
    .option('--listen <addr>', 'HOST:PORT to bind', '127.0.0.1:0')
    .requiredOption('--name <name>', "this witness's name (key name of its cosignature lines)")
    .requiredOption('--key <pem-file>', "this witness's Ed25519 private key (0600)")
    .requiredOption('--state <file>', 'state file: latest cosigned size and root per log')
    .requiredOption('--origin <origin>', 'the checkpoint origin of the witnessed log')
    .requiredOption('--public-key <pem-file>', 'the log public key')
    .option('--log-name <name>', 'the checkpoint key name of the log')
    .option('--json', 'print {url, vkey} as JSON')
    .option('--quiet', 'print nothing on success')
    .action(async (flags: OutputOptions & WitnessServeFlags) => {
      try {
        const { host, port } = parseListen(flags.listen);
        const key = createPrivateKey(readWitnessKey(flags.key));
        const { startWitnessServer, witnessVkey } = await tlogLib();
        const server = await startWitnessServer({
          name: flags.name,
          key,
          stateFile: flags.state,
          host,
          port,
          logs: [
            {
              origin: flags.origin,
              publicKeyPem: readPublicKeyPem(flags.publicKey),
              ...(flags.logName ? { keyName: flags.logName } : {}),
            },
          ],
        });
        const vkey = witnessVkey(flags.name, key);
        printResult(flags, { url: server.url, vkey }, () => `witness listening on ${server.url} (vkey ${vkey})`);
        runUntilSignal(() => server.close());
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.UNAVAILABLE);
      }
    });
}

async function witnessEndpoints(flags: { witnessUrl?: string[]; witnessVkey?: string[] }): Promise<WitnessEndpoint[]> {
  const { parseWitnessVkey } = await tlogLib();
  const urls = flags.witnessUrl ?? [];
  const vkeys = flags.witnessVkey ?? [];
  if (urls.length !== vkeys.length) throw new UsageError('give one --witness-vkey per --witness-url, in order');
  return urls.map((url, i) => {
    try {
      parseWitnessVkey(vkeys[i]!);
    } catch (err) {
      throw new UsageError(`--witness-vkey: ${(err as Error).message}`);
    }
    return { url, vkey: vkeys[i]! };
  });
}

interface MonitorFlags {
  url: string;
  state: string;
  publicKey?: string;
  tiles?: boolean;
  logName?: string;
  witness?: string[];
  minWitnesses: string;
}

interface WitnessFlags {
  url: string;
  publicKey: string;
  logName: string;
  name: string;
  key: string;
  state: string;
  out?: string;
}

async function monitorTiles(flags: MonitorFlags, publicKeyPem: string | undefined) {
  if (!publicKeyPem || !flags.logName) throw new UsageError('--tiles needs --public-key and --log-name');
  const min = Number(flags.minWitnesses);
  if (!Number.isSafeInteger(min) || min < 0) throw new UsageError(`invalid --min-witnesses '${flags.minWitnesses}'`);
  if (min > (flags.witness ?? []).length) throw new UsageError('--min-witnesses exceeds the number of --witness keys');
  const { monitorTiledLog } = await tlogLib();
  return monitorTiledLog({
    tilesUrl: flags.url,
    logPublicKeyPem: publicKeyPem,
    logName: flags.logName,
    stateFile: flags.state,
    witnesses: flags.witness ?? [],
    minWitnesses: min,
  });
}

function readWitnessKey(path: string): string {
  const problem = privateKeyFileProblem(path, 'witness key');
  if (problem) throw new UsageError(problem.message);
  return readFileSync(path, 'utf8');
}

type TlogServeFlags = OutputOptions &
  LimitFlags &
  MtlsFlags &
  LogBackendFlags & {
    data: string;
    listen: string;
    logName?: string;
    logKey?: string;
    witnessUrl?: string[];
    witnessVkey?: string[];
  };

/** Where the log keeps its metadata and tiles (`tlog serve` and `up`). */
interface LogBackendFlags {
  index?: string;
  tiles?: string;
  s3Config?: string;
}

/** The log's storage and tile target from the flags; `close` releases what was opened (also on a later failure). */
async function openLogBackends(
  flags: LogBackendFlags,
): Promise<{ storage?: PgLogStorage; tiles?: TileTarget; close(): Promise<void> }> {
  if (flags.s3Config !== undefined && flags.tiles === undefined)
    throw new UsageError('--s3-config is only for --tiles s3://…');
  const tiles = flags.tiles !== undefined ? await openTileTarget(flags.tiles, flags.s3Config) : undefined;
  try {
    const storage = flags.index !== undefined ? await openPgLogStorage(flags.index) : undefined;
    return { ...(storage ? { storage } : {}), ...(tiles ? { tiles } : {}), close: async () => tiles?.close() };
  } catch (err) {
    tiles?.close();
    throw err;
  }
}

/**
 * `airlock tlog serve`: bad flags, PKCS#11 URI/PIN/object, key material or a malformed/edited/newer PostgreSQL
 * index → 2, anything else (bind, database unreachable) → 3.
 */
async function tlogServeAction(flags: TlogServeFlags): Promise<void> {
  let signer: ReturnType<typeof openPkcs11Signer> | undefined;
  let backends: Awaited<ReturnType<typeof openLogBackends>> | undefined;
  try {
    const { host, port } = parseListen(flags.listen);
    const mtls = await mtlsFromFlags(flags, 'writes');
    const witnesses = await witnessEndpoints(flags);
    const [{ openPkcs11Signer }, { startTlogServer }] = await Promise.all([planeLib(), tlogLib()]);
    signer = flags.logKey !== undefined ? openPkcs11Signer(flags.logKey) : undefined;
    backends = await openLogBackends(flags);
    const server = await startTlogServer({
      ...(backends.storage ? { storage: backends.storage } : {}),
      ...(backends.tiles ? { tiles: backends.tiles.tiles } : {}),
      ...(mtls ? { tls: mtls.tls, ...(mtls.gate ? { gate: mtls.gate } : {}) } : {}),
      dataDir: flags.data,
      host,
      port,
      limits: parseLimits(flags),
      ...(flags.logName ? { logName: flags.logName } : {}),
      ...(signer ? { signer } : {}),
      ...(witnesses.length ? { witnesses } : {}),
    });
    printResult(
      flags,
      { url: server.url, logId: server.logId, origin: server.origin, publicKey: server.publicKeyPem },
      () => `transparency log listening on ${server.url} (log ID ${server.logId})`,
    );
    const tokenSigner = signer;
    const opened = backends;
    runUntilSignal(async () => {
      await server.close();
      await opened.close();
      tokenSigner?.close();
    });
  } catch (err) {
    signer?.close();
    await backends?.close();
    fail(flags, err, upExitCode(err) === EXIT.USAGE || backendInputExit(err) ? EXIT.USAGE : EXIT.UNAVAILABLE);
  }
}

/** Unreachable log → 3, bad flags or state file → 2, anything the log did wrong → 1. */
function monitorExitCode(err: unknown): number {
  const code = (err as { code?: unknown }).code;
  if (err instanceof UsageError || code === 'TLOG_MONITOR_STATE_INVALID' || code === 'TLOG_INVALID_OPTION')
    return EXIT.USAGE;
  if (code === 'TLOG_MONITOR_UNREACHABLE') return EXIT.UNAVAILABLE;
  return EXIT.FAILURE;
}

function readPublicKeyPem(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --public-key '${path}': ${(err as Error).message}`);
  }
  try {
    createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new UsageError(`--public-key '${path}' is not a PEM public key`);
  }
  return pem;
}
