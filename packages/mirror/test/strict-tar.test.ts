/**
 * The strict transfer-bundle tar reader: it accepts exactly what the sync job's writer (tar-stream pack with
 * `transferTarHeader(name, size)`) produces and refuses every other byte sequence in the archive structure —
 * each header field, the padding behind each entry, the two end blocks, anything after them — while streaming
 * with no read-ahead.
 */
import { randomBytes } from 'node:crypto';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { transferTarHeader } from '@airlock/core';
import { canonicalTarHeader, readStrictTar, tarHeaderField, type ImportErrorCode } from '../src/index.js';

const BLOB = `blobs/sha256/${'ab'.repeat(32)}`;

/** Exactly how mirror-sync's bundle writer packs entries. */
async function packLikeWriter(entries: [string, Buffer][]): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of entries) pack.entry(transferTarHeader(name, body.length), body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The header pack writes for an entry, without supplying its data (sizes far beyond memory). */
async function packHeader(name: string, size: number): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry(transferTarHeader(name, size), () => undefined);
  for await (const c of pack as AsyncIterable<Buffer>) {
    pack.destroy();
    return Buffer.from(c.subarray(0, 512));
  }
  throw new Error('pack wrote nothing');
}

/** Fix up a hand-edited header's checksum the way tar does, so only the edited field differs. */
function resum(archive: Buffer, headerAt: number): void {
  const h = archive.subarray(headerAt, headerAt + 512);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')} \0`, 148, 'latin1');
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

interface Read {
  name: string;
  size: number;
  offset: number;
  body: Buffer;
}

async function readAll(buf: Buffer, chunkSize = 4096): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readStrictTar(chunked(buf, chunkSize))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(Buffer.from(c));
    out.push({ name: e.name, size: e.size, offset: e.offset, body: Buffer.concat(parts) });
  }
  return out;
}

async function refusal(buf: Buffer, chunkSize = 4096): Promise<{ code: ImportErrorCode; message: string }> {
  try {
    await readAll(buf, chunkSize);
  } catch (err) {
    return { code: (err as { code: ImportErrorCode }).code, message: (err as Error).message };
  }
  throw new Error('accepted');
}

/** manifest (5 bytes: padding 507), attestation (512: no padding), blob (600: padding 424), empty file. */
const ENTRIES: [string, Buffer][] = [
  ['manifest.json', Buffer.from('{"a":1}'.slice(0, 5))],
  ['attestations/manifest.sigstore.json', randomBytes(512)],
  [BLOB, randomBytes(600)],
  [`blobs/sha256/${'cd'.repeat(32)}`, Buffer.alloc(0)],
];

describe('canonicalTarHeader', () => {
  it('is byte-identical to what tar-stream pack writes for transferTarHeader(name, size)', async () => {
    const names = [
      'manifest.json',
      'attestations/manifest.sigstore.json',
      BLOB,
      'x'.repeat(100),
      `${'d'.repeat(60)}/${'e'.repeat(99)}`,
      `${'p/'.repeat(70)}file`,
    ];
    const sizes = [0, 1, 511, 512, 513, 65_536, 8 * 1024 ** 3 - 1, 8 * 1024 ** 3, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    for (const name of names) {
      for (const size of sizes)
        expect(canonicalTarHeader(name, size), `${name} ${size}`).toEqual(await packHeader(name, size));
    }
  });

  it('has no answer where tar-stream would need a pax header', () => {
    expect(canonicalTarHeader('x'.repeat(101), 1)).toBeUndefined();
    expect(canonicalTarHeader('blobs/é', 1)).toBeUndefined();
    expect(canonicalTarHeader('a', -1)).toBeUndefined();
  });

  it('names header fields', () => {
    expect([0, 99, 100, 124, 135, 148, 155, 156, 157, 257, 263, 265, 345, 499, 500, 511].map(tarHeaderField)).toEqual([
      'name',
      'name',
      'mode',
      'size',
      'size',
      'checksum',
      'checksum',
      'typeflag',
      'linkname',
      'magic',
      'version',
      'uname',
      'prefix',
      'prefix',
      'unused',
      'unused',
    ]);
  });
});

describe('readStrictTar: canonical archives', () => {
  it('reads what the writer packs, in any chunking, with offsets', async () => {
    const archive = await packLikeWriter(ENTRIES);
    // 512 + 512 | 512 + 512 | 512 + 1024 | 512 | end 1024
    expect(archive.length).toBe(5120);
    for (const chunk of [1, 7, 511, 512, 513, 100_000]) {
      const read = await readAll(archive, chunk);
      expect(read.map((r) => [r.name, r.body])).toEqual(ENTRIES);
      expect(read.map((r) => r.offset)).toEqual([0, 1024, 2048, 3584]);
    }
  });

  it('reads an archive with no entries (just the end blocks)', async () => {
    expect(await readAll(Buffer.alloc(1024))).toEqual([]);
  });

  it('skips a body the consumer does not read, still checking its padding', async () => {
    const archive = await packLikeWriter(ENTRIES);
    const names: string[] = [];
    for await (const e of readStrictTar(chunked(archive, 100))) names.push(e.name);
    expect(names).toEqual(ENTRIES.map(([n]) => n));
    const bad = Buffer.from(archive);
    bad[2048 + 512 + 600 + 10] = 1; // padding after the blob
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of readStrictTar(chunked(bad, 100))) seen.push(e.name);
      })(),
    ).rejects.toMatchObject({ code: 'IMPORT_ARCHIVE_NONCANONICAL' });
    expect(seen).toEqual(ENTRIES.slice(0, 3).map(([n]) => n));
  });

  it('streams: pulls the source only as far as the consumer has read, and releases it on early exit', async () => {
    const big = randomBytes(512 * 64);
    const archive = await packLikeWriter([[BLOB, big]]);
    let pulled = 0;
    let released = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < archive.length; i += 512) {
          pulled++;
          yield archive.subarray(i, i + 512);
        }
      } finally {
        released = true;
      }
    }
    const entries = readStrictTar(source());
    const first = await entries.next();
    expect(first.done).toBe(false);
    expect(pulled).toBe(1); // the header, nothing of the data yet
    const body = (first.value as { body: AsyncIterable<Buffer> }).body[Symbol.asyncIterator]();
    await body.next();
    await body.next();
    expect(pulled).toBe(3);
    await entries.return(undefined);
    expect(released).toBe(true);
    expect(pulled).toBe(3);
  });
});

