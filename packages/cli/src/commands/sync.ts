import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { SyncInput, InputKind } from '@airlock/mirror-sync';
import { readEndpoints } from '@airlock/plane';
import { isAgentRefusal, resolveSigningContext, signingEndpointsOf, type SigningFlags } from '../context.js';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { parseIntFlag } from './cli-flags.js';

interface SyncFlags extends SigningFlags, OutputOptions {
  npmLock: string[];
  requirements: string[];
  bazelFetch: string[];
  bazelQuery: string[];
  nixDrv: string[];
  nixFetch: string[];
  list: string[];
  pypiIndex?: string;
  npmRegistry?: string;
  npmrc?: string;
  allowEmpty?: boolean;
  rewriteHost: string[];
  out: string;
  state?: string;
  concurrency: string;
  perHost: string;
  allowGap?: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function registerSyncCommand(program: Command): void {
  program
    .command('sync')
    .description(
      'outside the perimeter: fetch exactly the pinned dependencies of lockfiles, verify every hash, write one signed transfer bundle',
    )
    .option('--npm-lock <file>', 'npm package-lock.json (v2/v3); repeatable', collect, [])
    .option('--requirements <file>', 'pip requirements.txt with --hash pins; repeatable', collect, [])
    .option('--bazel-fetch <file>', 'Bazel fetch list (JSON/YAML: name, urls, sha256); repeatable', collect, [])
    .option(
      '--bazel-query <file>',
      "output of `bazel query 'kind(http_archive, //external:*)' --output=build`; repeatable",
      collect,
      [],
    )
    .option('--nix-drv <file>', '`nix show-derivation -r` JSON (fixed-output derivations); repeatable', collect, [])
    .option('--nix-fetch <file>', 'Nix fetch list (url + hash); repeatable', collect, [])
    .option('--list <file>', 'generic list of {url, sha256|sha512|integrity}; repeatable', collect, [])
    .option('--pypi-index <url>', 'PEP 691/503 index to resolve requirements against')
    .option(
      '--npm-registry <url>',
      'registry to read npm version manifests from (default: each resolved URL’s registry); also resolves lockfile entries without `resolved`',
    )
    .option(
      '--npmrc <file>',
      '.npmrc whose registry= and @scope:registry= lines resolve entries without `resolved` (credential lines are refused)',
    )
    .option('--allow-empty', 'write a bundle even when the inputs pin nothing')
    .option(
      '--rewrite-host <from=to>',
      'fetch from another base URL (e.g. a local upstream mirror); repeatable',
      collect,
      [],
    )
    .requiredOption('--out <bundle.tar>', 'where to write the transfer bundle')
    .option('--state <file>', 'sync state (last snapshot id + sequence); chains this bundle to the previous one')
    .option('--concurrency <n>', 'parallel downloads', '8')
    .option('--per-host <n>', 'parallel downloads per host', '4')
    .option('--data <dir>', 'trust plane data directory: sign with its CA/log and embedded identity')
    .option('--fulcio-url <url>', 'CA URL (overrides --data)')
    .option('--rekor-url <url>', 'log URL (overrides --data)')
    .option('--tsa-url <url>', 'RFC 3161 timestamp authority URL (overrides --data)')
    .option('--no-timestamp', 'do not request an RFC 3161 timestamp for the snapshot bundle')
    .option('--identity-token <jwt>', 'OIDC token of the sync job (else $SIGSTORE_ID_TOKEN, else minted from --data)')
    .option('--identity-token-file <file>', 'read the OIDC token from a file')
    .option(
      '--subject <spiffe-id>',
      'SPIFFE ID to mint for with --data (default spiffe://<trust domain>/airlock/mirror-sync)',
    )
    .option(
      '--agent-socket <path>',
      'get the token from the workload attestation agent (else $AIRLOCK_AGENT_SOCKET); --subject then picks the ID',
    )
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'no progress output')
    .action(async (flags: SyncFlags) => {
      try {
        const inputs: SyncInput[] = [];
        const add = (kind: InputKind, paths: string[]): void => paths.forEach((path) => inputs.push({ path, kind }));
        add('npm-lock', flags.npmLock);
        add('requirements', flags.requirements);
        add('bazel-fetch', flags.bazelFetch);
        add('bazel-query', flags.bazelQuery);
        add('nix-drv', flags.nixDrv);
        add('nix-fetch', flags.nixFetch);
        add('generic', flags.list);
        if (inputs.length === 0)
          throw new UsageError(
            'no inputs: give at least one of --npm-lock, --requirements, --bazel-fetch, --bazel-query, --nix-drv, --nix-fetch, --list',
          );
        const rewriteHosts: Record<string, string> = {};
        for (const r of flags.rewriteHost) {
          const i = r.indexOf('=');
          if (i <= 0) throw new UsageError(`--rewrite-host '${r}': expected FROM=TO`);
          rewriteHosts[r.slice(0, i)] = r.slice(i + 1);
        }
        const subject =
          flags.subject ??
          (flags.data ? `spiffe://${readEndpoints(flags.data).trustDomain}/airlock/mirror-sync` : undefined);
        // Loaded here, not at the top: registering `sync` (and top-level --help) must not load the signer or the SBOM library.
        const [{ parseNpmrc, syncToBundle }, { sbomFromManifest }, { AirlockSigner }] = await Promise.all([
          import('@airlock/mirror-sync'),
          import('@airlock/sbom'),
          import('@airlock/sign'),
        ]);
        const npmrc = flags.npmrc ? parseNpmrc(readNpmrc(flags.npmrc), flags.npmrc) : undefined;
        const npmRegistry = flags.npmRegistry ?? npmrc?.registry;
        const ctx = resolveSigningContext({ ...flags, ...(subject ? { subject } : {}) });
        await ctx.preflight();
        const signer = new AirlockSigner({ ...signingEndpointsOf(ctx), identity: ctx.identity });
        const result = await syncToBundle({
          inputs,
          out: flags.out,
          ...(flags.state ? { state: flags.state } : {}),
          ...(flags.pypiIndex ? { pypiIndex: flags.pypiIndex } : {}),
          ...(npmRegistry ? { npmRegistry } : {}),
          ...(npmrc ? { npmScopeRegistries: npmrc.scopes } : {}),
          ...(flags.allowEmpty ? { allowEmpty: true } : {}),
          preflight: () => checkPlaneReachable(ctx.fulcioUrl, ctx.rekorUrl),
          ...(Object.keys(rewriteHosts).length ? { rewriteHosts } : {}),
          concurrency: parseIntFlag('--concurrency', flags.concurrency),
          perHostConcurrency: parseIntFlag('--per-host', flags.perHost),
          signer,
          sbom: async (manifest) => sbomFromManifest(manifest),
          progress: flags.quiet ? 'none' : 'auto',
        });
        printResult(flags, { ok: true, ...result }, () =>
          [
            `wrote ${result.bundlePath}`,
            `  snapshot:  ${result.snapshotId} (sequence ${result.sequence}, previous ${result.previous ?? 'none'})`,
            `  entries:   ${result.entries}   blobs: ${result.blobs} (${(result.blobBytes / 1e6).toFixed(1)} MB)`,
            `  bundle:    sha256:${result.bundleSha256} (${(result.bytes / 1e6).toFixed(1)} MB) in ${(result.durationMs / 1000).toFixed(1)} s`,
            `  signed:    ${result.signed ? 'yes' : 'NO'}   sbom: ${result.sbom ? 'yes' : 'no'}`,
            ...result.notes.map((n) => `  note: ${n}`),
          ].join('\n'),
        );
      } catch (err) {
        fail(flags, err, exitCodeOf(err));
      }
    });
}

