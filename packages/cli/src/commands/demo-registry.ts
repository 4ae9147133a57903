import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '@airlock/core';

/** Debian's CNCF Distribution registry (`docker-registry`), started by the demo on loopback for its images. */
export interface DemoRegistry {
  /** `127.0.0.1:<port>`, as in image references. */
  host: string;
  url: string;
  stop(): Promise<void>;
}

/** Why the registry cannot run here (a sentence), or undefined when `docker-registry` works. */
export function demoRegistryProblem(): string | undefined {
  const r = spawnSync('docker-registry', ['--version'], { stdio: 'ignore', timeout: 10_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    return 'docker-registry is not installed (apt-get install docker-registry)';
  if (r.status !== 0) return `docker-registry --version failed (${r.error?.message ?? `exit ${r.status}`})`;
  return undefined;
}

/**
 * `docker-registry serve` on 127.0.0.1 with its storage under `dir`, plain HTTP, no auth (nothing but loopback can
 * reach it). The port comes from binding port 0; if the registry loses the race for it, it is started again.
 */
export async function startDemoRegistry(dir: string): Promise<DemoRegistry> {
  mkdirSync(dir, { recursive: true });
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeLoopbackPort();
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log: { level: warn, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${JSON.stringify(join(dir, 'data'))} } }`,
        `http: { addr: 127.0.0.1:${port}, secret: airlock-demo }`,
        '',
      ].join('\n'),
    );
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    const url = `http://127.0.0.1:${port}`;
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    };
    if (await ready(`${url}/v2/`, () => child.exitCode !== null || child.signalCode !== null))
      return { host: `127.0.0.1:${port}`, url, stop };
    await stop();
    last = stderr.trim();
  }
  throw new Error(`docker-registry did not start on loopback: ${last || 'no output'}`);
}

async function ready(url: string, gone: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !gone(); i++) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).status === 200) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
