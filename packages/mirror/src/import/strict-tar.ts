import { canonicalTarHeader, tarHeaderSum } from '@airlock/core';
import { ImportError } from './errors.js';

/**
 * A strict, streaming reader for transfer-bundle tars. The sync job writes every byte of a bundle
 * deterministically (tar-stream's ustar encoding of `transferTarHeader(name, size)`, zero padding to 512 bytes,
 * two zero end-of-archive blocks and nothing after them), so the importer accepts exactly that layout and
 * nothing a lenient tar reader would also take: any header field, padding byte or end block that differs from
 * what the writer produces is refused (IMPORT_ARCHIVE_NONCANONICAL), so a changed byte can never go unnoticed.
 * Dangerous entries keep their own refusal (IMPORT_ARCHIVE_UNSAFE): links, devices, directories, extension
 * headers, absolute or `..` names, and archives that end early.
 *
 * Constant memory: data is handed on as views of the source's chunks, and the source is read only as fast as
 * the consumer reads the entry bodies (back-pressure is the source's async iterator's).
 */

// The header encoder lives in core, shared with the bundle writer in mirror-sync.
export { canonicalTarHeader };

const BLOCK = 512;
/** tar-stream's pack ends an archive with two zero blocks and does not pad to a record size. */
const END_BLOCKS = 2;
/** Pax / GNU long-name headers are read only to name the entry in the refusal. */
const MAX_EXTENSION_HEADER = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export interface StrictTarEntry {
  /** Entry name, already checked: relative, no `.`/`..`/empty segments, no NUL or backslash. */
  name: string;
  size: number;
  /** Archive offset of the entry's header. */
  offset: number;
  /**
   * The entry's data. Read it (or leave it) before asking for the next entry; whatever is left is skipped then.
   * Iteration ends only after the padding behind the data has been checked.
   */
  body: AsyncIterable<Buffer>;
}

const FIELDS: [number, string][] = [
  [0, 'name'],
  [100, 'mode'],
  [108, 'uid'],
  [116, 'gid'],
  [124, 'size'],
  [136, 'mtime'],
  [148, 'checksum'],
  [156, 'typeflag'],
  [157, 'linkname'],
  [257, 'magic'],
  [263, 'version'],
  [265, 'uname'],
  [297, 'gname'],
  [329, 'devmajor'],
  [337, 'devminor'],
  [345, 'prefix'],
  [500, 'unused'],
];

/** Which header field byte `i` belongs to, for messages. */
export function tarHeaderField(i: number): string {
  let field = 'name';
  for (const [start, name] of FIELDS) if (i >= start) field = name;
  return field;
}

/** Archive-level name hygiene (IMPORT_ARCHIVE_UNSAFE): nothing that could resolve outside a target directory. */
export function checkEntryName(name: string): void {
  if (name.includes('\0') || name.includes('\\'))
    throw unsafe(`entry name ${JSON.stringify(name)} has a NUL or backslash`);
  if (name.startsWith('/')) throw unsafe(`entry '${name}' has an absolute path`);
  if (name.split('/').some((seg) => seg === '..' || seg === '.' || seg === ''))
    throw unsafe(`entry '${name}' has an empty, '.' or '..' path segment`);
}

function unsafe(message: string): ImportError {
  return new ImportError('IMPORT_ARCHIVE_UNSAFE', message);
}

function noncanonical(message: string, offset: number, entry?: string): ImportError {
  return new ImportError(
    'IMPORT_ARCHIVE_NONCANONICAL',
    `${message}; the bundle is not as the sync job writes it (tampered or corrupt)`,
    {
      details: { offset, ...(entry !== undefined ? { entry } : {}) },
    },
  );
}

function truncated(offset: number, where: string): ImportError {
  return new ImportError('IMPORT_ARCHIVE_UNSAFE', `the bundle is truncated: it ends at byte ${offset}, ${where}`, {
    details: { offset },
  });
}

function firstNonZero(b: Buffer): number {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return i;
  return -1;
}

function cString(block: Buffer, start: number, length: number): string {
  const end = block.indexOf(0, start);
  return block.toString('utf8', start, end === -1 || end > start + length ? start + length : end);
}

