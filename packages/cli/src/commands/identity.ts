import fs from 'node:fs';
import type { Command } from 'commander';
import path from 'node:path';
import type { AgentLogRecord, AgentSvidSigner } from '@airlock/agent';
import type { X509Svid } from '@airlock/identity';
import { EXIT, fail, info, printResult, UsageError, type OutputOptions } from '../output.js';
import type { TpmAttestationFlags } from './node-attestation.js';
import { runUntilSignal } from './cli-flags.js';
import { isAgentRefusal } from '../context.js';

/** `identity token` failures: bad flags, subject, a missing --break-glass or not the key owner → 2, plane not running → 3, else 1. */
function tokenExitCode(err: unknown): number {
  const code = String((err as { code?: unknown }).code ?? '');
  if (
    err instanceof UsageError ||
    code.startsWith('SPIFFE_') ||
    code === 'TOKEN_REQUEST_INVALID' ||
    code === 'IDENTITY_BREAK_GLASS_REQUIRED' ||
    code === 'IDENTITY_KEY_UNREADABLE' ||
    code === 'IDENTITY_KEY_IN_TOKEN'
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
    // The issuer, CA and agent packages load in each action, not at registration (identity --help loads none).
    const [{ IdentityError }, { issueWorkloadToken }] = await Promise.all([
      import('@airlock/identity'),
      import('@airlock/plane'),
    ]);
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
  identityKey?: string;
}

const AGENT_USAGE_CODES = new Set([
  'IDENTITY_KEY_IN_TOKEN',
  'PLANE_PKCS11_URI',
  'PLANE_PKCS11_LOGIN',
  'PLANE_PKCS11_PIN',
  'PLANE_PKCS11_OBJECT',
  'PLANE_PKCS11_MODULE',
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

/** X.509 SVIDs from the plane's SPIFFE CA in `<data>/svid-ca` (created on first use; its key must be 0600). */
async function planeSvidSigner(dataDir: string, trustDomain: string): Promise<AgentSvidSigner> {
  const { issueX509Svid, loadOrCreateSvidCa } = await import('@airlock/ca');
  const ca = await loadOrCreateSvidCa(dataDir, trustDomain);
  return ({ spiffeId, ttlSeconds, publicKeyPem }) =>
    issueX509Svid({ ca, spiffeId, ttlSeconds, ...(publicKeyPem !== undefined ? { publicKey: publicKeyPem } : {}) });
}

interface SvidFlags extends OutputOptions {
  socket: string;
  outDir: string;
  subject?: string;
  watch?: boolean;
}

function svidSummary(svid: X509Svid, files: Record<string, string>): Record<string, unknown> {
  return { ok: true, spiffeId: svid.spiffe_id, expiresAt: new Date(svid.expires_at * 1000).toISOString(), files };
}

/**
 * Fetches this process's X.509 SVID from the agent and writes it to --out-dir; with --watch keeps it fresh
 * (re-fetched at about half-life, files replaced atomically) until stopped. A refusal exits 2, no agent 3.
 */
async function fetchSvid(flags: SvidFlags): Promise<void> {
  const [{ requestAgentX509Svid }, { watchX509Svid, writeX509SvidFiles }] = await Promise.all([
    import('@airlock/agent'),
    import('@airlock/identity'),
  ]);
  const fetch = (): Promise<X509Svid> =>
    requestAgentX509Svid(flags.socket, flags.subject !== undefined ? { subject: flags.subject } : {});
  let first = true;
  const watcher = watchX509Svid({
    fetch,
    onUpdate: (svid) => {
      const files = writeX509SvidFiles(flags.outDir, svid);
      if (first)
        printResult(flags, svidSummary(svid, files), () => `X.509 SVID for ${svid.spiffe_id} in ${flags.outDir}`);
      else info(flags, `rotated the X.509 SVID for ${svid.spiffe_id} (expires ${svidSummary(svid, files).expiresAt})`);
      first = false;
    },
    onError: (err, retryMs) => {
      if (!first) process.stderr.write(`airlock: SVID rotation failed (retry in ${retryMs} ms): ${err.message}\n`);
    },
  });
  try {
    await watcher.ready;
  } catch (err) {
    watcher.stop();
    fail(flags, err, isAgentRefusal(err) ? EXIT.USAGE : EXIT.FAILURE);
  }
  if (flags.watch !== true) {
    watcher.stop();
    return;
  }
  runUntilSignal(async () => watcher.stop());
}

/**
 * The agent holds the issuer key itself (it runs as the plane's user, the one account allowed to read it): the
 * issuer's own signing path, with no second credential that would need provisioning and could leak.
 */
async function runAgent(flags: AgentFlags): Promise<void> {
  try {
    const [
      { loadEntries, startAgent },
      { SVID_CA_DIR },
      { IdentityIssuer },
      { openPkcs11Signer },
      { tpmNodeAttestation },
    ] = await Promise.all([
      import('@airlock/agent'),
      import('@airlock/ca'),
      import('@airlock/identity'),
      import('@airlock/plane'),
      import('./node-attestation.js'),
    ]);
    const tokenKey = flags.identityKey !== undefined ? openPkcs11Signer(flags.identityKey) : undefined;
    const signer = await IdentityIssuer.open({
      dataDir: flags.data,
      ...(tokenKey ? { signer: tokenKey } : {}),
      ...(flags.issuerUrl ? { issuerUrl: flags.issuerUrl } : {}),
      ...(flags.trustDomain ? { trustDomain: flags.trustDomain } : {}),
    });
    const entries = loadEntries(flags.entries, signer.trustDomain);
    const nodeAttestation = tpmNodeAttestation(flags, flags.data);
    const svidSigner = await planeSvidSigner(flags.data, signer.trustDomain);
    const agent = await startAgent({
      socketPath: flags.socket,
      entries,
      signer,
      svidSigner,
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
        svidBundle: path.join(flags.data, SVID_CA_DIR, 'ca.pem'),
        ...(agent.node
          ? { node: { nodeId: agent.node.nodeId, referenceValueSetId: agent.node.referenceValueSetId } }
          : {}),
      },
      () =>
        `identity agent listening on ${agent.socketPath} (${entries.length} entries, issuer ${signer.issuerUrl}); Ctrl-C to stop.`,
    );
    runUntilSignal(async () => {
      await agent.close();
      tokenKey?.close();
    });
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
    .option(
      '--identity-key <pkcs11-uri>',
      "the issuer's key in a PKCS#11 token, when the plane runs with up --identity-key",
    )
    .option('--tpm-socket <path>', 'attest this node with the swtpm at this socket before serving (TCTI swtpm:path=…)')
    .option('--tpm-tcti <tcti>', 'attest this node with this TPM (e.g. device:/dev/tpmrm0) before serving')
    .option('--ek-ca <file>', "PEM: the TPM manufacturer root CA(s) the node's EK certificate must chain to")
    .option('--reference-values <file>', 'JSON: the accepted reference value sets (PCR values) for the quote')
    .option('--tpm-work-dir <dir>', "the attester's private directory (default <data>/agent-tpm)")
    .option('--json', 'print {socket, issuerUrl, trustDomain, entries, svidBundle, node?} as JSON once listening')
    .option('-q, --quiet', 'no progress output')
    .action(runAgent);
  identity
    .command('svid')
    .description(
      "fetch this process's X.509 SVID from the attestation agent and write it to --out-dir: svid.pem (chain), " +
        'svid-key.pem (0600), bundle.pem, svid.json (Workload-API JSON, 0600; for `airlock run --mirror-svid`), each ' +
        'replaced atomically. With --watch it stays running and re-fetches at about half-life, before expiry',
    )
    .requiredOption('--socket <path>', "the agent's UNIX socket")
    .requiredOption('--out-dir <dir>', 'directory to write the SVID files to (created 0700)')
    .option('--subject <spiffe-id>', 'the SPIFFE ID wanted, when the caller is registered for several')
    .option('--watch', 'keep the files fresh (rotate before expiry) until SIGINT/SIGTERM')
    .option('--json', 'print {spiffeId, expiresAt, files} as JSON (first SVID)')
    .option('-q, --quiet', 'no progress output')
    .action(fetchSvid);
}
