import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { toolProblem, toolsAvailable } from '@airlock/testkit';
import { afterAll, describe, expect, it } from 'vitest';

// On close SQLite checkpoints the WAL into the database file and deletes the WAL. The log's storage runs SQLite with
// synchronous=OFF (it fsyncs the WAL itself), and then SQLite's closing checkpoint would not fsync the database file:
// entries durable only in the WAL would rest in the page cache alone once the WAL is unlinked, and a power cut after a
// clean shutdown could lose acknowledged entries. A power cut cannot be staged here; the order of the system calls
// can: strace must show an fsync/fdatasync of the database file after its last write and before the WAL's unlink.
const enabled = toolsAvailable('tlog close durability (strace)', [toolProblem('strace', ['-V'])]);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const STORAGE = pathToFileURL(join(import.meta.dirname, '..', 'packages', 'tlog', 'dist', 'storage.js')).href;
const SCRIPT = `
import { createHash } from 'node:crypto';
const { SqliteLogStorage } = await import(${JSON.stringify(STORAGE)});
const path = process.argv[2];
const store = await SqliteLogStorage.open(path);
await store.initialize({ logId: 'log', treeId: '1' });
const body = Buffer.from('entry 0');
const leafHash = createHash('sha256').update(Buffer.concat([Buffer.from([0]), body])).digest();
await store.appendBatch([{ logIndex: 0, leafHash, body, integratedTime: 1, kind: 'dsse', apiVersion: '0.0.1',
  signedEntryTimestamp: Buffer.alloc(70, 1), indexKeys: ['k'], nodes: [] }], 1);
await store.close();
`;

describe.skipIf(!enabled)('SQLite log storage close', () => {
  it('fsyncs the database file after the closing checkpoint and before the WAL is deleted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-tlog-close-'));
    dirs.push(dir);
    const script = join(dir, 'close.mjs');
    writeFileSync(script, SCRIPT);
    const db = join(dir, 'tlog.sqlite');
    const trace = join(dir, 'trace.txt');
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-y',
        '-o',
        trace,
        '-e',
        'trace=pwrite64,write,fsync,fdatasync,unlink,unlinkat',
        'node',
        script,
        db,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const lines = spawnSync('cat', [trace], { encoding: 'utf8' }).stdout.split('\n');
    const onDb = (l: string) => l.includes(`<${db}>`);
    const walUnlink = lines.findIndex((l) => /unlink(at)?\(/.test(l) && l.includes(`${db}-wal`));
    expect(walUnlink, 'SQLite deletes the WAL on close').toBeGreaterThan(0);
    const lastDbWrite = lines.slice(0, walUnlink).findLastIndex((l) => /^\d+\s+(pwrite64|write)\(/.test(l) && onDb(l));
    expect(lastDbWrite, 'the closing checkpoint writes the database file').toBeGreaterThan(0);
    const syncs = lines
      .slice(lastDbWrite + 1, walUnlink)
      .filter((l) => /^\d+\s+f(data)?sync\(/.test(l) && onDb(l) && / = 0$/.test(l));
    expect(syncs, lines.slice(lastDbWrite, walUnlink + 1).join('\n')).not.toHaveLength(0);
  });
});
