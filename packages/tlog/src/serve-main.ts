#!/usr/bin/env node
/**
 * Runs the transparency log server as its own process (tests' kill -9 scenario; usable by the CLI).
 *
 *   node dist/serve-main.js --data <dir> [--host 127.0.0.1] [--port 0] [--log-name <name>] [--signing-key <pem>] [--max-batch N] [--verifier-threads N] [--tiles <dir>|off]
 *
 * Options fall back to AIRLOCK_TLOG_DATA, AIRLOCK_TLOG_HOST, AIRLOCK_TLOG_PORT, AIRLOCK_TLOG_LOG_NAME,
 * AIRLOCK_TLOG_SIGNING_KEY. Prints one JSON line `{"url", "logId", "origin", "logName", "pid"}` on stdout once
 * listening; exits 0 after SIGTERM/SIGINT once pending appends are committed.
 */
import type { TlogServerOptions } from './http/server.js';
import { serveTlogUntilSignal } from './serve-process.js';

function parseArgs(argv: string[]): TlogServerOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    flags.set(name, value);
  }
  const known = new Set(['data', 'host', 'port', 'log-name', 'signing-key', 'max-batch', 'verifier-threads', 'tiles']);
  for (const k of flags.keys()) if (!known.has(k)) throw new Error(`unknown option --${k}`);
  const env = process.env;
  const dataDir = flags.get('data') ?? env.AIRLOCK_TLOG_DATA;
  if (!dataDir) throw new Error('--data <dir> (or AIRLOCK_TLOG_DATA) is required');
  const port = Number(flags.get('port') ?? env.AIRLOCK_TLOG_PORT ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
  const host = flags.get('host') ?? env.AIRLOCK_TLOG_HOST;
  const logName = flags.get('log-name') ?? env.AIRLOCK_TLOG_LOG_NAME;
  const signingKeyPath = flags.get('signing-key') ?? env.AIRLOCK_TLOG_SIGNING_KEY;
  const maxBatch = flags.get('max-batch');
  const verifierThreads = flags.get('verifier-threads');
  const tiles = flags.get('tiles');
  return {
    dataDir,
    port,
    ...(host ? { host } : {}),
    ...(logName ? { logName } : {}),
    ...(signingKeyPath ? { signingKeyPath } : {}),
    ...(maxBatch ? { maxBatch: Number(maxBatch) } : {}),
    ...(verifierThreads ? { verifierThreads: Number(verifierThreads) } : {}),
    ...(tiles ? { tiles: tiles === 'off' ? false : tiles } : {}),
  };
}

async function main(): Promise<void> {
  let options: TlogServerOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`tlog serve: ${(err as Error).message}\n`);
    process.exit(2);
  }
  await serveTlogUntilSignal(options);
}

main().catch((err: unknown) => {
  process.stderr.write(`tlog serve: ${(err as Error).message}\n`);
  process.exit(1);
});
