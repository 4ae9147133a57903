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

/**
 * --json / --quiet of the command being run, recorded by the program before its action starts (program.ts), so
 * that output honours them even where a command passes no flags (e.g. `fail({}, …)`) or fails before parsing.
 */
let commandOutput: OutputOptions = {};

export function setCommandOutput(opts: OutputOptions): void {
  commandOutput = { ...(opts.json ? { json: true } : {}), ...(opts.quiet ? { quiet: true } : {}) };
}

function effective(opts: OutputOptions): OutputOptions {
  return { json: opts.json ?? commandOutput.json, quiet: opts.quiet ?? commandOutput.quiet };
}

/** Human progress goes to stderr so stdout stays clean for `--json` and pipes; only --quiet silences it. */
export function info(opts: OutputOptions, message: string): void {
  if (!effective(opts).quiet) process.stderr.write(`${message}\n`);
}

export function printResult(opts: OutputOptions, json: unknown, human: () => string): void {
  if (effective(opts).json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(`${human()}\n`);
}

/** The JSON error object every failure prints on stdout with --json. */
export function errorJson(code: string, message: string): string {
  return `${JSON.stringify({ ok: false, error: { code, message } }, null, 2)}\n`;
}

/**
 * Reports an error (JSON on stdout with --json, else a one-line message on stderr) and exits. The exit code is
 * `classifyExit(err, fallbackExit)`: an unreachable service is 3 and a UsageError 2 whatever the caller expected.
 */
export function fail(opts: OutputOptions, err: unknown, fallbackExit: number = EXIT.FAILURE): never {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = e instanceof AirlockError ? e.code : ((e as { code?: unknown }).code ?? 'ERROR');
  if (effective(opts).json) process.stdout.write(errorJson(String(code), e.message));
  else process.stderr.write(`airlock: error [${String(code)}]: ${e.message}\n`);
  process.exit(classifyExit(err, fallbackExit));
}

export class UsageError extends AirlockError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Socket-level failures: nothing answered (or the connection died) at the address a service should be. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/**
 * Airlock error codes that mean "a service is down": by naming convention (`*_UNREACHABLE`, `*_UNAVAILABLE`,
 * `*_NOT_RUNNING`, e.g. PLANE_NOT_RUNNING, TLOG_MONITOR_UNREACHABLE, RUNNER_MIRROR_UNAVAILABLE) minus the codes
 * below, which name a missing local resource rather than a service.
 */
const UNAVAILABLE_CODE = /_(UNREACHABLE|UNAVAILABLE|NOT_RUNNING)$/;
const LOCAL_UNAVAILABLE_CODES = new Set(['SBOM_SCHEMA_UNAVAILABLE']);

function isUnavailableOne(e: object): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (e instanceof AirlockError) return UNAVAILABLE_CODE.test(code) && !LOCAL_UNAVAILABLE_CODES.has(code);
  // A failed connect() (e.g. ENOENT on a UNIX socket path) is a missing service whatever its errno.
  return NETWORK_CODES.has(code) || (e as { syscall?: unknown }).syscall === 'connect';
}

/**
 * True when `err` or anything in its `cause` chain says a service could not be reached. An AggregateError's
 * `errors` count only when every one of them does (all addresses refused), so a real failure among them wins.
 */
export function isServiceUnavailable(err: unknown, seen = new Set<object>()): boolean {
  if (typeof err !== 'object' || err === null || seen.has(err) || seen.size >= 64) return false;
  seen.add(err);
  if (isUnavailableOne(err) || isServiceUnavailable((err as { cause?: unknown }).cause, seen)) return true;
  const inner = (err as { errors?: unknown }).errors;
  return (
    Array.isArray(inner) && inner.length > 0 && inner.every((e: unknown) => isServiceUnavailable(e, new Set(seen)))
  );
}

/** The exit code for an error: 3 if a service was unreachable, 2 for a UsageError, else `fallbackExit`. */
export function classifyExit(err: unknown, fallbackExit: number = EXIT.FAILURE): number {
  if (isServiceUnavailable(err)) return EXIT.UNAVAILABLE;
  if (err instanceof UsageError) return EXIT.USAGE;
  return fallbackExit;
}
