/**
 * FreshLookups (tag → digest lookups shared between requests): a request only receives the answer of a lookup sent
 * after it arrived. Requests that arrive while a lookup is in flight share the NEXT one (sent when the current one
 * settles), so the registry sees one lookup per key at a time, and an answer never predates its request. Lookups
 * are deferreds the test settles by hand (no timing).
 */
import { describe, expect, it } from 'vitest';
import { FreshLookups } from '../src/registry/lookups.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const never = new AbortController().signal;
const flush = () => new Promise<void>((r) => setImmediate(r));

/** A "registry" whose tag the test moves; each lookup is held until the test answers it with the tag's value then. */
function registry(initial: string) {
  let tag = initial;
  const sent: { answer: () => void; signal: AbortSignal }[] = [];
  const lookup = (signal: AbortSignal) => {
    // The registry reads the tag when the lookup reaches it (now), and the answer travels back later.
    const seen = tag;
    const d = deferred<string>();
    sent.push({ answer: () => d.resolve(seen), signal });
    return d.promise;
  };
  return { lookup, sent, move: (to: string) => (tag = to) };
}

describe('FreshLookups', () => {
  it('a request arriving while a lookup is in flight never gets that lookup’s (older) answer', async () => {
    const lookups = new FreshLookups<string>();
    const reg = registry('sha256:old');
    const a = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    expect(reg.sent).toHaveLength(1); // A's lookup reached the registry and read "old"
    reg.move('sha256:new'); // the tag moves
    const b = lookups.run('app:v1', lookups.arrive(), reg.lookup, never); // B arrives after the move
    await flush();
    expect(reg.sent).toHaveLength(1); // B waits for the next lookup; it does not send a parallel one
    reg.sent[0]!.answer();
    expect(await a).toBe('sha256:old'); // A arrived before the move: the old answer is current for A
    await flush();
    expect(reg.sent).toHaveLength(2); // the next lookup was sent once A's settled
    reg.sent[1]!.answer();
    expect(await b).toBe('sha256:new');
  });

  it('every request that arrived during a lookup shares the one next lookup (3 requests, 2 lookups)', async () => {
    const lookups = new FreshLookups<string>();
    const reg = registry('sha256:1');
    const first = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    const later = [1, 2, 3].map(() => lookups.run('app:v1', lookups.arrive(), reg.lookup, never));
    reg.sent[0]!.answer();
    await first;
    await flush();
    reg.move('sha256:2');
    reg.sent[1]!.answer();
    expect(await Promise.all(later)).toEqual(['sha256:1', 'sha256:1', 'sha256:1']);
    expect(lookups.sent).toBe(2);
  });

  it('a request joins a lookup sent after it arrived (its ticket is older than the lookup)', async () => {
    const lookups = new FreshLookups<string>();
    const reg = registry('sha256:1');
    const early = lookups.arrive(); // arrived, not yet asking (reading its body, say)
    const b = lookups.run('app:v1', lookups.arrive(), reg.lookup, never); // sends the lookup
    const a = lookups.run('app:v1', early, reg.lookup, never);
    await flush();
    reg.sent[0]!.answer();
    expect(await Promise.all([a, b])).toEqual(['sha256:1', 'sha256:1']);
    expect(lookups.sent).toBe(1);
  });

  it('keys are independent; a failed lookup reaches its waiters and the next one is sent afresh', async () => {
    const lookups = new FreshLookups<string>();
    const d1 = deferred<string>();
    let calls = 0;
    const failing = () => (calls++, d1.promise);
    const a = lookups.run('app:v1', lookups.arrive(), failing, never);
    const other = lookups.run('db:v1', lookups.arrive(), async () => 'sha256:db', never);
    expect(await other).toBe('sha256:db');
    await flush();
    const b = lookups.run('app:v1', lookups.arrive(), async () => 'sha256:after', never);
    d1.reject(new Error('registry down'));
    await expect(a).rejects.toThrow('registry down');
    expect(await b).toBe('sha256:after'); // B never receives A's failure either: it was not B's lookup
    expect(calls).toBe(1);
  });

  it('the shared lookup is aborted only when every waiter has given up; a queued one nobody waits for is not sent', async () => {
    const lookups = new FreshLookups<string>();
    const reg = registry('sha256:1');
    const ac1 = new AbortController();
    const ac2 = new AbortController();
    const t = lookups.arrive();
    const p1 = lookups.run('app:v1', t, reg.lookup, ac1.signal);
    const p2 = lookups.run('app:v1', t, reg.lookup, ac2.signal);
    await flush();
    const ac3 = new AbortController();
    const p3 = lookups.run('app:v1', lookups.arrive(), reg.lookup, ac3.signal); // queued behind
    ac1.abort(new Error('deadline 1'));
    await expect(p1).rejects.toThrow('deadline 1');
    expect(reg.sent[0]!.signal.aborted).toBe(false); // request 2 still waits for it
    ac2.abort(new Error('deadline 2'));
    await expect(p2).rejects.toThrow('deadline 2');
    expect(reg.sent[0]!.signal.aborted).toBe(true);
    ac3.abort(new Error('deadline 3'));
    await expect(p3).rejects.toThrow('deadline 3');
    reg.sent[0]!.answer();
    await flush();
    expect(lookups.sent).toBe(1);
    // A new request afterwards sends a fresh lookup.
    const p4 = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    reg.sent[1]!.answer();
    expect(await p4).toBe('sha256:1');
  });
});
