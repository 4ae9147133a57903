import { TlogError } from '../errors.js';

/**
 * C2SP tlog-tiles paths and encodings (https://github.com/C2SP/C2SP/blob/main/tlog-tiles.md). A tile at level L,
 * index N holds the hashes of tree level 8·L, nodes 256·N … 256·N+W−1 (W = 256 for a full tile); an entry bundle
 * holds the leaf data of tile 0/N, each entry as a big-endian uint16 length and the bytes. Tree sizes here are
 * safe integers (< 2^53), well inside the spec's uint64.
 */
export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;
export const CHECKPOINT_PATH = 'checkpoint';
const MAX_ENTRY_BYTES = 0xffff;

/** N as path elements: zero-padded groups of three digits, all but the last prefixed with 'x' (1234067 → x001/x234/067). */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TlogError('TLOG_BAD_REQUEST', `invalid tile index ${n}`);
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

function widthSuffix(width: number): string {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH)
    throw new TlogError('TLOG_BAD_REQUEST', `invalid tile width ${width}`);
  return width === TILE_WIDTH ? '' : `.p/${width}`;
}

/** `tile/<L>/<N>[.p/<W>]` */
export function tilePath(level: number, index: number, width: number): string {
  return `tile/${level}/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** `tile/entries/<N>[.p/<W>]` */
export function entriesPath(index: number, width: number): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** The relative paths a reader may ask for: strict, so a path can never leave the tile directory. */
export const TILE_PATH_PATTERN =
  /^(checkpoint|tile\/(?:entries|[0-9]{1,2})\/(?:x[0-9]{3}\/)*[0-9]{3}(?:\.p\/[0-9]{1,3})?)$/;

/** Nodes of tree level 8·L that are complete in a tree of `size` leaves. */
export function nodesAtTileLevel(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** One entry of an entry bundle: big-endian uint16 length, then the bytes (one allocation). */
export function encodeBundleEntry(entry: Uint8Array): Buffer {
  if (entry.length > MAX_ENTRY_BYTES)
    throw new TlogError('TLOG_INVALID_ENTRY', `entry of ${entry.length} bytes is too large for a tile`);
  const out = Buffer.allocUnsafe(2 + entry.length);
  out.writeUInt16BE(entry.length, 0);
  out.set(entry, 2);
  return out;
}

/** Packs entries into an entry bundle. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  return Buffer.concat(entries.map(encodeBundleEntry));
}

/** Splits an entry bundle; throws TLOG_BAD_RESPONSE when malformed. */
export function decodeEntryBundle(bytes: Uint8Array): Buffer[] {
  const buf = Buffer.from(bytes);
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 2 > buf.length) throw new TlogError('TLOG_BAD_RESPONSE', 'entry bundle: truncated length');
    const len = buf.readUInt16BE(off);
    if (off + 2 + len > buf.length) throw new TlogError('TLOG_BAD_RESPONSE', 'entry bundle: truncated entry');
    out.push(buf.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}
