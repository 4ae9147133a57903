import { spawn, type SpawnOptions } from 'node:child_process';
import { statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a host helper (git, bwrap --version) to completion with bounded output. Never through a shell: argv goes
 * straight to execve, so spec values cannot inject commands.
 */
export function execFileBounded(
  file: string,
  args: readonly string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    input?: string | Buffer;
    maxStdout?: number;
    timeoutMs?: number;
  } = {},
): Promise<ExecResult> {
  const maxStdout = options.maxStdout ?? 64 << 20;
  return new Promise((resolvePromise, reject) => {
    const spawnOptions: SpawnOptions = {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    };
    const child = spawn(file, args, spawnOptions);
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let overflow = false;
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.stdout!.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > maxStdout) {
        overflow = true;
        child.kill('SIGKILL');
      } else out.push(c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (err.length < 16_384) err += c.toString('utf8');
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (overflow) return reject(new Error(`${file} printed more than ${maxStdout} bytes`));
      resolvePromise({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

/** Absolute path of an executable found on `path` (default: the runner's PATH plus the sbin directories). */
export function which(
  cmd: string,
  path = `${process.env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin`,
): string | undefined {
  if (cmd.includes('/')) return isExecutableFile(cmd) ? cmd : undefined;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, cmd);
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}

function isExecutableFile(p: string): boolean {
  try {
    const st = statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
