import { startTlogServer, type TlogServerOptions } from './http/server.js';

/**
 * Runs the log server as this process's whole job (serve-main, and mains that plug in another storage): prints one
 * JSON line `{"url", "logId", "origin", "logName", "pid"}` once listening; exits 0 after SIGTERM/SIGINT once
 * pending appends are committed, 1 when closing fails.
 */
export async function serveTlogUntilSignal(options: TlogServerOptions): Promise<void> {
  const server = await startTlogServer(options);
  process.stdout.write(
    `${JSON.stringify({ url: server.url, logId: server.logId, origin: server.origin, logName: server.logName, pid: process.pid })}\n`,
  );
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`tlog serve: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
