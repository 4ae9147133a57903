import type { FileHandle } from 'node:fs/promises';

/**
 * Writes a sequence of buffers into an open file from offset 0, leaving the handle open (a staged blob is read back
 * through it). Pushed buffers are gathered until `batchBytes`, then written with one positioned writev; one write is
 * in flight while the caller produces (hashes, downloads) the next batch, so this thread's work and the I/O in
 * libuv's pool overlap. No stream machinery: one call per chunk. A buffer handed to `push` must stay unchanged
 * until its `release` callback runs. A failed write surfaces from the next `push` or from `finish`.
 */
export class BatchedFileWriter {
  private batch: Buffer[] = [];
  private releases: (() => void)[] = [];
  private batchBytes = 0;
  private position = 0;
  private inflight: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: FileHandle,
    private readonly batchLimit: number,
  ) {}

  async push(buf: Buffer, release?: () => void): Promise<void> {
    if (release) this.releases.push(release);
    if (buf.length === 0) return;
    this.batch.push(buf);
    this.batchBytes += buf.length;
    if (this.batchBytes >= this.batchLimit) await this.flush();
  }

  /** Everything pushed is on the file (not synced). */
  async finish(): Promise<void> {
    await this.flush();
    await this.inflight;
  }

  private async flush(): Promise<void> {
    await this.inflight; // one write at a time: the file grows in order
    if (this.batchBytes === 0) return;
    const buffers = this.batch;
    const releases = this.releases;
    const at = this.position;
    this.position += this.batchBytes;
    this.batch = [];
    this.releases = [];
    this.batchBytes = 0;
    this.inflight = writeFully(this.file, buffers, at).then(() => releases.forEach((r) => r()));
    this.inflight.catch(() => undefined); // awaited by the next flush or finish
  }
}

async function writeFully(file: FileHandle, buffers: Buffer[], at: number): Promise<void> {
  let pending = buffers;
  let position = at;
  while (pending.length > 0) {
    // IOV_MAX is 1024; a batch of 64 KiB chunks stays far below it, but never rely on it.
    const { bytesWritten } = await file.writev(pending.slice(0, 1024), position);
    position += bytesWritten;
    pending = skipBytes(pending, bytesWritten);
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
