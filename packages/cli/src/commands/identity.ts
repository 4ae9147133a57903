import fs from 'node:fs';
import type { Command } from 'commander';
import { loadEntries, startAgent, type AgentLogRecord } from '@airlock/agent';
import { IdentityError, IdentityIssuer } from '@airlock/identity';
import { issueWorkloadToken } from '@airlock/plane';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { tpmNodeAttestation, type TpmAttestationFlags } from './node-attestation.js';
import { runUntilSignal } from './plane.js';

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

interface AgentFlags extends OutputOptions, TpmAttestationFlags {
  socket: string;
  entries: string;
  data: string;
  issuerUrl?: string;
  trustDomain?: string;
  auditLog?: string;
}

const AGENT_USAGE_CODES = new Set([
  'AGENT_ENTRIES_INVALID',
  'AGENT_CONFIG_INVALID',
  'IDENTITY_CONFIG_INVALID',
  'SPIFFE_ID_INVALID',
  'SPIFFE_TRUST_DOMAIN_MISMATCH',
]);

/** One JSON line per issuance/refusal: appended to --audit-log (0600), else written to stderr. */
function auditSink(file: string | undefined): (r: AgentLogRecord) => void {
  if (file === undefined) return (r) => process.stderr.write(`${JSON.stringify(r)}\n`);
  const fd = fs.openSync(file, 'a', 0o600);
  return (r) => fs.writeSync(fd, `${JSON.stringify(r)}\n`);
}

/**
 * The agent holds the issuer key itself (it runs as the plane's user, the one account allowed to read it): the
 * issuer's own signing path, with no second credential that would need provisioning and could leak.
 */
async function runAgent(flags: AgentFlags): Promise<void> {
  try {
    const signer = await IdentityIssuer.open({
      dataDir: flags.data,
      ...(flags.issuerUrl ? { issuerUrl: flags.issuerUrl } : {}),
      ...(flags.trustDomain ? { trustDomain: flags.trustDomain } : {}),
    });
    const entries = loadEntries(flags.entries, signer.trustDomain);
    const nodeAttestation = tpmNodeAttestation(flags, flags.data);
    const agent = await startAgent({
      socketPath: flags.socket,
      entries,
      signer,
      log: auditSink(flags.auditLog),
      ...(nodeAttestation ? { nodeAttestation } : {}),
    });
    printResult(
      flags,
      {
        socket: agent.socketPath,
        issuerUrl: signer.issuerUrl,
        trustDomain: signer.trustDomain,
        entries: entries.length,
        ...(agent.node
          ? { node: { nodeId: agent.node.nodeId, referenceValueSetId: agent.node.referenceValueSetId } }
          : {}),
      },
      () =>
        `identity agent listening on ${agent.socketPath} (${entries.length} entries, issuer ${signer.issuerUrl}); Ctrl-C to stop.`,
    );
    runUntilSignal(() => agent.close());
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? '');
    fail(flags, err, err instanceof UsageError || AGENT_USAGE_CODES.has(code) ? EXIT.USAGE : EXIT.FAILURE);
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
  identity
    .command('agent')
    .description(
      'run the workload attestation agent on a UNIX socket: it identifies each caller from the kernel (SO_PEERCRED, ' +
        'pidfd: uid, gid, executable path and sha256, cgroup), matches the registration entries and answers with a ' +
        'token of at most 5 minutes for the registered SPIFFE ID, or a refusal naming the caller. Runs as the plane ' +
        "user (it signs with the issuer key in --data) with CAP_SYS_PTRACE or as root to read callers' /proc entries",
    )
    .requiredOption('--socket <path>', 'UNIX socket to listen on (a stale one from a crashed agent is replaced)')
    .requiredOption(
      '--entries <file>',
      'registration entries: {"entries":[{"spiffeId","selectors":[...],"ttlSeconds"?}]}',
    )
    .requiredOption('--data <dir>', 'trust plane data directory (the issuer key and its recorded issuer URL)')
    .option('--issuer-url <url>', "the issuer's URL (iss); default: the one the running plane recorded")
    .option('--trust-domain <domain>', 'SPIFFE trust domain; default: the recorded one')
    .option('--audit-log <file>', 'append the issuance/refusal records here (default: stderr)')
    .option('--tpm-socket <path>', 'attest this node with the swtpm at this socket before serving (TCTI swtpm:path=…)')
    .option('--tpm-tcti <tcti>', 'attest this node with this TPM (e.g. device:/dev/tpmrm0) before serving')
    .option('--ek-ca <file>', "PEM: the TPM manufacturer root CA(s) the node's EK certificate must chain to")
    .option('--reference-values <file>', 'JSON: the accepted reference value sets (PCR values) for the quote')
    .option('--tpm-work-dir <dir>', "the attester's private directory (default <data>/agent-tpm)")
    .option('--json', 'print {socket, issuerUrl, trustDomain, entries, node?} as JSON once listening')
    .option('-q, --quiet', 'no progress output')
    .action(runAgent);
}
