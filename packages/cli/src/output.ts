import { AirlockError } from '@airlock/core';

/** Exit codes shared by every command (documented in the README). */
export const EXIT = {
  OK: 0,
  FAILURE: 1, // verification failed, a check found a problem
  USAGE: 2, // bad flags or input files
  UNAVAILABLE: 3, // a service could not be reached
} as const;

export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
}

/** Human progress goes to stderr so stdout stays clean for `--json` and pipes. */
export function info(opts: OutputOptions, message: string): void {
  if (!opts.quiet && !opts.json) process.stderr.write(`${message}\n`);
}

export function printResult(opts: OutputOptions, json: unknown, human: () => string): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(`${human()}\n`);
}

/** Reports an error (JSON on stdout with --json, else a one-line message on stderr) and sets the exit code. */
export function fail(opts: OutputOptions, err: unknown, exitCode: number = EXIT.FAILURE): never {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = e instanceof AirlockError ? e.code : ((e as { code?: string }).code ?? 'ERROR');
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: { code, message: e.message } }, null, 2)}\n`);
  } else {
    process.stderr.write(`airlock: error [${code}]: ${e.message}\n`);
  }
  process.exit(exitCode);
}

export class UsageError extends AirlockError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}
