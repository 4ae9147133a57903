import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Writes a stream into an open file from offset 0, leaving the handle open (the staged blob is read back through
 * it). Queued chunks go out as one writev. Not `FileHandle.createWriteStream({ autoClose: false })`: that stream
 * keeps a reference on the handle, and `close()` then waits forever.
 */
export class FileSink extends Writable {
  private position = 0;

  constructor(
    private readonly file: FileHandle,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.file.writev(pending, this.position);
      this.position += bytesWritten;
      pending = skipBytes(pending, bytesWritten);
    }
  }
}

/** What is left of `buffers` after the first `n` bytes (a short write). */
function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = n;
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return rest;
}
