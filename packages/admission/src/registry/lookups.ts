/**
 * Lookups of mutable registry state (tag → digest) shared by the requests that need them, under one rule:
 *
 *   a request only ever receives the answer of a lookup that was SENT after the request arrived.
 *
 * So an answer is never older than the request it admits: a tag moved before a request arrived can never be seen
 * by that request in its old place (the tag→digest race of caching webhooks). Joining a lookup already in flight
 * when the request arrived would break this (the registry may have answered before the move), so such a request
 * instead waits for the NEXT lookup of that key, which is sent as soon as the current one settles and is shared
 * by every request that arrived in between. Per key at most one lookup is in flight and one queued: under load
 * the registry sees a bounded rate of lookups, and a request waits at most for the rest of one lookup plus one.
 *
 * Arrival and send order come from one counter (tickets), not clocks, so the rule holds exactly. A shared lookup
 * is aborted only when every request waiting for it has given up; its errors reach every waiter (each denies).
 *
 * With an operator-chosen TTL (`admission serve --tag-ttl`, default 0 = the rule above only) the rule widens to:
 * a request receives the answer of a lookup sent after it arrived OR less than TTL before it arrived. Answers
 * (digests only: never errors, never "tag absent") are remembered for that long, bounded in number, and forgotten
 * on clear() (policy or trusted-root reload); lookups sent before a clear() are never reused through the TTL.
 * A request served from a remembered answer older than half the TTL also sends a refresh (in the background, at most
 * one per key in flight): under steady traffic the answer is renewed before it expires, so no request waits for the
 * registry, and each answer a request receives still comes from a lookup sent less than TTL before it arrived.
 *
 * hint(key) is the last value any lookup of the key answered, however old: never an answer to a request, only a
 * guess of what the fresh lookup will say (the admission starts verifying that digest while the lookup runs, and
 * uses that verification only when the fresh answer is the same digest).
 */
interface Flight<V> {
  /** Ticket taken when the lookup was sent; undefined while queued behind the current one. */
  sent?: number;
  /** Clock time when it was sent (only read with a TTL). */
  sentAt?: number;
  promise: Promise<V>;
  resolve: (v: V) => void;
  reject: (e: unknown) => void;
  controller: AbortController;
  waiters: number;
  next?: Flight<V>;
  /** What a queued flight sends when its turn comes (any waiter's lookup of the key: they are equivalent). */
  lookup?: Lookup<V>;
}

export type Lookup<V> = (signal: AbortSignal) => Promise<V>;

/** When a request arrived: its place in send order, and (with a TTL) its clock time. */
export interface Ticket {
  readonly seq: number;
  readonly at: number;
}

export interface FreshLookupsOptions {
  /** How old (ms, counted from when the lookup was sent) an answer a request receives may be; 0: none. */
  ttlMs?: number;
  /** Most remembered answers (default 10 000); the least recently used go first. */
  maxEntries?: number;
  /** The clock (tests inject one; default Date.now). */
  now?: () => number;
  /** A background refresh failed with no request waiting for it (requests report their own failures). */
  onRefreshError?: (key: string, err: unknown) => void;
}

interface Answer<V> {
  value: V;
  seq: number;
  sentAt: number;
}

export class FreshLookups<V> {
  private clock = 0;
  private readonly current = new Map<string, Flight<V>>();
  private readonly answers = new Map<string, Answer<V>>();
  /** The last value per key (hint()), bounded like answers; forgotten on errors and on clear(). */
  private readonly hints = new Map<string, V>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onRefreshError: ((key: string, err: unknown) => void) | undefined;
  /** Lookups sent at or before this ticket are never reused through the TTL (clear()). */
  private clearedSeq = 0;
  /** Lookups actually sent (tests and metrics). */
  sent = 0;

  constructor(options: FreshLookupsOptions = {}) {
    this.ttlMs = Math.max(0, options.ttlMs ?? 0);
    this.maxEntries = Math.max(1, options.maxEntries ?? 10_000);
    this.now = options.now ?? Date.now;
    this.onRefreshError = options.onRefreshError;
  }

  /** Remembered answers (tests: bounded). */
  get size(): number {
    return this.answers.size;
  }

  /** The ticket of a request arriving now: it may share lookups sent after this call (or within the TTL before). */
  arrive(): Ticket {
    return { seq: ++this.clock, at: this.ttlMs > 0 ? this.now() : 0 };
  }

  /** Forgets every remembered answer: requests arriving from now on see only lookups sent from now on. */
  clear(): void {
    this.answers.clear();
    this.hints.clear();
    this.clearedSeq = this.clock;
  }

  /**
   * Whether a request with `ticket` would be answered from a remembered answer now, without a lookup (TTL only):
   * then guessing ahead (hint) is pointless work.
   */
  answerable(key: string, ticket: Ticket): boolean {
    if (this.ttlMs <= 0) return false;
    const a = this.answers.get(key);
    return a !== undefined && this.usable(a.seq, a.sentAt, ticket);
  }

