import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TransparencyLog } from '../src/log.js';
import { verifyConsistencyProof } from '../src/merkle.js';
import { prepareEntry } from '../src/types/index.js';
import { hashedRekord, makeKeySigner, tempDir } from './helpers.js';

const DIST_INDEX = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js');

// A log process (the built package) whose second storage sync never returns: entry a is acknowledged, b is written
// and its fdatasync "in flight", c is written behind it. Each step is announced on stdout as a JSON line.
const CHILD = `
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const { TransparencyLog, SqliteLogStorage, DATABASE_FILE } = await import(pathToFileURL(process.env.TLOG_DIST_INDEX).href);
const dir = process.env.TLOG_DIR;
const [a, b, c] = JSON.parse(process.env.TLOG_PROPOSALS);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
setInterval(() => undefined, 60_000); // stay alive while the sync hangs
const inner = await SqliteLogStorage.open(join(dir, DATABASE_FILE));
let syncs = 0;
let reached;
const held = new Promise((resolve) => (reached = resolve));
const storage = Object.assign(Object.create(inner), {
  writeBatch: async (rows, size) => { await inner.writeBatch(rows, size); say({ written: size }); },
  sync: async () => {
    if (++syncs === 2) { say({ held: true }); reached(); await new Promise(() => undefined); }
    return inner.sync();
  },
});
const log = await TransparencyLog.open({ dataDir: dir, storage, logName: 'crash.test', commitLingerMs: 0 });
const entry = await log.append(a);
say({ acknowledged: entry.logIndex, checkpoint: entry.verification.inclusionProof.rootHash });
void log.append(b);
await held;
void log.append(c);
`;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('crash safety (kill -9) with a batch written while the previous one syncs', () => {
  it('keeps the acknowledged entry; the unsynced batches are either whole at their indices or absent', async () => {
    if (!existsSync(DIST_INDEX)) throw new Error(`${DIST_INDEX} is missing: build first (npm run build)`);
    const dir = tempDir();
    cleanups.push(dir.remove);
    const signer = makeKeySigner();
    const proposals = ['a', 'b', 'c'].map((n) => hashedRekord(signer, `pipelined ${n}`));
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        TLOG_DIST_INDEX: DIST_INDEX,
        TLOG_DIR: dir.path,
        TLOG_PROPOSALS: JSON.stringify(proposals),
      },
    });
    cleanups.push(() => child.kill('SIGKILL'));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const lines: Array<Record<string, unknown>> = [];
    for await (const line of createInterface({ input: child.stdout! })) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      if (lines.at(-1)!.written === 3) break;
    }
    // a acknowledged after its sync; b written, its sync held; c written during that sync.
    expect(lines.map((l) => Object.keys(l)[0])).toEqual(['written', 'acknowledged', 'written', 'held', 'written']);
    child.kill('SIGKILL');
    await exited;

    const log = await TransparencyLog.open({ dataDir: dir.path, logName: 'crash.test' });
    try {
      const leaves = proposals.map((p) => prepareEntry(p).leafHash.toString('hex'));
      expect([1, 2, 3]).toContain(log.size);
      const stored = await log.getEntryRange(0, 10);
      expect(stored.map((e) => e.leafHash.toString('hex'))).toEqual(leaves.slice(0, log.size));
      // The acknowledged tree (size 1) is a prefix of the recovered one, and the log appends on from it.
      const ackRoot = Buffer.from(lines[1]!.checkpoint as string, 'hex');
      const proof = await log.consistencyProof(1, log.size);
      expect(verifyConsistencyProof(1, log.size, ackRoot, await log.rootAt(log.size), proof)).toBe(true);
      const next = await log.append(hashedRekord(signer, 'after the crash'));
      expect(next.logIndex).toBe(stored.length);
    } finally {
      await log.close();
    }
  });
});
