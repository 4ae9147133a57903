#!/usr/bin/env node
/**
 * The transparency log server with its metadata on PostgreSQL, as its own process (the kill -9 tests; operators
 * embedding the log):
 *
 *   AIRLOCK_TLOG_INDEX=postgres://user@host:port/db node dist/tlog-serve-main.js --data <dir> [--host H] [--port P]
 *
 * The connection string comes from the environment only (it may carry a password: never on argv). `--data` holds
 * the signing key. Prints one JSON line `{"url", "logId", "origin", "logName", "pid"}` once listening; exits 0
 * after SIGTERM/SIGINT once pending appends are committed.
 */
import { serveTlogUntilSignal } from '@airlock/tlog';
import { PgLogStorage } from './log-storage.js';

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const dataDir = flag(argv, 'data');
  const url = process.env.AIRLOCK_TLOG_INDEX;
  if (!dataDir || !url) {
    process.stderr.write('tlog serve: --data <dir> and AIRLOCK_TLOG_INDEX=postgres://… are required\n');
    process.exit(2);
  }
  const storage = await PgLogStorage.open(url);
  const host = flag(argv, 'host');
  await serveTlogUntilSignal({
    dataDir,
    storage,
    port: Number(flag(argv, 'port') ?? '0'),
    ...(host ? { host } : {}),
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`tlog serve: ${(err as Error).message}\n`);
  process.exit(1);
});
