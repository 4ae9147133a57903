import { sharedSignal } from '../abort.js';

/**
 * Verification results keyed by (image digest, image-policy digest, trust digest): only successes are stored, for
 * `ttlMs`, at most `maxEntries` (least recently used evicted). Identical verifications in flight are coalesced:
 * the first runs, the rest wait for it, so N concurrent admissions of one image cost one registry round trip. The
 * shared run is aborted only when every waiter has given up (one request's deadline does not fail the others).
 */
export interface CacheOptions {
  ttlMs: number;
  maxEntries: number;
  /** Clock (tests pass a fake one). */
  now?: () => number;
}

export interface CacheResult<V> {
  value: V;
  /** true when served from the cache (not from a verification, shared or not). */
  hit: boolean;
}

interface InFlight<V> {
  promise: Promise<V>;
  controller: AbortController;
  waiters: number;
}

export class VerificationCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly inflight = new Map<string, InFlight<V>>();
  private readonly now: () => number;
  private generation = 0;

  constructor(private readonly options: CacheOptions) {
    this.now = options.now ?? Date.now;
  }

  static key(imageDigest: string, policyDigest: string, trustDigest: string): string {
    return `${imageDigest} ${policyDigest} ${trustDigest}`;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops every entry; verifications in flight finish but are not stored. */
  clear(): void {
    this.entries.clear();
    this.inflight.clear();
    this.generation++;
  }

  async run(
    key: string,
    verify: (signal: AbortSignal) => Promise<V>,
    cacheable: (value: V) => boolean,
    signal: AbortSignal,
  ): Promise<CacheResult<V>> {
    signal.throwIfAborted();
    const hit = this.lookup(key);
    if (hit !== undefined) return { value: hit, hit: true };
    let flight = this.inflight.get(key);
    if (!flight || flight.controller.signal.aborted) flight = this.start(key, verify, cacheable);
    return { value: await this.wait(flight, signal), hit: false };
  }

  private lookup(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Re-insert: Map order is the LRU order.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  private start(
    key: string,
    verify: (signal: AbortSignal) => Promise<V>,
    cacheable: (value: V) => boolean,
  ): InFlight<V> {
    const controller = new AbortController();
    sharedSignal(controller.signal);
    const generation = this.generation;
    const promise = verify(controller.signal).then((value) => {
      if (cacheable(value) && generation === this.generation && !controller.signal.aborted) this.store(key, value);
      return value;
    });
    const flight: InFlight<V> = { promise, controller, waiters: 0 };
    this.inflight.set(key, flight);
    const done = (): void => {
      if (this.inflight.get(key) === flight) this.inflight.delete(key);
    };
    promise.then(done, done);
    return flight;
  }

  private store(key: string, value: V): void {
    if (this.options.maxEntries <= 0 || this.options.ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expires: this.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  private wait(flight: InFlight<V>, signal: AbortSignal): Promise<V> {
    flight.waiters++;
    return new Promise<V>((resolve, reject) => {
      const onAbort = (): void => {
        leave();
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      let left = false;
      const leave = (): void => {
        if (left) return;
        left = true;
        signal.removeEventListener('abort', onAbort);
        if (--flight.waiters === 0 && signal.aborted) flight.controller.abort(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (v) => {
          leave();
          resolve(v);
        },
        (err: unknown) => {
          leave();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }
}