const USAGE_CODES = new Set([
  'SYNC_UNPINNED',
  'SYNC_INPUT_INVALID',
  'SYNC_NO_REGISTRY',
  'SYNC_EMPTY',
  'SYNC_OUTPUT_UNWRITABLE',
]);

function exitCodeOf(err: unknown): number {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'SYNC_PLANE_UNREACHABLE' || code === 'PLANE_NOT_RUNNING' || code === 'AGENT_UNAVAILABLE')
    return EXIT.UNAVAILABLE;
  if (isAgentRefusal(err)) return EXIT.USAGE;
  return err instanceof UsageError || USAGE_CODES.has(code) ? EXIT.USAGE : EXIT.FAILURE;
}

function readNpmrc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --npmrc '${path}': ${(e as Error).message}`);
  }
}

/**
 * The CA and the log answer HTTP at all (any status): checked before the first download, so a run does not fetch
 * everything and then fail to sign. Signing itself still fails closed if they misbehave later.
 */
async function checkPlaneReachable(fulcioUrl: string, rekorUrl: string): Promise<void> {
  for (const [what, url] of [
    ['certificate authority', fulcioUrl],
    ['transparency log', rekorUrl],
  ] as const) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'manual' });
      await res.body?.cancel();
    } catch (cause) {
      const { SyncError } = await import('@airlock/mirror-sync');
      throw new SyncError(
        'SYNC_PLANE_UNREACHABLE',
        `the ${what} at ${url} cannot be reached (${(cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : (cause as Error).message}); nothing was downloaded`,
        { cause },
      );
    }
  }
}
