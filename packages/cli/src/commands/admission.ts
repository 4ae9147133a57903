import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Command } from 'commander';
// The controller, server and manifest renderer (jose, yaml, the verifier) load in each action, not at registration.
import type { AdmissionControllerConfig, WorkspaceVerdict } from '@airlock/admission';
import { EXIT, fail, info, printResult, UsageError, type OutputOptions } from '../output.js';
import { parseIntFlag, parseListen, runUntilSignal } from './cli-flags.js';

/**
 * `airlock admission serve|manifests` (the Kubernetes webhook) and `airlock admit workspace` (the check a dev
 * environment runs before it starts). Both decide with the same controller and the same admission policy.
 */

interface ControllerFlags extends OutputOptions {
  policy: string;
  trustedRoot?: string[];
  data?: string;
  snapshot?: string[];
  registryConfig?: string;
  dockerconfigjson?: string;
  registryCa?: string;
}

interface ServeFlags extends ControllerFlags {
  tlsCert: string;
  tlsKey: string;
  clientCa?: string;
  allowSpiffeId?: string[];
  host: string;
  port: string;
  listen?: string;
  deadline: string;
  cacheTtl: string;
  cacheSize: string;
  cache: boolean;
  tagTtl: string;
  cosignLayers: string;
  toolchainDir?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Config errors (policy, trusted root, registries, TLS files, flags) are exit 2: the operator must fix input. */
const CONFIG_CODES = new Set([
  'USAGE',
  'ADMISSION_POLICY_UNREADABLE',
  'ADMISSION_POLICY_INVALID',
  'ADMISSION_CONFIG_INVALID',
  'ADMISSION_TLS_INVALID',
  'ADMISSION_SERVER_OPTIONS_INVALID',
]);

function exitFor(err: unknown, fallback: number): number {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONFIG_CODES.has(code) ? EXIT.USAGE : fallback;
}

/** `8s`, `8000ms`, `2m` → milliseconds. */
export function parseMs(flag: string, value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'] : NaN;
  if (!m || !Number.isSafeInteger(ms) || ms <= 0)
    throw new UsageError(`${flag} '${value}': expected a duration such as 8s, 8000ms, 10m`);
  return ms;
}

/** `--cosign-layers`: `always` (as `airlock verify image`) or `when-needed`. */
export function parseCosignLayers(value: string): 'always' | 'when-needed' {
  if (value === 'always' || value === 'when-needed') return value;
  throw new UsageError(`--cosign-layers '${value}': expected always or when-needed`);
}

/** Longest `--tag-ttl`: a tag answer older than this is a configuration mistake, not a trade-off. */
const MAX_TAG_TTL_MS = 3_600_000;

/** `--tag-ttl`: seconds (`5`), or a duration (`5s`, `500ms`); 0 = every request resolves its tags live. */
export function parseTagTtl(value: string): number {
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1_000 : parseMs('--tag-ttl', value);
  if (!Number.isSafeInteger(ms) || ms > MAX_TAG_TTL_MS)
    throw new UsageError(`--tag-ttl '${value}': at most ${MAX_TAG_TTL_MS / 1_000} seconds`);
  return ms;
}

/** `--client-ca/--allow-spiffe-id`: POSTs need an authorized SVID; probes and /metrics (GET) stay open. */
async function admissionClientAuth(
  flags: ServeFlags,
): Promise<{ ca: Buffer; gate: (req: IncomingMessage, res: ServerResponse) => boolean } | undefined> {
  if (flags.allowSpiffeId && !flags.clientCa) throw new UsageError('--allow-spiffe-id needs --client-ca');
  if (!flags.clientCa) return undefined;
  let ca: Buffer;
  try {
    ca = readFileSync(flags.clientCa);
  } catch {
    throw new UsageError(`--client-ca ${flags.clientCa}: cannot read the file`);
  }
  const { refuseUnauthorized, spiffeAuthorizer } = await import('@airlock/identity');
  try {
    const authorize = spiffeAuthorizer({ trustBundle: ca, allow: flags.allowSpiffeId ?? [] });
    const gate = (req: IncomingMessage, res: ServerResponse): boolean =>
      req.method !== 'GET' && req.method !== 'HEAD' && refuseUnauthorized(authorize(req), res);
    return { ca, gate };
  } catch (err) {
    throw new UsageError(`--client-ca/--allow-spiffe-id: ${(err as Error).message}`);
  }
}

function trustedRoots(flags: ControllerFlags): string[] {
  if (flags.trustedRoot?.length) return flags.trustedRoot;
  if (flags.data) return [join(flags.data, 'trusted_root.json')];
  throw new UsageError('no trusted root: pass --trusted-root FILE (repeatable) or --data DIR');
}

function controllerConfig(flags: ControllerFlags): AdmissionControllerConfig {
  for (const [flag, file] of [
    ['--policy', flags.policy],
    ['--registry-config', flags.registryConfig],
    ['--dockerconfigjson', flags.dockerconfigjson],
    ['--registry-ca', flags.registryCa],
  ] as const)
    if (file !== undefined && !existsSync(file)) throw new UsageError(`${flag} ${file}: no such file`);
  const roots = trustedRoots(flags);
  for (const r of roots) if (!existsSync(r)) throw new UsageError(`trusted root ${r}: no such file`);
  return {
    policyFile: flags.policy,
    trustedRoots: roots,
    ...(flags.snapshot?.length ? { snapshots: flags.snapshot } : {}),
    registries: {
      ...(flags.registryConfig ? { file: flags.registryConfig } : {}),
      ...(flags.dockerconfigjson ? { dockerConfigJson: flags.dockerconfigjson } : {}),
      ...(flags.registryCa ? { defaultCaFile: flags.registryCa } : {}),
    },
  };
}

function controllerOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--policy <file>', 'the admission policy (YAML or JSON, schemas/admission-policy.v1.schema.json)')
    .option('--trusted-root <file>', 'trusted_root.json to verify against (repeatable)', collect)
    .option('--data <dir>', 'trust plane data directory (its trusted_root.json, when no --trusted-root)')
    .option('--snapshot <dir>', 'a signed mirror snapshot for dependency rules (repeatable)', collect)
    .option('--registry-config <file>', 'registries the controller may contact (hosts, CA files, credentials)')
    .option('--dockerconfigjson <file>', 'a Kubernetes .dockerconfigjson with registry credentials')
    .option('--registry-ca <file>', 'PEM CA bundle for https registries whose entry has no caFile of its own');
}

