import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { digestStream, HashingTransform } from '../src/digest.js';

/**
 * Constant memory: hashing a ~300 MB stream must not hold on to what it has hashed. The bound is on resident
 * memory growth (peak RSS sampled while streaming minus RSS before), not on time. A hasher that buffered the
 * stream would grow by ~300 MB; chunks are freshly allocated so retained chunks would show up in RSS.
 */
const TOTAL = 300 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const MAX_GROWTH = 128 * 1024 * 1024; // measured ~40 MiB when streaming, ~255 MiB when every chunk is kept

function generated(reference: ReturnType<typeof createHash>, sample: () => void): Readable {
  let sent = 0;
  let n = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (sent >= TOTAL) return void this.push(null);
      const chunk = Buffer.allocUnsafe(CHUNK);
      chunk.fill(n & 0xff);
      chunk.writeUInt32BE(n++, 0);
      reference.update(chunk);
      sent += chunk.length;
      if (n % 16 === 0) sample();
      this.push(chunk);
    },
  });
}

describe('constant-memory hashing', () => {
  it('digestStream hashes 300 MB with bounded RSS growth', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = (): void => {
      peak = Math.max(peak, process.memoryUsage().rss);
    };
    const reference = createHash('sha256');
    const r = await digestStream(generated(reference, sample), ['sha256', 'sha1']);
    sample();
    expect(r.size).toBe(TOTAL);
    expect(r.digests.sha256).toBe(reference.digest('hex'));
    expect(peak - before).toBeLessThan(MAX_GROWTH);
  });

  it('HashingTransform streams 300 MB through with bounded RSS growth', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = (): void => {
      peak = Math.max(peak, process.memoryUsage().rss);
    };
    const reference = createHash('sha256');
    const t = new HashingTransform(['sha256']);
    let passed = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        passed += chunk.length;
        cb();
      },
    });
    await pipeline(generated(reference, sample), t, sink);
    sample();
    expect(passed).toBe(TOTAL);
    expect(t.result?.digests.sha256).toBe(reference.digest('hex'));
    expect(peak - before).toBeLessThan(MAX_GROWTH);
  });
});