  /** The last value a lookup of `key` answered (any age): a guess, never an answer for a request. */
  hint(key: string): V | undefined {
    return this.hints.get(key);
  }

  /** The answer to `key` from a lookup sent after `ticket` was taken, or within the TTL before (shared, or sent now). */
  run(key: string, ticket: Ticket, lookup: Lookup<V>, signal: AbortSignal): Promise<V> {
    signal.throwIfAborted();
    const known = this.ttlMs > 0 ? this.remembered(key, ticket) : undefined;
    if (known !== undefined) {
      this.refreshAhead(key, known, lookup);
      return Promise.resolve(known.value);
    }
    const cur = this.current.get(key);
    let flight: Flight<V>;
    if (cur === undefined) flight = this.send(key, newFlight<V>(), lookup);
    else if (this.usable(cur.sent!, cur.sentAt, ticket) && !cur.controller.signal.aborted) flight = cur;
    else {
      // In flight since before this request arrived: wait for the next lookup (sent after it settles).
      if (cur.next === undefined || cur.next.controller.signal.aborted) cur.next = { ...newFlight<V>(), lookup };
      flight = cur.next;
    }
    return wait(flight, signal);
  }

  /**
   * Past half the TTL, renews a remembered answer in the background (nobody waits for it; its answer is remembered,
   * its failure forgets the old one, as any lookup's).
   */
  private refreshAhead(key: string, answer: Answer<V>, lookup: Lookup<V>): void {
    if (this.now() - answer.sentAt < this.ttlMs / 2 || this.current.has(key)) return;
    const flight = this.send(key, newFlight<V>(), lookup);
    flight.promise.catch((err: unknown) => {
      if (flight.waiters === 0) this.onRefreshError?.(key, err);
    });
  }

  /** Sent after the request arrived, or (TTL) less than TTL before it and after the last clear(). */
  private usable(seq: number, sentAt: number | undefined, ticket: Ticket): boolean {
    if (seq > ticket.seq) return true;
    return this.ttlMs > 0 && seq > this.clearedSeq && ticket.at - sentAt! < this.ttlMs;
  }

  private remembered(key: string, ticket: Ticket): Answer<V> | undefined {
    const a = this.answers.get(key);
    if (a === undefined) return undefined;
    if (!this.usable(a.seq, a.sentAt, ticket)) {
      // Too old for this request; a newer request could not use it either once the clock passed it.
      if (this.now() - a.sentAt >= this.ttlMs) this.answers.delete(key);
      return undefined;
    }
    // Least recently used goes first when the bound is reached.
    this.answers.delete(key);
    this.answers.set(key, a);
    return a;
  }

  private remember(key: string, flight: Flight<V>, value: V): void {
    if (this.ttlMs <= 0 || value === undefined || flight.sent! <= this.clearedSeq) return;
    this.answers.delete(key);
    this.answers.set(key, { value, seq: flight.sent!, sentAt: flight.sentAt! });
    if (this.answers.size > this.maxEntries) this.answers.delete(this.answers.keys().next().value!);
  }

  private hinted(key: string, value: V): void {
    this.hints.delete(key);
    if (value === undefined) return;
    this.hints.set(key, value);
    if (this.hints.size > this.maxEntries) this.hints.delete(this.hints.keys().next().value!);
  }

  private send(key: string, flight: Flight<V>, lookup: Lookup<V>): Flight<V> {
    flight.sent = ++this.clock;
    if (this.ttlMs > 0) flight.sentAt = this.now();
    this.sent++;
    this.current.set(key, flight);
    const settled = (): void => this.settled(key, flight);
    const resolved = (v: V): void => {
      this.remember(key, flight, v);
      this.hinted(key, v);
      flight.resolve(v);
    };
    const failed = (err: unknown): void => {
      // Errors are never remembered, and the answer they replace is not kept either.
      this.answers.delete(key);
      this.hints.delete(key);
      flight.reject(err);
    };
    Promise.resolve()
      .then(() => lookup(flight.controller.signal))
      .then(resolved, failed)
      .then(settled, settled);
    return flight;
  }

  private settled(key: string, flight: Flight<V>): void {
    if (this.current.get(key) !== flight) return;
    const next = flight.next;
    this.current.delete(key);
    if (next === undefined) return;
    if (next.waiters === 0 || next.controller.signal.aborted) {
      next.reject(new Error('abandoned: every request waiting for this lookup gave up'));
      return;
    }
    this.send(key, next, next.lookup!);
  }
}

function newFlight<V>(): Flight<V> {
  let resolve!: (v: V) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A lookup nobody waits for any more must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject, controller: new AbortController(), waiters: 0 };
}

/** Waits for `flight` until `signal` aborts; the last waiter leaving aborts the shared lookup. */
function wait<V>(flight: Flight<V>, signal: AbortSignal): Promise<V> {
  flight.waiters++;
  return new Promise<V>((resolve, reject) => {
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      signal.removeEventListener('abort', onAbort);
      if (--flight.waiters === 0 && signal.aborted) flight.controller.abort(signal.reason);
    };
    const onAbort = (): void => {
      leave();
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
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