/** A numeric header field: octal digits between optional leading spaces and trailing spaces/NULs, or base-256. */
function numericField(block: Buffer, start: number, length: number): number | undefined {
  const field = block.subarray(start, start + length);
  if (field[0] === 0x80) {
    let n = 0;
    for (let i = 1; i < length; i++) n = n * 256 + field[i]!;
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const m = /^ *([0-7]*)[ \0]*$/.exec(field.toString('latin1'));
  if (!m) return undefined;
  return m[1] ? parseInt(m[1], 8) : 0;
}

const TYPE_NAMES: Record<string, string> = {
  '1': 'hard link',
  '2': 'symlink',
  '3': 'character device',
  '4': 'block device',
  '5': 'directory',
  '6': 'FIFO',
  '7': 'contiguous file',
};

/** Pulls bytes from an async iterable of chunks, tracking the archive offset. */
class ByteReader {
  offset = 0;
  private chunk: Buffer = EMPTY;
  private ended = false;

  constructor(private readonly it: AsyncIterator<unknown>) {}

  /** True when at least one more byte is available. */
  async more(): Promise<boolean> {
    while (this.chunk.length === 0) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      const v = r.value;
      if (!(v instanceof Uint8Array))
        throw unsafe(`cannot read the bundle: its stream yields ${typeof v} chunks, not bytes`);
      this.chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
    return true;
  }

  /** Between 1 and `max` bytes (a view of the source chunk), or undefined at the end of the input. */
  async some(max: number): Promise<Buffer | undefined> {
    if (!(await this.more())) return undefined;
    const n = Math.min(max, this.chunk.length);
    const out = this.chunk.subarray(0, n);
    this.chunk = this.chunk.subarray(n);
    this.offset += n;
    return out;
  }

  /** `n` bytes, or fewer only if the input ends first. */
  async exact(n: number): Promise<Buffer> {
    const first = await this.some(n);
    if (!first) return EMPTY;
    if (first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const c = await this.some(n - got);
      if (!c) break;
      parts.push(c);
      got += c.length;
    }
    return Buffer.concat(parts, got);
  }
}

/** One entry's data and padding; the reader finishes it (skipping what the consumer left) before moving on. */
class EntryBody {
  private remaining: number;
  private closed = false;

  constructor(
    private readonly r: ByteReader,
    private readonly name: string,
    private readonly size: number,
  ) {
    this.remaining = size;
  }

  async *read(): AsyncGenerator<Buffer, void, undefined> {
    while (this.remaining > 0) {
      if (this.closed)
        throw new ImportError(
          'IMPORT_ARCHIVE_UNSAFE',
          `internal: entry '${this.name}' read after the next entry was requested`,
        );
      const c = await this.r.some(this.remaining);
      if (!c)
        throw truncated(
          this.r.offset,
          `inside the data of entry '${this.name}' (${this.remaining} of ${this.size} bytes missing)`,
        );
      this.remaining -= c.length;
      yield c;
    }
    await this.finish();
  }

  async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.remaining > 0) {
      const c = await this.r.some(this.remaining);
      if (!c) throw truncated(this.r.offset, `inside the data of entry '${this.name}'`);
      this.remaining -= c.length;
    }
    const pad = (BLOCK - (this.size % BLOCK)) % BLOCK;
    if (pad === 0) return;
    const at = this.r.offset;
    const p = await this.r.exact(pad);
    if (p.length < pad) throw truncated(this.r.offset, `inside the padding after entry '${this.name}'`);
    const nz = firstNonZero(p);
    if (nz >= 0)
      throw noncanonical(
        `the padding after entry '${this.name}' has a non-zero byte at offset ${at + nz}`,
        at + nz,
        this.name,
      );
  }
}

/**
 * Reads a transfer-bundle tar, yielding one entry per plain-file header. Returns only after the end-of-archive
 * blocks and the end of the input have been checked; throws ImportError (IMPORT_ARCHIVE_NONCANONICAL,
 * IMPORT_ARCHIVE_UNSAFE) otherwise. The source is released (its iterator's `return`) when reading stops.
 */
