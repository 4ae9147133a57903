import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { SyncError } from '../errors.js';
import { BatchedFileWriter } from '../http/file-sink.js';

/** Bytes per write (and per blob read): few syscalls and event-loop turns per GB. */
export const TAR_CHUNK = 4 << 20;
const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);

/**
 * The ustar header tar-stream encodes for `transferTarHeader(name, size)` (plain file, mode 0644, owner 0:0, no
 * user or group names, mtime 0), byte for byte: the importer accepts nothing else. Names over 100 bytes are split
 * into prefix/name at a slash as tar-stream does; names that are not ASCII are refused (tar-stream would write a
 * pax header the importer refuses anyway).
 */
export function encodeTransferHeader(fullName: string, size: number): Buffer {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x01-\x7f]+$/.test(fullName)) throw headerError(fullName, 'not a non-empty ASCII name');
  if (!Number.isSafeInteger(size) || size < 0) throw headerError(fullName, `bad size ${size}`);
  let name = fullName;
  let prefix = '';
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i === -1) throw headerError(fullName, 'longer than 100 bytes without a slash to split at');
    prefix += prefix ? `/${name.slice(0, i)}` : name.slice(0, i);
    name = name.slice(i + 1);
  }
  if (prefix.length > 155) throw headerError(fullName, 'too long for a ustar header');
  const buf = Buffer.alloc(BLOCK);
  buf.write(name, 0, 'latin1');
  buf.write(octal(0o644, 6), 100, 'latin1');
  buf.write(octal(0, 6), 108, 'latin1');
  buf.write(octal(0, 6), 116, 'latin1');
  writeSize(buf, size);
  buf.write(octal(0, 11), 136, 'latin1');
  buf[156] = 0x30; // '0': regular file
  buf.write('ustar\0', 257, 'latin1');
  buf.write('00', 263, 'latin1');
  buf.write(octal(0, 6), 329, 'latin1');
  buf.write(octal(0, 6), 337, 'latin1');
  if (prefix) buf.write(prefix, 345, 'latin1');
  buf.write(octal(checksum(buf), 6), 148, 'latin1');
  return buf;
}

/** Zero bytes after `size` bytes of data, up to the next 512-byte block. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? ZEROS.subarray(0, 0) : ZEROS.subarray(0, BLOCK - rest);
}

/** Two zero blocks end a tar. */
export const TAR_END = ZEROS;

function octal(value: number, digits: number): string {
  const s = value.toString(8);
  return s.length > digits ? `${'7'.repeat(digits)} ` : `${s.padStart(digits, '0')} `;
}

/** tar-stream's encodeSize: octal while it fits in 11 digits, else base-256. */
function writeSize(buf: Buffer, size: number): void {
  if (size.toString(8).length <= 11) {
    buf.write(octal(size, 11), 124, 'latin1');
    return;
  }
  buf[124] = 0x80;
  let n = size;
  for (let i = 11; i > 0; i--) {
    buf[124 + i] = n & 0xff;
    n = Math.floor(n / 0x100);
  }
}

function checksum(block: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

function headerError(name: string, why: string): SyncError {
  return new SyncError('SYNC_BUNDLE_FAILED', `cannot write tar entry '${name}': ${why}`);
}

/**
 * Appends to a file while hashing what it appends: the bundle's sha256 is computed on the bytes as they go out,
 * never by reading the tar back (see BatchedFileWriter for the write side).
 */
export class HashingFileWriter {
  private readonly hash = createHash('sha256');
  private readonly out: BatchedFileWriter;
  private bytes = 0;

  constructor(file: FileHandle) {
    this.out = new BatchedFileWriter(file, TAR_CHUNK);
  }

  push(buf: Buffer, release?: () => void): Promise<void> {
    this.hash.update(buf);
    this.bytes += buf.length;
    return this.out.push(buf, release);
  }

  /** Everything pushed is written; returns the sha256 (hex) and size of all of it. */
  async finish(): Promise<{ sha256: string; size: number }> {
    await this.out.finish();
    return { sha256: this.hash.digest('hex'), size: this.bytes };
  }
}

/** Reusable TAR_CHUNK buffers: a fresh 4 MiB allocation per chunk costs page faults on every byte. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep = 6) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(TAR_CHUNK);
  }

  give(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}
