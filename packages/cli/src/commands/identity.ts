import type { Command } from 'commander';
import { IdentityError } from '@airlock/identity';
import { issueWorkloadToken } from '@airlock/plane';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';

/** `identity token` failures: bad flags, subject or a missing --break-glass → 2, plane not running → 3, else 1. */
function tokenExitCode(err: unknown): number {
  const code = String((err as { code?: unknown }).code ?? '');
  if (
    err instanceof UsageError ||
    code.startsWith('SPIFFE_') ||
    code === 'TOKEN_REQUEST_INVALID' ||
    code === 'IDENTITY_BREAK_GLASS_REQUIRED'
  )
    return EXIT.USAGE;
  if (code === 'PLANE_NOT_RUNNING') return EXIT.UNAVAILABLE;
  return EXIT.FAILURE;
}

function parseTtl(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--ttl must be a positive integer, got '${v}'`);
  return n;
}

interface TokenFlags extends OutputOptions {
  data: string;
  subject: string;
  ttl: string;
  breakGlass?: boolean;
}

/**
 * Minting from the key file bypasses every workload check, so it is an admin break-glass path: refused without
 * the explicit flag, and always announced on stderr (even with --quiet) with who asked for which identity.
 */
async function breakGlassToken(flags: TokenFlags): Promise<void> {
  try {
    const ttlSeconds = parseTtl(flags.ttl);
    if (flags.breakGlass !== true) {
      throw new IdentityError(
        'IDENTITY_BREAK_GLASS_REQUIRED',
        'minting a token from the issuer key file is an admin break-glass path: workloads get their identity from ' +
          'the attestation agent (airlock identity agent; --agent-socket / AIRLOCK_AGENT_SOCKET). Pass --break-glass ' +
          'to mint anyway (it is logged)',
      );
    }
    process.stderr.write(
      `airlock: BREAK-GLASS token minted from the issuer key file in ${flags.data} for ${flags.subject} ` +
        `(ttl ${ttlSeconds}s) by uid ${process.getuid?.() ?? '?'} pid ${process.pid} at ${new Date().toISOString()}\n`,
    );
    const token = await issueWorkloadToken(flags.data, flags.subject, { ttlSeconds });
    printResult(flags, { token }, () => token);
  } catch (err) {
    fail(flags, err, tokenExitCode(err));
  }
}

export function registerIdentityCommands(program: Command): void {
  const identity = program
    .command('identity')
    .description('workload identities: the attestation agent and the break-glass path');
  identity
    .command('token')
    .description(
      'ADMIN BREAK-GLASS ONLY: mint a workload identity token (JWT, audience sigstore) by reading the issuer key file ' +
        'in --data directly (needs --break-glass, the plane user and a running plane; logged on stderr). Runners and ' +
        'sync jobs get their identities from `airlock identity agent` instead',
    )
    .requiredOption('--data <dir>', 'trust plane data directory')
    .requiredOption('--subject <spiffe-id>', 'SPIFFE ID, e.g. spiffe://airlock.internal/ci/runner')
    .option('--ttl <seconds>', 'token lifetime in seconds', '600')
    .option('--break-glass', 'confirm this is an admin break-glass use of the issuer key (required)')
    .option('--json', 'print {token} as JSON')
    .action(breakGlassToken);
}
