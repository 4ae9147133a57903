import {
  chmodSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, type CasErrorCode } from '../src/index.js';
import { chunks, readAll, removeDir, sha256, tempDir } from './helpers.js';

function expectCode(code: CasErrorCode) {
  return expect.objectContaining({ code });
}

/** Flips one byte in place the way an attacker or bit rot would (the file is 0444, so chmod first). */
function flipByte(path: string, offset = 0, keepTimes = false): void {
  const before = statSync(path);
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
  chmodSync(path, 0o444);
  if (keepTimes) utimesSync(path, before.atime, before.mtime);
}

describe('FsBlobStore', () => {
  let dir: string;
  let store: FsBlobStore;
  beforeEach(async () => {
    dir = tempDir();
    store = await FsBlobStore.open(dir);
  });
  afterEach(() => removeDir(dir));

  it('puts, stats and reads back a blob under its sha256, sharded by the first two hex digits', async () => {
    const data = Buffer.from('hello airlock');
    const h = sha256(data);
    expect(await store.has(h)).toBe(false);
    expect(await store.stat(h)).toBeUndefined();
    const r = await store.put(chunks('hello ', 'airlock'), { sha256: h, size: data.length });
    expect(r).toEqual({ sha256: h, size: data.length, created: true });
    expect(existsSync(join(dir, 'blobs', 'sha256', h.slice(0, 2), h))).toBe(true);
    expect(await store.has(h)).toBe(true);
    expect(await store.stat(h)).toEqual({ size: data.length });
    expect(await readAll(await store.openRead(h))).toEqual(data);
    const v = await store.openVerifiedRead(h);
    expect(v.size).toBe(data.length);
    expect(await readAll(v.stream)).toEqual(data);
    const ranged = await store.openVerifiedRead(h, { start: 6, end: 12 });
    expect((await readAll(ranged.stream)).toString()).toBe('airlock');
  });

  it('accepts a Readable and an unknown digest (no expectation), and handles an empty blob', async () => {
    const r = await store.put(Readable.from([Buffer.from('abc')]));
    expect(r.sha256).toBe(sha256('abc'));
    const empty = await store.put(chunks(), { sha256: sha256(''), size: 0 });
    expect(empty.size).toBe(0);
    expect((await readAll((await store.openVerifiedRead(empty.sha256)).stream)).length).toBe(0);
  });

  it('refuses bytes that do not match the expected digest, leaving nothing behind', async () => {
    const wrong = sha256('something else');
    await expect(store.put(chunks('payload'), { sha256: wrong })).rejects.toEqual(expectCode('CAS_DIGEST_MISMATCH'));
    expect(await store.has(wrong)).toBe(false);
    expect(await store.has(sha256('payload'))).toBe(false);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('refuses too many bytes, too few bytes and blobs over the size limit', async () => {
    const h = sha256('12345');
    await expect(store.put(chunks('123', '45'), { sha256: h, size: 4 })).rejects.toEqual(
      expectCode('CAS_SIZE_MISMATCH'),
    );
    await expect(store.put(chunks('12345'), { sha256: h, size: 6 })).rejects.toEqual(expectCode('CAS_SIZE_MISMATCH'));
    await expect(store.put(chunks('123', '45'), undefined, { maxSize: 4 })).rejects.toEqual(
      expectCode('CAS_SIZE_LIMIT'),
    );
    const small = await FsBlobStore.open(dir, { maxBlobSize: 3 });
    await expect(small.put(chunks('1234'), undefined, { maxSize: 100 })).rejects.toEqual(expectCode('CAS_SIZE_LIMIT'));
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(await store.has(h)).toBe(false);
  });

  it('stage copies the checked bytes: a source that reuses its chunk buffer cannot change them afterwards', async () => {
    const buf = Buffer.alloc(8);
    async function* reusing(): AsyncGenerator<Buffer> {
      buf.write('AAAAAAAA');
      yield buf;
      buf.write('BBBBBBBB');
      yield buf;
      buf.write('CCCCCCCC'); // after the last chunk: a held view would now read C
    }
    const want = Buffer.from('AAAAAAAABBBBBBBB');
    const staged = await store.stage!(reusing(), { sha256: sha256(want), size: want.length });
    await store.publishStaged!([staged], async () => undefined);
    expect(readFileSync(store.pathOf(sha256(want)))).toEqual(want);
  });

  it('refuses malformed digests (no path can be formed from them)', async () => {
    for (const bad of ['../../etc/passwd', 'A'.repeat(64), 'abc', `${'a'.repeat(63)}/`, '']) {
      await expect(store.has(bad)).rejects.toEqual(expectCode('CAS_INVALID_DIGEST'));
      await expect(store.openVerifiedRead(bad)).rejects.toEqual(expectCode('CAS_INVALID_DIGEST'));
    }
    await expect(store.put(chunks('x'), { sha256: 'not-hex' })).rejects.toEqual(expectCode('CAS_INVALID_DIGEST'));
  });

  it('refuses a stream of strings', async () => {
    await expect(
      store.put(
        (async function* () {
          yield 'text' as unknown as Uint8Array;
        })(),
      ),
    ).rejects.toEqual(expectCode('CAS_INVALID_SOURCE'));
  });

  it('is write-once: putting an existing digest verifies and changes nothing', async () => {
    const h = sha256('once');
    await store.put(chunks('once'), { sha256: h });
    const p = join(dir, 'blobs', 'sha256', h.slice(0, 2), h);
    const before = statSync(p, { bigint: true });
    const again = await store.put(chunks('once'), { sha256: h });
    expect(again.created).toBe(false);
    const after = statSync(p, { bigint: true });
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeNs).toBe(before.mtimeNs);
    // A second put with wrong bytes still fails: existing content does not excuse a bad source.
    await expect(store.put(chunks('twice'), { sha256: h })).rejects.toEqual(expectCode('CAS_DIGEST_MISMATCH'));
  });

  it('stores final files read-only (0444)', async () => {
    const { sha256: h } = await store.put(chunks('ro'));
    expect(statSync(join(dir, 'blobs', 'sha256', h.slice(0, 2), h)).mode & 0o777).toBe(0o444);
  });

  it('stores final files read-only (0444) under a umask that strips read bits too', async () => {
    // Temp files are created 0444 and fchmodded only when the umask would strip bits from that.
    const old = process.umask(0o277);
    try {
      const s = await FsBlobStore.open(join(dir, 'strict'));
      const { sha256: h } = await s.put(chunks('ro under umask'));
      expect(statSync(s.pathOf(h)).mode & 0o777).toBe(0o444);
    } finally {
      process.umask(old);
    }
  });

  it('fsyncs the temp file before it becomes visible and the shard directory after', async () => {
    const syncs: [string, string][] = [];
    const s = await FsBlobStore.open(dir, { onSync: (kind, path) => syncs.push([kind, path]) });
    const { sha256: h } = await s.put(chunks('durable'));
    expect(syncs.length).toBe(2);
    expect(syncs[0]![0]).toBe('file');
    expect(syncs[0]![1].startsWith(join(dir, 'tmp'))).toBe(true);
    expect(syncs[1]).toEqual(['dir', join(dir, 'blobs', 'sha256', h.slice(0, 2))]);
    // Nothing is fsynced for a write-once no-op besides the temp copy.
    syncs.length = 0;
    await s.put(chunks('durable'));
    expect(syncs.map((x) => x[0])).toEqual(['file']);
  });

  it('quarantines: the blob leaves the served namespace and is reported as quarantined', async () => {
    const { sha256: h } = await store.put(chunks('bad idea'));
    expect(await store.quarantine(h, 'test')).toBe(true);
    expect(await store.has(h)).toBe(false);
    expect(await store.isQuarantined(h)).toBe(true);
    await expect(store.openVerifiedRead(h)).rejects.toEqual(expectCode('CAS_QUARANTINED'));
    const records = await store.quarantineRecords(h);
    expect(records).toHaveLength(1);
    expect(records[0]!.reason).toBe('test');
    expect(readdirSync(join(dir, 'quarantine', h)).some((n) => n.endsWith('.blob'))).toBe(true);
    expect(await store.quarantine(h, 'again')).toBe(false);
    const other = sha256('never stored');
    await expect(store.openVerifiedRead(other)).rejects.toEqual(expectCode('CAS_NOT_FOUND'));
  });

  it('verify-on-read refuses and quarantines a blob corrupted on disk after it was verified', async () => {
    const data = Buffer.from('a'.repeat(5000));
    const { sha256: h } = await store.put(chunks(data));
    const first = await store.openVerifiedRead(h);
    expect(await readAll(first.stream)).toEqual(data);
    expect((await store.verify(h)).cached).toBe(true);
    // Same size, mtime restored: only ctime (and content) betray the change.
    flipByte(store.pathOf(h), 100, true);
    await expect(store.openVerifiedRead(h)).rejects.toEqual(expectCode('CAS_CORRUPT'));
    expect(await store.has(h)).toBe(false);
    expect(await store.isQuarantined(h)).toBe(true);
    await expect(store.openVerifiedRead(h)).rejects.toEqual(expectCode('CAS_QUARANTINED'));
  });

  it('verify-on-read guards streamed (large) blobs too, and ranges of them', async () => {
    const big = await FsBlobStore.open(dir, { smallBlobBytes: 1024 });
    const data = Buffer.alloc(300_000, 7);
    const { sha256: h } = await big.put(chunks(data));
    const whole = await big.openVerifiedRead(h);
    expect(whole.bytes).toBeUndefined();
    expect(await readAll(whole.stream)).toEqual(data);
    expect((await readAll((await big.openVerifiedRead(h, { start: 299_990, end: 299_999 })).stream)).length).toBe(10);
    flipByte(big.pathOf(h), 200_000);
    await expect(big.openVerifiedRead(h, { start: 0, end: 9 })).rejects.toEqual(expectCode('CAS_CORRUPT'));
    expect(await big.isQuarantined(h)).toBe(true);
  });

  it('serves small blobs from memory only while the file is unchanged', async () => {
    const { sha256: h } = await store.put(chunks('small and hot'));
    const first = await store.openVerifiedRead(h);
    expect(first.bytes?.toString()).toBe('small and hot');
    const ranged = await store.openVerifiedRead(h, { start: 6, end: 8 });
    expect(ranged.bytes?.toString()).toBe('and');
    expect(ranged.range).toEqual({ start: 6, end: 8 });
    // Same bytes written back: the change token moved, so they are re-read and re-verified (and still good).
    const p = store.pathOf(h);
    flipByte(p);
    flipByte(p);
    expect((await store.openVerifiedRead(h)).bytes?.toString()).toBe('small and hot');
    const disabled = await FsBlobStore.open(dir, { memoryCacheBytes: 0 });
    expect((await disabled.openVerifiedRead(h)).bytes?.toString()).toBe('small and hot');
  });

  it('cachedVerifiedSync answers only for verified in-memory bytes of an unchanged file', async () => {
    const { sha256: h } = await store.put(chunks('hot and small'));
    // Whole seconds, so flipByte can put the mtime back exactly: then only the ctime tells.
    utimesSync(store.pathOf(h), 1_700_000_000, 1_700_000_000);
    // Nothing verified yet: no synchronous answer (the async path must read and hash first).
    expect(store.cachedVerifiedSync(h)).toBeUndefined();
    expect((await store.openVerifiedRead(h)).bytes?.toString()).toBe('hot and small');
    expect(store.cachedVerifiedSync(h)?.toString()).toBe('hot and small');
    // Corrupted with size and mtime (to the ns) kept: the ctime betrays it, and the async path then quarantines.
    flipByte(store.pathOf(h), 2, true);
    expect(store.cachedVerifiedSync(h)).toBeUndefined();
    await expect(store.openVerifiedRead(h)).rejects.toEqual(expectCode('CAS_CORRUPT'));
    expect(store.cachedVerifiedSync(h)).toBeUndefined();

    // A blob moved away (fsck in another process quarantines by renaming): no answer either.
    const { sha256: g } = await store.put(chunks('moved away'));
    await store.openVerifiedRead(g);
    expect(store.cachedVerifiedSync(g)?.toString()).toBe('moved away');
    const other = await FsBlobStore.open(dir);
    await other.quarantine(g, 'test');
    expect(store.cachedVerifiedSync(g)).toBeUndefined();

    // Streamed (large) blobs and a disabled memory cache never answer synchronously.
    const big = await FsBlobStore.open(dir, { smallBlobBytes: 1024 });
    const { sha256: b } = await big.put(chunks(Buffer.alloc(4096, 1)));
    await readAll((await big.openVerifiedRead(b)).stream);
    expect(big.cachedVerifiedSync(b)).toBeUndefined();
    const off = await FsBlobStore.open(dir, { memoryCacheBytes: 0 });
    const { sha256: c } = await off.put(chunks('not held'));
    await off.openVerifiedRead(c);
    expect(off.cachedVerifiedSync(c)).toBeUndefined();
  });

  it('verify() reports a mismatch (quarantining) and force re-hashes even when cached', async () => {
    const { sha256: h } = await store.put(chunks('verify me'));
    expect(await store.verify(h)).toMatchObject({ ok: true, cached: false });
    expect(await store.verify(h)).toMatchObject({ ok: true, cached: true });
    expect(await store.verify(h, { force: true })).toMatchObject({ ok: true, cached: false });
    flipByte(store.pathOf(h));
    const v = await store.verify(h);
    expect(v.ok).toBe(false);
    expect(v.actual).toBe(sha256(Buffer.from('verify me').map((c, i) => (i === 0 ? c ^ 0xff : c))));
    expect(await store.isQuarantined(h)).toBe(true);
  });

  it('heals: a put of the right bytes replaces a corrupt copy', async () => {
    const { sha256: h } = await store.put(chunks('heal me'));
    flipByte(store.pathOf(h));
    const r = await store.put(chunks('heal me'), { sha256: h });
    expect(r.created).toBe(true);
    expect((await readAll((await store.openVerifiedRead(h)).stream)).toString()).toBe('heal me');
    expect(await store.isQuarantined(h)).toBe(true); // the bad copy is kept for forensics
  });

  it('refuses unsatisfiable ranges', async () => {
    const { sha256: h } = await store.put(chunks('0123456789'));
    for (const range of [
      { start: 5, end: 10 },
      { start: 10, end: 10 },
      { start: 4, end: 3 },
      { start: -1, end: 2 },
      { start: 0.5, end: 2 },
    ]) {
      await expect(store.openVerifiedRead(h, range)).rejects.toEqual(expectCode('CAS_INVALID_RANGE'));
    }
    expect((await readAll((await store.openVerifiedRead(h, { start: 9, end: 9 })).stream)).toString()).toBe('9');
  });

  it('does not follow a symlink planted in the blob namespace', async () => {
    const outside = join(dir, 'outside');
    writeFileSync(outside, 'secret');
    const h = sha256('secret');
    symlinkSync(outside, join(dir, 'blobs', 'sha256', h.slice(0, 2), h));
    await expect(store.openVerifiedRead(h)).rejects.toEqual(expectCode('CAS_CORRUPT'));
    await expect(store.openRead(h)).rejects.toEqual(expectCode('CAS_CORRUPT'));
  });

  it('lists blobs in order, deletes, and removes partial uploads', async () => {
    const hs = [];
    for (const s of ['one', 'two', 'three']) hs.push((await store.put(chunks(s))).sha256);
    const listed: string[] = [];
    for await (const h of store.list()) listed.push(h);
    expect(listed).toEqual([...hs].sort());
    expect(await store.delete(hs[0]!)).toBe(true);
    expect(await store.delete(hs[0]!)).toBe(false);
    writeFileSync(join(dir, 'tmp', 'leftover.partial'), 'x');
    expect(await store.removePartialUploads()).toBe(1);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });
});
