import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loopbackFetch, readTar, sha256, startUpstream, type Upstream } from '@airlock/testkit';
import { syncToBundle } from '../src/index.js';

// kill -9 of a sync, in a real child process running the built package: mid-download (every blob partly staged)
// and mid-bundle-write (the tar partly written). Neither may leave anything at the bundle's path or a state file,
// and the staged bytes (open unlinked files) go with the process. A re-run then writes the bundle.

const DIST = join(import.meta.dirname, '..', 'dist', 'index.js');
const MiB = 1024 * 1024;
let up: Upstream;
let dir: string | undefined;
const live: ChildProcess[] = [];
const held: (() => void)[] = [];

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first (the child runs the build)`);
  up = await startUpstream();
});
afterAll(async () => {
  await up.close();
});
afterEach(() => {
  for (const c of live.splice(0)) c.kill('SIGKILL');
  for (const release of held.splice(0)) release();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

interface World {
  outDir: string;
  out: string;
  state: string;
  list: string;
  bodies: Buffer[];
}

function world(name: string, n: number, size: number): World {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-crash-'));
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  const bodies = Array.from({ length: n }, () => randomBytes(size));
  const list = join(dir, 'list.json');
  writeFileSync(list, JSON.stringify(bodies.map((b, i) => ({ url: `${up.url}/${name}/${i}.bin`, sha256: sha256(b) }))));
  return { outDir, out: join(outDir, 'bundle.tar'), state: join(dir, 'state.json'), list, bodies };
}

/** The sync in its own process (the built package), killed by the test. */
function startSync(w: World): { child: ChildProcess; exited: Promise<string> } {
  const script = `const { syncToBundle } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
await syncToBundle({ inputs: [{ path: process.argv[1], kind: 'generic' }], out: process.argv[2], state: process.argv[3],
  createdAt: '2026-12-07T03:00:00Z', quiet: true, concurrency: 8, perHostConcurrency: 8 });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, w.list, w.out, w.state], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<string>((resolve) =>
    child.on('exit', (code, signal) => resolve(`code ${code} signal ${signal}: ${err}`)),
  );
  return { child, exited };
}

/** Sizes of the child's open files that were unlinked (the sealed staging files), from /proc. */
function sealedSizes(pid: number): number[] {
  const fds = join('/proc', String(pid), 'fd');
  const sizes: number[] = [];
  for (const fd of readdirSync(fds)) {
    try {
      if (/airlock-sync-.*\(deleted\)$/.test(readlinkSync(join(fds, fd)))) sizes.push(statSync(join(fds, fd)).size);
    } catch {
      // closed meanwhile
    }
  }
  return sizes;
}

/** Polls `cond` until it holds; fails if the child exits first (the moment to kill was missed). */
async function killWhen(child: ChildProcess, exited: Promise<string>, cond: () => boolean): Promise<void> {
  let gone: string | undefined;
  void exited.then((why) => (gone = why));
  for (;;) {
    if (gone !== undefined) throw new Error(`the sync ended before the kill point: ${gone}`);
    let hit = false;
    try {
      hit = cond();
    } catch {
      hit = false;
    }
    if (hit) break;
    await new Promise((r) => setImmediate(r));
  }
  child.kill('SIGKILL');
  expect(await exited).toMatch(/signal SIGKILL/);
}

/** After the kill: nothing at the bundle's path, no state, and no staging file holding any byte. */
function expectNothingPublished(w: World): string[] {
  expect(existsSync(w.out)).toBe(false);
  expect(existsSync(w.state)).toBe(false);
  const left = readdirSync(w.outDir);
  for (const name of left) {
    expect(name === 'bundle.tar').toBe(false);
    // What a kill -9 cannot clean up: the staging directory (empty: its files were unlinked open files) and a
    // partial tar under a name no importer or operator takes for the bundle.
    if (name.startsWith('.airlock-sync-')) expect(readdirSync(join(w.outDir, name))).toEqual([]);
    else expect(name).toMatch(/^bundle\.tar\.partial-[0-9a-f]{12}$/);
  }
  return left;
}

async function rerunAndCheck(w: World): Promise<void> {
  const r = await syncToBundle({
    inputs: [{ path: w.list, kind: 'generic' }],
    out: w.out,
    state: w.state,
    createdAt: '2026-12-07T03:00:00Z',
    quiet: true,
    fetch: loopbackFetch,
  });
  expect(r.blobs).toBe(w.bodies.length);
  const entries = await readTar(w.out);
  for (const b of w.bodies)
    expect(entries.find((e) => e.name === `blobs/sha256/${sha256(b)}`)?.body.equals(b)).toBe(true);
  expect(existsSync(w.state)).toBe(true);
}

describe('sync killed with SIGKILL', () => {
  it('mid-download, with every blob partly staged: no bundle, no state, no staged bytes left; a re-run completes', async () => {
    // Half of each body (8 MiB) is more than one staging write batch (4 MiB), so bytes reach the sealed files.
    const w = world('held', 4, 16 * MiB);
    let serveWhole = false;
    w.bodies.forEach((body, i) =>
      up.route(`/held/${i}.bin`, (_req, res) => {
        res.setHeader('content-length', body.length);
        if (serveWhole) return void res.end(body);
        // Half the body, then nothing until the test ends: the sync is caught with all four downloads open.
        res.write(body.subarray(0, body.length / 2));
        held.push(() => res.destroy());
      }),
    );
    const { child, exited } = startSync(w);
    await killWhen(child, exited, () => {
      const s = sealedSizes(child.pid!);
      return s.length === 4 && s.every((n) => n >= MiB);
    });
    expectNothingPublished(w);
    serveWhole = true;
    await rerunAndCheck(w);
  });

  it('mid-bundle-write, the tar partly on disk: nothing at the bundle path, no state; a re-run completes', async () => {
    const w = world('whole', 6, 16 * MiB);
    w.bodies.forEach((b, i) => up.file(`/whole/${i}.bin`, b));
    const total = w.bodies.reduce((n, b) => n + b.length, 0);
    const { child, exited } = startSync(w);
    let partialSize = -1;
    await killWhen(child, exited, () => {
      const p = readdirSync(w.outDir).find((f) => f.startsWith('bundle.tar.partial-'));
      partialSize = p ? statSync(join(w.outDir, p)).size : -1;
      return partialSize > 0 && partialSize < total;
    });
    const left = expectNothingPublished(w);
    expect(left.filter((f) => f.startsWith('bundle.tar.partial-'))).toHaveLength(1);
    await rerunAndCheck(w);
  });
});
