import type { Command } from 'commander';
import { issueWorkloadToken, startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { monitorLog, startTlogServer } from '@airlock/tlog';
import type { TrustedIssuer } from '@airlock/identity';
import { readJsonFile } from '../context.js';
import { EXIT, fail, info, printResult, UsageError, type OutputOptions } from '../output.js';

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port '${v}'`);
  return n;
}

/** ADDR = host:port, :port or port. */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(addr);
  if (!m) throw new UsageError(`invalid listen address '${addr}' (expected HOST:PORT)`);
  return { host: m[1] || '127.0.0.1', port: parsePort(m[2]!) };
}

/** Keeps a server process alive until SIGINT/SIGTERM, then closes it cleanly. */
export function runUntilSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function loadIssuerConfig(path: string | undefined): TrustedIssuer[] {
  if (!path) return [];
  const cfg = readJsonFile(path, 'issuer config');
  const list = Array.isArray(cfg) ? cfg : (cfg as { issuers?: unknown }).issuers;
  if (!Array.isArray(list))
    throw new UsageError(`issuer config '${path}' must be an array of issuers or {"issuers": [...]}`);
  for (const [i, it] of list.entries()) {
    const o = it as Partial<TrustedIssuer>;
    if (typeof o.issuerUrl !== 'string' || !['spiffe', 'email', 'kubernetes', 'uri'].includes(String(o.type))) {
      throw new UsageError(
        `issuer config '${path}': issuers[${i}] needs issuerUrl and type (spiffe|email|kubernetes|uri)`,
      );
    }
  }
  return list as TrustedIssuer[];
}

export function registerPlaneCommands(program: Command): void {
  program
    .command('up')
    .description(
      'start the trust plane (transparency log, CA, workload-identity issuer) on loopback; writes DIR/endpoints.json and DIR/trusted_root.json',
    )
    .requiredOption('--data <dir>', 'data directory (keys, log database, generated files)')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--tlog-port <port>', 'transparency log port (0 = any free port)', '0')
    .option('--ca-port <port>', 'certificate authority port', '0')
    .option('--identity-port <port>', 'identity issuer port', '0')
    .option('--trust-domain <domain>', 'SPIFFE trust domain of the embedded issuer', 'airlock.internal')
    .option(
      '--issuer-config <file>',
      'JSON list of extra trusted OIDC issuers ({issuerUrl, type, trustDomain?, subjectDomain?, jwksUrl?})',
    )
    .option('--json', 'print the endpoints as JSON')
    .action(
      async (
        flags: OutputOptions & {
          data: string;
          host: string;
          tlogPort: string;
          caPort: string;
          identityPort: string;
          trustDomain: string;
          issuerConfig?: string;
        },
      ) => {
        let plane: RunningTrustPlane;
        try {
          plane = await startTrustPlane({
            dataDir: flags.data,
            host: flags.host,
            ports: {
              tlog: parsePort(flags.tlogPort),
              ca: parsePort(flags.caPort),
              identity: parsePort(flags.identityPort),
            },
            trustDomain: flags.trustDomain,
            externalIssuers: loadIssuerConfig(flags.issuerConfig),
          });
        } catch (err) {
          fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.UNAVAILABLE);
        }
        const e = plane.endpoints;
        printResult(flags, e, () =>
          [
            'airlock trust plane is up',
            `  transparency log:   ${e.tlogUrl}`,
            `  certificate auth.:  ${e.caUrl}`,
            `  identity issuer:    ${e.identityIssuerUrl}  (trust domain ${e.trustDomain})`,
            `  trusted root:       ${e.trustedRoot}`,
            `  endpoints:          ${flags.data}/endpoints.json`,
            'Ctrl-C to stop.',
          ].join('\n'),
        );
        runUntilSignal(() => plane.close());
      },
    );

  const identity = program.command('identity').description('the embedded workload-identity issuer');
  identity
    .command('token')
    .description('print a fresh workload identity token (JWT, audience sigstore) from the plane in --data')
    .requiredOption('--data <dir>', 'trust plane data directory')
    .requiredOption('--subject <spiffe-id>', 'SPIFFE ID, e.g. spiffe://airlock.internal/ci/runner')
    .option('--ttl <seconds>', 'token lifetime in seconds', '600')
    .option('--json', 'print {token} as JSON')
    .action(async (flags: OutputOptions & { data: string; subject: string; ttl: string }) => {
      try {
        const token = await issueWorkloadToken(flags.data, flags.subject, { ttlSeconds: Number(flags.ttl) });
        printResult(flags, { token }, () => token);
      } catch (err) {
        fail(flags, err, EXIT.USAGE);
      }
    });

  const tlog = program.command('tlog').description('the transparency log (Rekor v1 API)');
  tlog
    .command('serve')
    .description('run only the transparency log')
    .requiredOption('--data <dir>', 'data directory (log database and signing key)')
    .option('--listen <addr>', 'HOST:PORT to bind', '127.0.0.1:0')
    .option('--log-name <name>', 'checkpoint key name / origin host (must occur in the trusted root baseUrl)')
    .option('--json', 'print {url, logId, publicKey} as JSON')
    .action(async (flags: OutputOptions & { data: string; listen: string; logName?: string }) => {
      try {
        const { host, port } = parseListen(flags.listen);
        const server = await startTlogServer({
          dataDir: flags.data,
          host,
          port,
          ...(flags.logName ? { logName: flags.logName } : {}),
        });
        printResult(
          flags,
          { url: server.url, logId: server.logId, origin: server.origin, publicKey: server.publicKeyPem },
          () => `transparency log listening on ${server.url} (log ID ${server.logId})`,
        );
        runUntilSignal(() => server.close());
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.UNAVAILABLE);
      }
    });
  tlog
    .command('monitor')
    .description(
      'check the newest checkpoint of a log is signed and a consistent extension of the last one seen (exit 1 on fork, shrink or bad signature)',
    )
    .requiredOption('--url <url>', 'log base URL')
    .requiredOption('--state <file>', 'state file: the log key (pinned on first run) and the last verified checkpoint')
    .option('--public-key <pem-file>', 'the log public key (else pinned from the first run)')
    .option('--json', 'machine-readable output')
    .action(async (flags: OutputOptions & { url: string; state: string; publicKey?: string }) => {
      try {
        const { readFileSync } = await import('node:fs');
        const result = await monitorLog({
          url: flags.url,
          stateFile: flags.state,
          ...(flags.publicKey ? { publicKeyPem: readFileSync(flags.publicKey, 'utf8') } : {}),
        });
        printResult(flags, { ok: true, ...result }, () => `log ${flags.url} is consistent: ${JSON.stringify(result)}`);
      } catch (err) {
        info(flags, 'monitor: the log is NOT trustworthy');
        fail(flags, err, EXIT.FAILURE);
      }
    });
}