describe('readStrictTar: every single-byte change of the structure is refused', () => {
  it('headers, padding and end blocks (all positions, several bit patterns); data bytes pass through unchanged but for that byte', async () => {
    const archive = await packLikeWriter(ENTRIES);
    const data = new Set<number>();
    for (const [start, len] of [
      [512, 5],
      [1536, 512],
      [2560, 600],
    ] as const)
      for (let i = 0; i < len; i++) data.add(start + i);
    let structural = 0;
    for (let pos = 0; pos < archive.length; pos++) {
      for (const mask of [0x01, 0x10, 0x20, 0x80, 0xff]) {
        const t = Buffer.from(archive);
        t[pos] = t[pos]! ^ mask;
        if (data.has(pos)) {
          const read = await readAll(t, 1024);
          const bodies = Buffer.concat(read.map((r) => r.body));
          const orig = Buffer.concat(ENTRIES.map(([, b]) => b));
          const diff = [...bodies].flatMap((b, i) => (b !== orig[i] ? [i] : []));
          expect(diff, `pos ${pos}`).toHaveLength(1);
        } else {
          const r = await refusal(t, 1024);
          expect(r.code, `pos ${pos} mask ${mask}: ${r.message}`).toBe('IMPORT_ARCHIVE_NONCANONICAL');
          structural++;
        }
      }
    }
    expect(structural).toBe((archive.length - data.size) * 5);
  });
});