export async function* readStrictTar(source: AsyncIterable<unknown>): AsyncGenerator<StrictTarEntry, void, undefined> {
  const it = source[Symbol.asyncIterator]();
  const r = new ByteReader(it);
  let current: EntryBody | undefined;
  try {
    for (;;) {
      await current?.finish();
      current = undefined;
      const at = r.offset;
      const block = await r.exact(BLOCK);
      if (block.length === 0) throw truncated(at, 'where the next header or the end-of-archive blocks should be');
      if (block.length < BLOCK) throw truncated(r.offset, `inside the header block at offset ${at}`);
      if (firstNonZero(block) === -1) {
        await readEnd(r, at);
        return;
      }
      const { name, size } = await readHeader(r, block, at);
      current = new EntryBody(r, name, size);
      yield { name, size, offset: at, body: current.read() };
    }
  } finally {
    // Releases the source early on a refusal or when the consumer stops (a stream is destroyed).
    await Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

async function readEnd(r: ByteReader, first: number): Promise<void> {
  for (let i = 1; i < END_BLOCKS; i++) {
    const at = r.offset;
    const b = await r.exact(BLOCK);
    if (b.length < BLOCK) throw truncated(r.offset, `inside the end-of-archive blocks that begin at offset ${first}`);
    const nz = firstNonZero(b);
    if (nz >= 0)
      throw noncanonical(
        `end-of-archive block ${i + 1} (at offset ${at}) has a non-zero byte at offset ${at + nz}`,
        at + nz,
      );
  }
  if (await r.more())
    throw noncanonical(`there are bytes after the end-of-archive blocks, from offset ${r.offset}`, r.offset);
}

async function readHeader(r: ByteReader, block: Buffer, at: number): Promise<{ name: string; size: number }> {
  const stored = numericField(block, 148, 8);
  const sum = tarHeaderSum(block);
  if (stored !== sum) {
    throw noncanonical(
      `the header block at offset ${at} fails its checksum (stored ${stored === undefined ? 'unreadable' : stored}, computed ${sum}); is it an uncompressed tar?`,
      at,
    );
  }
  const typeflag = String.fromCharCode(block[156]!);
  const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
  let name = cString(block, 0, 100);
  if (ustar && block[345] !== 0) name = `${cString(block, 345, 155)}/${name}`;
  if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K')
    await refuseExtensionHeader(r, block, at, typeflag, name);
  if (typeflag !== '0' && typeflag !== '\0') {
    throw unsafe(
      `entry '${name}' is a ${TYPE_NAMES[typeflag] ?? `entry of unknown type '${typeflag}'`}, only plain files are allowed`,
    );
  }
  checkEntryName(name);
  const size = numericField(block, 124, 12);
  if (size === undefined) throw unsafe(`entry '${name}' has no valid size`);
  const expected = canonicalTarHeader(name, size);
  if (!expected)
    throw noncanonical(
      `entry '${name}' (header at offset ${at}) has a name no plain ustar header written by the sync job can hold`,
      at,
      name,
    );
  if (!expected.equals(block)) {
    let i = 0;
    while (expected[i] === block[i]) i++;
    throw noncanonical(
      `the header of entry '${name}' at offset ${at} differs from the canonical one at header byte ${i} (${tarHeaderField(i)} field, archive offset ${at + i}): bundles carry only ustar headers with mode 0644, owner 0:0 and mtime 0`,
      at + i,
      name,
    );
  }
  return { name, size };
}

/** Pax and GNU long-name headers never occur in a bundle: refuse, naming the path they carry (and its problem). */
async function refuseExtensionHeader(
  r: ByteReader,
  block: Buffer,
  at: number,
  typeflag: string,
  headerName: string,
): Promise<never> {
  const kind = typeflag === 'x' || typeflag === 'g' ? 'pax extended' : 'GNU long-name';
  const size = numericField(block, 124, 12);
  let path: string | undefined;
  if (size !== undefined && size <= MAX_EXTENSION_HEADER && (typeflag === 'x' || typeflag === 'L')) {
    const body = await r.exact(size);
    const text = body.toString('utf8');
    if (typeflag === 'L') path = text.replace(/\0.*$/s, '');
    else path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text)?.[1];
  }
  if (path !== undefined) checkEntryName(path);
  throw unsafe(
    `entry '${path ?? headerName}' (header at offset ${at}) uses a ${kind} header; bundles hold plain ustar file entries only`,
  );
}
