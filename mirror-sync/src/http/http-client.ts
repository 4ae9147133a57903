import { createWriteStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import PQueue from 'p-queue';
import { HashingTransform, type DigestAlgorithm, type DigestResult } from '@airlock/core';
import { SyncError } from '../errors.js';
import { PRODUCER } from '../producer.js';
import { FileSink } from './file-sink.js';
import { UrlRewriter } from './url-rewrite.js';

export interface HttpClientOptions {
  /** Requests in flight overall (default 8). */
  concurrency?: number;
  /** Requests in flight per host (default 4): be a polite client of public registries. */
  perHostConcurrency?: number;
  /** Retries after the first attempt on network errors, 408, 429 and 5xx (default 4). */
  retries?: number;
  /** First backoff step (default 500 ms); doubles per retry with jitter, capped by retryMaxDelayMs (default 30 s). */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Longest `Retry-After` honoured (default 120 s); longer values are clamped. */
  maxRetryAfterMs?: number;
  /** Abort a request that delivers no bytes for this long (default 60 s). */
  idleTimeoutMs?: number;
  rewriteHosts?: Record<string, string>;
  /** Injectable for tests; defaults to the global fetch (undici). */
  fetch?: typeof globalThis.fetch;
}

export interface DownloadOptions {
  algorithms: readonly DigestAlgorithm[];
  maxBytes: number;
  onBytes?: (n: number) => void;
}

export interface FetchedBytes {
  body: Buffer;
  contentType: string;
  /** The URL the body came from, in upstream terms (redirects followed, rewriting undone where it applied). */
  url: string;
}

const MAX_REDIRECTS = 10;
/** Large writes: fewer syscalls and event-loop turns per blob. */
const WRITE_HWM = 1 << 20;
/** fs errors are local trouble, not a flaky upstream: never retried. */
const LOCAL_ERRNO = new Set(['ENOSPC', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EISDIR', 'ENOTDIR', 'EDQUOT']);

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/**
 * Every upstream request of a sync goes through here: a global p-queue plus one p-queue per host (a slot is
 * taken on the host queue first, then on the global one, always in that order, so the two cannot deadlock),
 * bounded retries with exponential backoff + jitter, `Retry-After`, an idle timeout and size caps. Retry sleeps
 * happen outside both queues so a backing-off request does not hold a slot.
 */
export class HttpClient {
  private readonly global: PQueue;
  private readonly perHost = new Map<string, PQueue>();
  private readonly opts: Required<Omit<HttpClientOptions, 'rewriteHosts' | 'fetch'>>;
  private readonly rewriter: UrlRewriter;
  private readonly fetchImpl: typeof globalThis.fetch;
  readonly stats = { requests: 0, retries: 0 };

  constructor(options: HttpClientOptions = {}) {
    this.opts = {
      concurrency: options.concurrency ?? 8,
      perHostConcurrency: options.perHostConcurrency ?? 4,
      retries: options.retries ?? 4,
      retryBaseDelayMs: options.retryBaseDelayMs ?? 500,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 30_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 120_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    };
    for (const k of ['concurrency', 'perHostConcurrency'] as const) {
      if (!Number.isInteger(this.opts[k]) || this.opts[k] < 1)
        throw new SyncError('SYNC_OPTIONS_INVALID', `${k} must be a positive integer`);
    }
    if (!Number.isInteger(this.opts.retries) || this.opts.retries < 0 || this.opts.retries > 20) {
      throw new SyncError('SYNC_OPTIONS_INVALID', 'retries must be an integer from 0 to 20');
    }
    this.global = new PQueue({ concurrency: this.opts.concurrency });
    this.rewriter = new UrlRewriter(options.rewriteHosts);
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  rewrite(url: string): string {
    return this.rewriter.rewrite(url);
  }

  /**
   * Streams `url` into `dest` (a path, or an open file written from offset 0) while hashing every requested digest
   * per chunk: memory stays constant whatever the size. A retry starts the file over.
   */
  download(url: string, dest: string | FileHandle, options: DownloadOptions): Promise<DigestResult> {
    return this.withRetries(url, 'application/octet-stream, */*;q=0.5', true, async (res, touch) => {
      this.checkLength(url, res, options.maxBytes);
      const hasher = new HashingTransform(options.algorithms);
      if (typeof dest !== 'string') await dest.truncate(0);
      await pipeline(
        Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>),
        new LimitTransform(url, options.maxBytes, (n) => {
          touch();
          options.onBytes?.(n);
        }),
        hasher,
        typeof dest === 'string'
          ? createWriteStream(dest, { highWaterMark: WRITE_HWM })
          : new FileSink(dest, WRITE_HWM),
      );
      return hasher.result!;
    }).then((r) => r.value);
  }

  /** Small documents (packuments, index pages, metadata): buffered, capped at `maxBytes`. */
  async getBytes(url: string, accept: string, maxBytes: number): Promise<FetchedBytes> {
    const r = await this.withRetries(url, accept, false, async (res, touch) => {
      this.checkLength(url, res, maxBytes);
      const chunks: Buffer[] = [];
      await pipeline(
        Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>),
        new LimitTransform(url, maxBytes, touch),
        async (src: AsyncIterable<Buffer>) => {
          for await (const c of src) chunks.push(c);
        },
      );
      return { body: Buffer.concat(chunks), contentType: res.headers.get('content-type') ?? '' };
    });
    return { ...r.value, url: r.url };
  }

  private checkLength(url: string, res: Response, maxBytes: number): void {
    const len = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(len) && len > maxBytes) {
      throw new SyncError('SYNC_SIZE_LIMIT', `${url}: Content-Length ${len} exceeds the ${maxBytes}-byte limit`, {
        details: { url, limit: maxBytes, size: len },
      });
    }
  }

  private hostQueue(host: string): PQueue {
    let q = this.perHost.get(host);
    if (!q) {
      q = new PQueue({ concurrency: this.opts.perHostConcurrency });
      this.perHost.set(host, q);
    }
    return q;
  }

  private async withRetries<T>(
    url: string,
    accept: string,
    identity: boolean,
    body: (res: Response, touch: () => void) => Promise<T>,
  ): Promise<{ value: T; url: string }> {
    const target = this.rewrite(url);
    let host: string;
    try {
      host = new URL(target).host;
    } catch (cause) {
      throw new SyncError('SYNC_FETCH_FAILED', `invalid URL '${url}'`, { cause });
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.hostQueue(host).add(() =>
          this.global.add(() => this.once(url, target, accept, identity, body)),
        );
      } catch (err) {
        const retryAfter = err instanceof HttpStatusError ? err.retryAfterMs : undefined;
        const retryable =
          err instanceof HttpStatusError
            ? isRetryableStatus(err.status)
            : !(err instanceof SyncError) && !LOCAL_ERRNO.has((err as { code?: string }).code ?? '');
        if (!retryable || attempt >= this.opts.retries) throw this.finalError(url, err, attempt + 1);
        this.stats.retries++;
        await sleep(this.backoff(attempt, retryAfter));
      }
    }
  }

  private backoff(attempt: number, retryAfterMs: number | undefined): number {
    const step = Math.min(this.opts.retryMaxDelayMs, this.opts.retryBaseDelayMs * 2 ** attempt);
    // "Equal jitter": half fixed, half random, so concurrent retries spread out but never retry instantly.
    const jittered = step / 2 + Math.random() * (step / 2);
    return retryAfterMs === undefined
      ? jittered
      : Math.max(jittered, Math.min(retryAfterMs, this.opts.maxRetryAfterMs));
  }

  private finalError(url: string, err: unknown, attempts: number): Error {
    if (err instanceof SyncError) return err;
    if (err instanceof HttpStatusError) {
      return new SyncError(
        'SYNC_FETCH_FAILED',
        `${url}: HTTP ${err.status}${attempts > 1 ? ` after ${attempts} attempts` : ''}`,
        {
          details: { url, status: err.status, attempts },
        },
      );
    }
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
    return new SyncError('SYNC_FETCH_FAILED', `${url}: ${why}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}`, {
      cause: err,
      details: { url, attempts },
    });
  }

  /** One attempt: follows redirects by hand (re-applying host rewriting, http(s) only), then hands the body over. */
  private async once<T>(
    logical: string,
    target: string,
    accept: string,
    identity: boolean,
    body: (res: Response, touch: () => void) => Promise<T>,
  ): Promise<{ value: T; url: string }> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () => controller.abort(new Error(`no data for ${this.opts.idleTimeoutMs} ms`)),
        this.opts.idleTimeoutMs,
      );
      timer.unref();
    };
    touch();
    try {
      let current = target;
      let upstream = logical;
      for (let hop = 0; ; hop++) {
        this.stats.requests++;
        const res = await this.fetchImpl(current, {
          redirect: 'manual',
          signal: controller.signal,
          headers: {
            accept,
            'user-agent': `${PRODUCER.name}/${PRODUCER.version}`,
            // A .tgz served with Content-Encoding: gzip would otherwise be inflated and fail its hash.
            ...(identity ? { 'accept-encoding': 'identity' } : {}),
          },
        });
        if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
          await res.body?.cancel();
          if (hop >= MAX_REDIRECTS)
            throw new SyncError('SYNC_FETCH_FAILED', `${logical}: more than ${MAX_REDIRECTS} redirects`);
          const loc = res.headers.get('location')!;
          let next: URL;
          try {
            next = new URL(loc, upstream);
          } catch (cause) {
            throw new SyncError('SYNC_FETCH_FAILED', `${logical}: bad redirect Location '${loc}'`, { cause });
          }
          if (next.protocol !== 'http:' && next.protocol !== 'https:') {
            throw new SyncError('SYNC_FETCH_FAILED', `${logical}: redirect to a non-http(s) URL '${next.href}'`);
          }
          upstream = next.href;
          current = this.rewrite(next.href);
          continue;
        }
        if (!res.ok) {
          await res.body?.cancel();
          if (isRetryableStatus(res.status))
            throw new HttpStatusError(res.status, parseRetryAfter(res.headers.get('retry-after')));
          throw new SyncError('SYNC_FETCH_FAILED', `${logical}: HTTP ${res.status}`, {
            details: { url: logical, status: res.status },
          });
        }
        if (!res.body) throw new SyncError('SYNC_FETCH_FAILED', `${logical}: empty response body`);
        return { value: await body(res, touch), url: upstream };
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Counts bytes, fails past the cap (a hostile upstream can stream forever), reports progress. */
class LimitTransform extends Transform {
  private total = 0;
  constructor(
    private readonly url: string,
    private readonly max: number,
    private readonly onChunk: (n: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.total += chunk.length;
    if (this.total > this.max) {
      cb(
        new SyncError('SYNC_SIZE_LIMIT', `${this.url}: body exceeds the ${this.max}-byte limit`, {
          details: { url: this.url, limit: this.max },
        }),
      );
      return;
    }
    this.onChunk(chunk.length);
    cb(null, chunk);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