describe('readStrictTar: deviation classes', () => {
  const archiveP = packLikeWriter(ENTRIES);

  it.each([
    ['mode 0755', 100, '000755 '],
    ['uid 1000', 108, '001750 '],
    ['mtime now', 136, '14712345670 '],
    ['uname root', 265, 'root'],
    ['gname wheel', 297, 'wheel'],
    ['typeflag NUL (old-style file)', 156, '\0'],
    ['GNU magic', 257, 'ustar  \0'],
    ['a checksum terminated differently', 154, '\0 '],
    ['the same size spelled with leading spaces', 124, '       1130 '],
    ['a non-zero unused tail', 505, 'x'],
    ['a linkname on a file', 157, 'manifest.json'],
  ])('a header field change with a valid checksum: %s', async (_what, at, text) => {
    const t = Buffer.from(await archiveP);
    t.write(text, 2048 + at, 'latin1');
    if (at !== 154) resum(t, 2048); // the checksum's own terminators are not summed
    const r = await refusal(t);
    expect(r.code, r.message).toBe('IMPORT_ARCHIVE_NONCANONICAL');
    expect(r.message).toContain(BLOB);
  });

  it('a corrupt header checksum', async () => {
    const t = Buffer.from(await archiveP);
    t[1024 + 3] = 0x41;
    const r = await refusal(t);
    expect(r).toMatchObject({ code: 'IMPORT_ARCHIVE_NONCANONICAL' });
    expect(r.message).toMatch(/offset 1024 fails its checksum/);
  });

  it('a non-zero padding byte, named with its offset', async () => {
    const t = Buffer.from(await archiveP);
    t[512 + 5 + 100] = 0x20;
    const r = await refusal(t);
    expect(r.code).toBe('IMPORT_ARCHIVE_NONCANONICAL');
    expect(r.message).toContain("padding after entry 'manifest.json' has a non-zero byte at offset 617");
  });

  it('a non-zero byte in either end block', async () => {
    const a = await archiveP;
    for (const pos of [a.length - 1024, a.length - 600, a.length - 512, a.length - 1]) {
      const t = Buffer.from(a);
      t[pos] = 1;
      expect((await refusal(t)).code, `pos ${pos}`).toBe('IMPORT_ARCHIVE_NONCANONICAL');
    }
  });

  it('anything after the end blocks (garbage, more zeros, a whole record of padding)', async () => {
    const a = await archiveP;
    for (const tail of [
      Buffer.from([0]),
      Buffer.from('x'),
      Buffer.alloc(512),
      Buffer.alloc(10240 - (a.length % 10240)),
      await packLikeWriter([['manifest.json', Buffer.from('{}')]]),
    ]) {
      const r = await refusal(Buffer.concat([a, tail]));
      expect(r.code, `${tail.length} bytes`).toBe('IMPORT_ARCHIVE_NONCANONICAL');
      expect(r.message).toContain(`after the end-of-archive blocks, from offset ${a.length}`);
    }
  });

  it('truncated anywhere (inside a header, data, padding, end blocks; missing end blocks) is refused as unsafe', async () => {
    const a = await archiveP;
    for (const len of [
      0,
      100,
      512,
      520,
      1024 + 511,
      2048 + 512 + 599,
      2048 + 512 + 700,
      4096,
      a.length - 1024,
      a.length - 512,
      a.length - 1,
    ]) {
      const r = await refusal(a.subarray(0, len));
      expect(r.code, `${len}: ${r.message}`).toBe('IMPORT_ARCHIVE_UNSAFE');
      expect(r.message).toContain('truncated');
    }
  });

  async function craft(
    entries: { name: string; type?: tar.Header['type']; linkname?: string; body?: Buffer }[],
  ): Promise<Buffer> {
    const pack = tar.pack();
    for (const e of entries) {
      if ((e.type ?? 'file') === 'file')
        pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.body ?? Buffer.alloc(0));
      else
        pack.entry({
          name: e.name,
          type: e.type,
          linkname: e.linkname ?? '',
          mode: 0o644,
          mtime: new Date(0),
          size: 0,
        });
    }
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  it.each([
    ['a symlink', { name: BLOB, type: 'symlink', linkname: '/etc/shadow' }, /is a symlink, only plain files/],
    ['a hard link', { name: BLOB, type: 'link', linkname: 'manifest.json' }, /is a hard link/],
    ['a directory', { name: 'blobs/', type: 'directory' }, /is a directory/],
    ['a character device', { name: 'dev', type: 'character-device' }, /character device/],
    ['a block device', { name: 'dev', type: 'block-device' }, /block device/],
    ['a FIFO', { name: 'fifo', type: 'fifo' }, /FIFO/],
    ['an absolute path', { name: '/etc/passwd', body: Buffer.from('x') }, /absolute path/],
    ['a .. segment', { name: 'blobs/sha256/../../../etc/passwd', body: Buffer.from('x') }, /'\.\.' path segment/],
    ['a backslash', { name: 'blobs\\sha256\\x', body: Buffer.from('x') }, /backslash/],
    [
      'a .. segment in a pax name',
      { name: `blobs/${'../'.repeat(60)}${'x'.repeat(120)}`, body: Buffer.from('x') },
      /'\.\.' path segment/,
    ],
    [
      'a pax header with a harmless name',
      { name: `blobs/${'é'.repeat(10)}`, body: Buffer.from('x') },
      /pax extended header/,
    ],
  ] as [string, { name: string; type?: tar.Header['type']; linkname?: string; body?: Buffer }, RegExp][])(
    'hygiene: %s is refused as unsafe',
    async (_what, entry, message) => {
      const r = await refusal(await craft([{ name: 'manifest.json', body: Buffer.from('{}') }, entry]));
      expect(r.code, r.message).toBe('IMPORT_ARCHIVE_UNSAFE');
      expect(r.message).toMatch(message);
    },
  );

  it('a GNU long-name header is refused as unsafe', async () => {
    const a = await packLikeWriter([['manifest.json', Buffer.from('{}')]]);
    const long = Buffer.from(`${'n/'.repeat(80)}../x\0`);
    const h = Buffer.from(canonicalTarHeader('././@LongLink', long.length)!);
    h[156] = 'L'.charCodeAt(0);
    const t = Buffer.concat([h, long, Buffer.alloc(512 - long.length)]);
    resum(t, 0);
    const r = await refusal(Buffer.concat([t, a]));
    expect(r.code).toBe('IMPORT_ARCHIVE_UNSAFE');
    expect(r.message).toMatch(/'\.\.' path segment/);
  });

  it('a stream of strings is not a bundle', async () => {
    async function* text(): AsyncGenerator<string> {
      yield 'manifest.json';
    }
    const it = readStrictTar(text());
    await expect(it.next()).rejects.toMatchObject({ code: 'IMPORT_ARCHIVE_UNSAFE' });
  });
});
