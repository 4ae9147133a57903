/**
 * The tar header of every entry of a transfer bundle. mirror-sync writes exactly these fields (with tar-stream's
 * ustar encoding) and the importer in @airlock/mirror accepts only headers byte-identical to what they encode to:
 * plain files, mode 0644, owner 0:0 without user or group names, mtime 0. Nothing in a header is left free to
 * vary, so identical inputs give identical bundles and a changed header byte is always a refusal.
 */
export interface TransferTarHeader {
  name: string;
  size: number;
  type: 'file';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

export function transferTarHeader(name: string, size: number): TransferTarHeader {
  return { name, size, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) };
}

const BLOCK = 512;

/** tar-stream 3's encodeOct: `n` octal digits, zero-padded, then a space; all 7s when the value does not fit. */
function oct(value: number, n: number): string {
  const s = value.toString(8);
  return s.length > n ? `${'7'.repeat(n)} ` : `${'0'.repeat(n - s.length)}${s} `;
}

/** A ustar header's checksum: the byte sum with the checksum field itself counted as spaces. */
export function tarHeaderSum(block: Uint8Array): number {
  let sum = 8 * 0x20; // the checksum field itself counts as spaces
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

/**
 * The 512-byte header the bundle writer emits for an entry: tar-stream 3's `headers.encode` of
 * `transferTarHeader(name, size)`, re-implemented here (tar-stream does not export it) and held to pack's
 * output by the unit tests (packages/mirror/test/strict-tar.test.ts). The bundle writer writes it, the importer
 * accepts nothing else. Undefined when a plain ustar header cannot hold the name (non-ASCII or too long:
 * tar-stream would fall back to a pax header, which no bundle name needs).
 */
export function canonicalTarHeader(name: string, size: number): Buffer | undefined {
  const h = transferTarHeader(name, size);
  if (!Number.isSafeInteger(h.size) || h.size < 0) return undefined;
  if (Buffer.byteLength(h.name) !== h.name.length) return undefined;
  let base = h.name;
  let prefix = '';
  // tar-stream moves leading directories into the 155-byte prefix field while the name is over 100 bytes.
  while (base.length > 100) {
    const i = base.indexOf('/');
    if (i === -1) return undefined;
    prefix += prefix ? `/${base.slice(0, i)}` : base.slice(0, i);
    base = base.slice(i + 1);
  }
  if (prefix.length > 155) return undefined;
  const buf = Buffer.alloc(BLOCK);
  buf.write(base, 0, 'latin1');
  buf.write(oct(h.mode & 0o7777, 6), 100, 'latin1');
  buf.write(oct(h.uid, 6), 108, 'latin1');
  buf.write(oct(h.gid, 6), 116, 'latin1');
  if (h.size.toString(8).length > 11) {
    // base-256 for 8 GiB and up, as tar-stream writes it
    buf[124] = 0x80;
    let n = h.size;
    for (let i = 11; i > 0; i--) {
      buf[124 + i] = n % 256;
      n = Math.floor(n / 256);
    }
  } else {
    buf.write(oct(h.size, 11), 124, 'latin1');
  }
  buf.write(oct(Math.trunc(h.mtime.getTime() / 1000), 11), 136, 'latin1');
  buf[156] = 0x30; // '0': regular file
  buf.write('ustar\u000000', 257, 'latin1');
  buf.write(oct(0, 6), 329, 'latin1'); // devmajor
  buf.write(oct(0, 6), 337, 'latin1'); // devminor
  if (prefix) buf.write(prefix, 345, 'latin1');
  buf.write(oct(tarHeaderSum(buf), 6), 148, 'latin1');
  return buf;
}
