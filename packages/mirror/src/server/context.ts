import type { MirrorStore } from '@airlock/cas';
import type { IncomingMessage } from 'node:http';

/** What every route needs: the store and the absolute base URL clients must be sent back to. */
export interface MirrorContext {
  store: MirrorStore;
  /** Base URL without trailing slash, e.g. `https://mirror.internal` or `http://127.0.0.1:4873/prefix`. */
  publicUrl(req: IncomingMessage): string;
  /** Path part of the public URL (for redirects), '' at the root. */
  publicPath(req: IncomingMessage): string;
  /** The operator set the public URL (`--public-url`); else absolute links follow the request's Host. */
  publicUrlConfigured: boolean;
  cache: ResponseCache;
  /** Positive results of file/blob lookups (see LookupCache). */
  files: LookupCache<{ sha256: string; size: number }>;
  /** Request target → the blob it resolved to (see BlobRoute): repeated GETs skip parsing, routing and lookups. */
  routes: LookupCache<BlobRoute>;
}

/**
 * A request target that resolved to a blob. Cached on the same ground as LookupCache (publication is monotonic:
 * a path that named a blob names it at every later head); the blob is still read through the store's
 * verify-on-read on every request, so a cached route never serves bytes that fail verification.
 */
export interface BlobRoute {
  blob: { sha256: string; size: number };
  contentType?: string;
  /** The whole-blob 200's headers, kept on the route by the hot path once built. */
  headers?: Readonly<Record<string, string>>;
}

/**
 * Remembers positive lookups (path → blob) without asking SQLite again. Sound because publication is monotonic:
 * an entry or blob visible at some head stays visible, with the same blob, at every later head (entries are
 * immutable and never removed). Misses are never cached, so a new snapshot's files appear immediately.
 */
export class LookupCache<V> {
  private readonly entries = new Map<string, V>();

  constructor(private readonly maxEntries = 100_000) {}

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(key: string, find: () => V | undefined): V | undefined {
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const found = find();
    if (found !== undefined) this.remember(key, found);
    return found;
  }

  /** Records a positive result (the oldest entry goes when full). */
  remember(key: string, value: V): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(key)) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }
}

interface Cached {
  body: Buffer;
  etag: string;
}

/**
 * Rendered metadata documents (packuments, simple pages) keyed by head sequence: a new snapshot changes the head,
 * which drops everything rendered for the old one.
 */
export class ResponseCache {
  private sequence = -1;
  private bytes = 0;
  private readonly entries = new Map<string, Cached>();

  /** Bounded by count and by total body bytes (default 5000 documents, 64 MiB). */
  constructor(
    private readonly maxEntries = 5000,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  get(sequence: number, key: string): Cached | undefined {
    if (sequence !== this.sequence) {
      this.entries.clear();
      this.bytes = 0;
      this.sequence = sequence;
      return undefined;
    }
    return this.entries.get(key);
  }

  set(sequence: number, key: string, value: Cached): void {
    if (sequence !== this.sequence || value.body.length > this.maxBytes) return;
    const previous = this.entries.get(key);
    if (previous) {
      this.entries.delete(key);
      this.bytes -= previous.body.length;
    }
    this.entries.set(key, value);
    this.bytes += value.body.length;
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.body.length;
    }
  }
}
