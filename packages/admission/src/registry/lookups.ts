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
 */
interface Flight<V> {
  /** Ticket taken when the lookup was sent; undefined while queued behind the current one. */
  sent?: number;
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

export class FreshLookups<V> {
  private clock = 0;
  private readonly current = new Map<string, Flight<V>>();
  /** Lookups actually sent (tests and metrics). */
  sent = 0;

  /** The ticket of a request arriving now: it may share lookups sent after this call, and only those. */
  arrive(): number {
    return ++this.clock;
  }

  /** The answer to `key` from a lookup sent after `ticket` was taken (shared, or sent now). */
  run(key: string, ticket: number, lookup: Lookup<V>, signal: AbortSignal): Promise<V> {
    signal.throwIfAborted();
    const cur = this.current.get(key);
    let flight: Flight<V>;
    if (cur === undefined) flight = this.send(key, newFlight<V>(), lookup);
    else if (cur.sent! > ticket && !cur.controller.signal.aborted) flight = cur;
    else {
      // In flight since before this request arrived: wait for the next lookup (sent after it settles).
      if (cur.next === undefined || cur.next.controller.signal.aborted) cur.next = { ...newFlight<V>(), lookup };
      flight = cur.next;
    }
    return wait(flight, signal);
  }

  private send(key: string, flight: Flight<V>, lookup: Lookup<V>): Flight<V> {
    flight.sent = ++this.clock;
    this.sent++;
    this.current.set(key, flight);
    const settled = (): void => this.settled(key, flight);
    Promise.resolve()
      .then(() => lookup(flight.controller.signal))
      .then(flight.resolve, flight.reject)
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
