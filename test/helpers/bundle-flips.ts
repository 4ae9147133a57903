/**
 * Where a transfer bundle's bytes are, and what `airlock mirror import` must say when one of them changes:
 * the archive structure (headers, padding, end blocks) is refused as IMPORT_ARCHIVE_NONCANONICAL, the manifest
 * and the attestations as IMPORT_SIGNATURE_INVALID, blob data as IMPORT_BLOB_MISMATCH.
 */

export interface TarLayoutEntry {
  name: string;
  /** Offset of the 512-byte header. */
  header: number;
  /** Offset of the data. */
  data: number;
  size: number;
  /** Offset of the zero padding after the data, and its length (0..511). */
  padding: number;
  paddingLength: number;
}

export interface TarLayout {
  entries: TarLayoutEntry[];
  /** Offset of the end-of-archive blocks (they run to the end of the file). */
  end: number;
}

/** Offsets of each entry of a bundle as the sync job writes it (plain ustar headers, no extensions). */
export function tarLayout(buf: Buffer): TarLayout {
  const entries: TarLayoutEntry[] = [];
  let off = 0;
  for (; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    const padded = Math.ceil(size / 512) * 512;
    entries.push({ name, header: off, data: off + 512, size, padding: off + 512 + size, paddingLength: padded - size });
    off += 512 + padded;
  }
  if (buf.length - off !== 1024)
    throw new Error(`expected two end blocks at ${off}, the file has ${buf.length - off} bytes left`);
  return { entries, end: off };
}

export type FlipCode = 'IMPORT_ARCHIVE_NONCANONICAL' | 'IMPORT_SIGNATURE_INVALID' | 'IMPORT_BLOB_MISMATCH';

export interface Flip {
  what: string;
  pos: number;
  code: FlipCode;
}

/** The region a byte is in, and so the refusal a change to it must get. */
export function expectedFlip(layout: TarLayout, pos: number): Omit<Flip, 'pos'> {
  if (pos >= layout.end)
    return {
      what: `end-of-archive block ${pos - layout.end < 512 ? 1 : 2} byte ${(pos - layout.end) % 512}`,
      code: 'IMPORT_ARCHIVE_NONCANONICAL',
    };
  const e = layout.entries.find((x) => pos >= x.header && pos < x.padding + x.paddingLength)!;
  if (pos < e.data) return { what: `${e.name} header byte ${pos - e.header}`, code: 'IMPORT_ARCHIVE_NONCANONICAL' };
  if (pos >= e.padding)
    return {
      what: `${e.name} padding byte ${pos - e.padding} of ${e.paddingLength}`,
      code: 'IMPORT_ARCHIVE_NONCANONICAL',
    };
  return {
    what: `${e.name} data byte ${pos - e.data} of ${e.size}`,
    code: e.name.startsWith('blobs/') ? 'IMPORT_BLOB_MISMATCH' : 'IMPORT_SIGNATURE_INVALID',
  };
}

/** One byte position of every header field (ustar offsets), the checksum's terminators included. */
export const HEADER_FIELD_OFFSETS = [
  0,
  1,
  60,
  99, // name
  100,
  105,
  106,
  107, // mode digits, space terminator, NUL
  108,
  114,
  115,
  116,
  122,
  123, // uid, gid
  124,
  134,
  135, // size
  136,
  146,
  147, // mtime
  148,
  153,
  154,
  155, // checksum digits, its NUL and space
  156, // typeflag
  157,
  256, // linkname
  257,
  262,
  263,
  264, // magic, version
  265,
  296,
  297,
  328, // uname, gname
  329,
  335,
  336,
  337,
  344, // devmajor, devminor
  345,
  499, // prefix
  500,
  511, // unused tail
];

/** Deterministic picks (mulberry32), so a failing position is reproducible. */
export function seeded(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Byte positions inside a Sigstore bundle's JSON that a lenient reader would not notice changed. */
export function jsonHotSpots(buf: Buffer, e: TarLayoutEntry): number[] {
  const text = buf.subarray(e.data, e.data + e.size).toString('latin1');
  const out = new Set<number>();
  for (let i = 0; i < text.length; i++) {
    // base64 padding and the character before it (its low bits are padding bits), empty objects, separators
    if (
      text[i] === '=' ||
      text[i + 1] === '=' ||
      (text[i] === '{' && text[i + 1] === '}') ||
      text[i] === '}' ||
      text[i] === ':'
    )
      out.add(i);
  }
  // the first byte of every key
  for (const m of text.matchAll(/"([A-Za-z0-9_]+)":/g)) out.add(m.index + 1);
  out.add(0);
  out.add(text.length - 1);
  return [...out].sort((a, b) => a - b).map((i) => e.data + i);
}
