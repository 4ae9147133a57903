import cliProgress from 'cli-progress';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

/** Where progress goes: a TTY gets a bar, anything else periodic plain lines (CI logs), `none`/quiet nothing. */
export interface ProgressReporter {
  planned(n: number): void;
  done(): void;
  /** Entries that failed: shown as failures, never folded into "done". */
  failed(n: number): void;
  bytes(n: number): void;
  stop(): void;
}

export interface ProgressOptions {
  mode?: ProgressMode;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Plain-line mode: at most one line per interval (default 2 s). */
  intervalMs?: number;
}

const NONE: ProgressReporter = { planned() {}, done() {}, failed() {}, bytes() {}, stop() {} };

function mb(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}

export function createProgress(options: ProgressOptions = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const mode = options.mode ?? 'auto';
  if (mode === 'none') return NONE;
  const tty = stream.isTTY === true;
  let total = 0;
  let finished = 0;
  let failures = 0;
  let bytes = 0;
  const failedText = (): string => (failures > 0 ? `, ${failures} FAILED` : '');

  if (mode === 'bar' || (mode === 'auto' && tty)) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: 'sync [{bar}] {value}/{total} | {mb} MB{failed}',
        hideCursor: true,
        clearOnComplete: false,
        noTTYOutput: !tty,
        notTTYSchedule: 2000,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(0, 0, { mb: '0.0', failed: '' });
    return {
      planned(n) {
        total += n;
        bar.setTotal(total);
      },
      done() {
        bar.update(++finished, { mb: mb(bytes) });
      },
      failed(n) {
        failures += n;
      },
      bytes(n) {
        bytes += n;
      },
      stop() {
        bar.update(finished, { mb: mb(bytes), failed: failedText() });
        bar.stop();
      },
    };
  }

  const interval = options.intervalMs ?? 2000;
  let last = 0;
  const line = (force: boolean): void => {
    const now = Date.now();
    if (!force && now - last < interval) return;
    last = now;
    stream.write(`sync: ${finished}/${total} done, ${mb(bytes)} MB${failedText()}\n`);
  };
  return {
    planned(n) {
      total += n;
    },
    done() {
      finished++;
      line(false);
    },
    failed(n) {
      failures += n;
    },
    bytes(n) {
      bytes += n;
    },
    stop() {
      line(true);
    },
  };
}