export function registerAdmissionCommands(program: Command): void {
  const admission = program
    .command('admission')
    .description('the Kubernetes admission webhook: only verified images run (validating + digest-pinning mutating)');

  controllerOptions(
    admission
      .command('serve')
      .description('serve POST /validate, /mutate, /workspace, GET /healthz, /readyz, /metrics over HTTPS'),
  )
    .requiredOption('--tls-cert <pem>', 'serving certificate (chain); reloaded when the file changes')
    .requiredOption('--tls-key <pem>', 'private key for --tls-cert; reloaded when the file changes')
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .option('--port <n>', 'port to bind (0: any free port)', '8443')
    .option('--listen <addr>', 'HOST:PORT to bind (instead of --host/--port, as the other serve commands)')
    .option('--deadline <duration>', 'answer (deny) by then if verification has not finished', '8s')
    .option('--cache-ttl <duration>', 'how long a successful verification is reused', '10m')
    .option('--cache-size <n>', 'most cached verifications', '10000')
    .option('--no-cache', 'verify every image on every request (benchmarks, debugging)')
    .option(
      '--tag-ttl <seconds>',
      'reuse a tag→digest answer up to this old (0: resolve every tag live; /mutate still pins what was verified)',
      '0',
    )
    .option(
      '--cosign-layers <when>',
      'cosign .sig/.att layers: always read and cross-checked, or when-needed (only when the Sigstore bundles alone fail the policy)',
      'always',
    )
    .option('--toolchain-dir <dir>', 'where POST /workspace may name toolchain files (default: none accepted)')
    .option('--client-ca <pem>', 'require an X509-SVID from this trust bundle for POST /validate, /mutate, /workspace')
    .option(
      '--allow-spiffe-id <id>',
      'with --client-ca: only this SPIFFE ID (exact, or anchored ^…$ pattern; repeatable)',
      collect,
    )
    .action(async (flags: ServeFlags) => {
      try {
        const { AdmissionMetrics, createAdmissionController, startAdmissionServer } =
          await import('@airlock/admission');
        const clientAuth = await admissionClientAuth(flags);
        const { host, port } = flags.listen
          ? parseListen(flags.listen)
          : { host: flags.host, port: parseIntFlag('--port', flags.port, 0) };
        if (port > 65535) throw new UsageError(`--port ${port}: at most 65535`);
        const deadlineMs = parseMs('--deadline', flags.deadline);
        const tagTtlMs = parseTagTtl(flags.tagTtl);
        const cosignLayers = parseCosignLayers(flags.cosignLayers);
        const metrics = new AdmissionMetrics();
        const controller = createAdmissionController({
          ...controllerConfig(flags),
          cache: flags.cache
            ? {
                ttlMs: parseMs('--cache-ttl', flags.cacheTtl),
                maxEntries: parseIntFlag('--cache-size', flags.cacheSize),
              }
            : false,
          ...(tagTtlMs > 0 ? { tags: { ttlMs: tagTtlMs } } : {}),
          cosignLayers,
          events: metrics,
        });
        let server;
        try {
          server = await startAdmissionServer({
            controller,
            metrics,
            tls: {
              certFile: flags.tlsCert,
              keyFile: flags.tlsKey,
              ...(clientAuth ? { clientCa: clientAuth.ca } : {}),
            },
            ...(clientAuth ? { clientAuth: { gate: clientAuth.gate } } : {}),
            host,
            port,
            deadlineMs,
            ...(flags.toolchainDir ? { toolchainDir: flags.toolchainDir } : {}),
            log: (line) => info(flags, line),
          });
        } catch (err) {
          await controller.close();
          throw err;
        }
        const endpoints = ['/validate', '/mutate', '/workspace', '/healthz', '/readyz', '/metrics'];
        printResult(
          flags,
          { ok: true, url: server.url, endpoints, deadlineMs, cache: flags.cache },
          () => `admission webhook serving on ${server.url} (${endpoints.join(', ')}; deadline ${deadlineMs} ms)`,
        );
        const running = server;
        runUntilSignal(async () => {
          await running.close();
          await controller.close();
        });
      } catch (err) {
        fail(flags, err, exitFor(err, EXIT.UNAVAILABLE));
      }
    });

  admission
    .command('manifests')
    .description(
      'print the Namespace, ServiceAccount, Deployment, Service and webhook configurations (YAML; --json: a list)',
    )
    .requiredOption('--namespace <ns>', 'namespace of the webhook (excluded from its own checks, as is kube-system)')
    .requiredOption('--image <ref>', 'the airlock image the webhook Deployment runs (pin it by digest)')
    .option('--ca-bundle <pem>', 'CA of the serving certificate (else cert-manager must inject it)')
    .option('--timeout <seconds>', 'webhook timeoutSeconds (the server denies at 80% of it)', '10')
    .option('--name <name>', 'name of every object', 'airlock-admission')
    .action(
      async (
        flags: OutputOptions & { namespace: string; image: string; caBundle?: string; timeout: string; name: string },
      ) => {
        try {
          const { manifestsYaml, renderManifests } = await import('@airlock/admission');
          let caBundlePem: string | undefined;
          if (flags.caBundle !== undefined) {
            try {
              caBundlePem = readFileSync(flags.caBundle, 'utf8');
            } catch (err) {
              throw new UsageError(`cannot read --ca-bundle ${flags.caBundle}: ${(err as Error).message}`);
            }
          } else info(flags, 'no --ca-bundle: the webhook configurations ask cert-manager to inject the CA');
          const objects = renderManifests({
            namespace: flags.namespace,
            image: flags.image,
            timeoutSeconds: parseIntFlag('--timeout', flags.timeout),
            name: flags.name,
            ...(caBundlePem !== undefined ? { caBundlePem } : {}),
          });
          printResult(flags, { ok: true, objects }, () => manifestsYaml(objects).trimEnd());
        } catch (err) {
          fail(flags, err, EXIT.USAGE);
        }
      },
    );

  const admit = program.command('admit').description('admission checks outside Kubernetes');
  controllerOptions(
    admit
      .command('workspace')
      .description(
        'the check a dev environment runs before it starts: the workspace image and toolchain files verified like the webhook would; exit 0 allow, 1 refuse, 3 registry unreachable',
      ),
  )
    .requiredOption('--image <ref>', 'the workspace image')
    .option(
      '--toolchain <file>',
      'a toolchain file (compiler, SDK tarball) verified by its provenance (repeatable)',
      collect,
    )
    .option('--deadline <duration>', 'give up (refuse) after this long', '30s')
    .action(async (flags: ControllerFlags & { image: string; toolchain?: string[]; deadline: string }) => {
      let verdict: WorkspaceVerdict;
      try {
        const { createAdmissionController, sharedSignal } = await import('@airlock/admission');
        const deadlineMs = parseMs('--deadline', flags.deadline);
        const controller = createAdmissionController({ ...controllerConfig(flags), watch: false, cache: false });
        try {
          const signal = sharedSignal(AbortSignal.timeout(deadlineMs));
          verdict = await controller.checkWorkspace(
            {
              image: flags.image,
              ...(flags.toolchain ? { toolchains: flags.toolchain.map((path) => ({ path })) } : {}),
            },
            { signal },
          );
        } finally {
          await controller.close();
        }
      } catch (err) {
        fail(flags, err, exitFor(err, EXIT.FAILURE));
      }
      // An image that could not be checked (registry down, deadline) is "unreachable" (3), not a failed check (1).
      const unreachable = !verdict.allowed && verdict.image.verdict === 'ERROR';
      const exit = verdict.allowed ? EXIT.OK : unreachable ? EXIT.UNAVAILABLE : EXIT.FAILURE;
      const reason = oneLine(verdict.reason);
      const code = unreachable ? 'ADMISSION_WORKSPACE_UNCHECKED' : 'ADMISSION_WORKSPACE_REFUSED';
      const error = verdict.allowed ? {} : { error: { code, message: reason } };
      printResult(flags, { ok: verdict.allowed, ...error, ...verdict }, () =>
        verdict.allowed ? `ALLOW: ${reason}` : `REFUSE: ${reason}`,
      );
      process.exit(exit);
    });
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
