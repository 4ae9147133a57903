import { UsageError } from '../output.js';

// Flag parsers shared by several commands, in a module with no package imports: registering a command must not
// load another command's implementation.

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d`, `12h`, `90m`, `45s`, `2w` → milliseconds; anything else is a usage error (a typo must not disable a limit). */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+)([smhdw])$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]!]! : NaN;
  if (!m || !Number.isSafeInteger(ms) || ms <= 0)
    throw new UsageError(`${flag} '${value}': expected a duration such as 30d, 12h, 90m (units s, m, h, d, w)`);
  return ms;
}

/** A whole number ≥ min from a flag; NaN or a fraction would otherwise switch a limit off silently. */
export function parseIntFlag(flag: string, value: string, min = 1): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${flag} '${value}': expected a whole number ≥ ${min}`);
  return n;
}

export function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port '${v}'`);
  return n;
}

/** ADDR = host:port, :port or port. */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(addr);
  if (!m) throw new UsageError(`invalid listen address '${addr}' (expected HOST:PORT)`);
  return { host: m[1] || '127.0.0.1', port: parsePort(m[2]!) };
}

/** Keeps a server process alive until SIGINT/SIGTERM, then closes it cleanly. */
export function runUntilSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
