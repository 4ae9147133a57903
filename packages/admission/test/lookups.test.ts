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

/**
 * With an operator TTL (`admission serve --tag-ttl`) a request may also receive an answer from a lookup sent less
 * than TTL before it arrived. The clock is injected: the test moves time, nothing waits for it.
 */
describe('FreshLookups with a TTL', () => {
  function withClock(options: { ttlMs: number; maxEntries?: number }) {
    const clock = { t: 1_000_000 };
    const lookups = new FreshLookups<string | undefined>({ ...options, now: () => clock.t });
    return { lookups, clock };
  }
  const answered = async (lookups: FreshLookups<string | undefined>, key: string, reg: ReturnType<typeof registry>) => {
    const p = lookups.run(key, lookups.arrive(), reg.lookup, never);
    await flush();
    reg.sent.at(-1)?.answer();
    return p;
  };

  it('a digest is reused until the TTL has passed since its lookup was sent; then the moved tag is seen', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:old');
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:old');
    reg.move('sha256:new');
    clock.t += 2_499; // under half the TTL: reused, and no refresh yet
    expect(await lookups.run('app:v1', lookups.arrive(), reg.lookup, never)).toBe('sha256:old');
    expect(lookups.sent).toBe(1);
    clock.t += 2_501; // 5 s after the lookup was sent: too old
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:new');
    expect(lookups.sent).toBe(2);
  });

  it('past half the TTL a reused answer is renewed in the background, so steady traffic never waits for the registry', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:1');
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1');
    reg.move('sha256:2');
    clock.t += 3_000;
    // Answered at once from the remembered digest (sent 3 s ago), and one refresh goes out.
    expect(await lookups.run('app:v1', lookups.arrive(), reg.lookup, never)).toBe('sha256:1');
    clock.t += 1;
    expect(await lookups.run('app:v1', lookups.arrive(), reg.lookup, never)).toBe('sha256:1');
    await flush();
    expect(reg.sent).toHaveLength(2); // one refresh in flight, not one per request
    reg.sent[1]!.answer(); // it read the moved tag when it reached the registry
    await flush();
    clock.t += 2_400; // 5.4 s after the first lookup, 2.4 s after the refresh was sent
    const later = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    expect(await Promise.race([later, flush().then(() => 'still waiting')])).toBe('sha256:2');
    expect(reg.sent).toHaveLength(2); // no request waited for a lookup of its own
  });

  it('answerable: only while a remembered answer is usable by that request', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:1');
    expect(lookups.answerable('app:v1', lookups.arrive())).toBe(false);
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1');
    expect(lookups.answerable('app:v1', lookups.arrive())).toBe(true);
    expect(lookups.answerable('app:v2', lookups.arrive())).toBe(false);
    clock.t += 5_000;
    expect(lookups.answerable('app:v1', lookups.arrive())).toBe(false);
    const noTtl = new FreshLookups<string>({ ttlMs: 0, now: () => 0 });
    expect(await answered(noTtl as unknown as FreshLookups<string | undefined>, 'app:v1', reg)).toBe('sha256:1');
    expect(noTtl.answerable('app:v1', noTtl.arrive())).toBe(false);
  });

  it('a failed background refresh forgets the answer: the next request looks the tag up itself', async () => {
    const clock = { t: 1_000_000 };
    const failures: string[] = [];
    const lookups = new FreshLookups<string | undefined>({
      ttlMs: 5_000,
      now: () => clock.t,
      onRefreshError: (key) => failures.push(key),
    });
    const reg = registry('sha256:1');
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1');
    clock.t += 3_000;
    const down = () => Promise.reject(new Error('registry down'));
    expect(await lookups.run('app:v1', lookups.arrive(), down, never)).toBe('sha256:1'); // still within the TTL
    await flush();
    expect(lookups.size).toBe(0); // the refresh failed: the old answer is gone
    expect(failures).toEqual(['app:v1']); // and is reported (nobody else waited for it)
    clock.t += 1;
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1');
    expect(lookups.sent).toBe(3);
  });

  it('age counts from when the lookup was SENT, not when it answered', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:old');
    const a = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    clock.t += 3_000; // a slow registry answers 3 s later
    reg.sent[0]!.answer();
    expect(await a).toBe('sha256:old');
    clock.t += 2_000; // 5 s after sending, 2 s after answering
    reg.move('sha256:new');
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:new');
  });

  it('a request arriving within the TTL joins the lookup in flight instead of queueing behind it', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:1');
    const a = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    clock.t += 10;
    const b = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    reg.sent[0]!.answer();
    expect(await Promise.all([a, b])).toEqual(['sha256:1', 'sha256:1']);
    expect(lookups.sent).toBe(1);
  });

  it('errors are never remembered: the next request sends a lookup of its own', async () => {
    const { lookups } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:1');
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1');
    lookups.clear();
    await expect(
      lookups.run('app:v1', lookups.arrive(), () => Promise.reject(new Error('registry down')), never),
    ).rejects.toThrow('registry down');
    expect(lookups.size).toBe(0);
    expect(await answered(lookups, 'app:v1', reg)).toBe('sha256:1'); // same instant: not the failure
    expect(lookups.sent).toBe(3);
  });

  it('a failed refresh also forgets the answer it was replacing (never an old digest after a failure)', async () => {
    const { lookups, clock } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:1');
    await answered(lookups, 'app:v1', reg);
    clock.t += 5_000;
    await expect(
      lookups.run('app:v1', lookups.arrive(), () => Promise.reject(new Error('registry down')), never),
    ).rejects.toThrow('registry down');
    expect(lookups.size).toBe(0);
  });

  it('an absent tag is not remembered (a push right after is seen by the next request)', async () => {
    const { lookups } = withClock({ ttlMs: 5_000 });
    expect(await lookups.run('app:v1', lookups.arrive(), async () => undefined, never)).toBeUndefined();
    expect(lookups.size).toBe(0);
    expect(await lookups.run('app:v1', lookups.arrive(), async () => 'sha256:pushed', never)).toBe('sha256:pushed');
    expect(lookups.sent).toBe(2);
  });

  it('clear() (policy or root reload) forgets every answer, and a lookup in flight then is neither joined nor kept', async () => {
    const { lookups } = withClock({ ttlMs: 5_000 });
    const reg = registry('sha256:old');
    await answered(lookups, 'app:v1', reg);
    lookups.clear();
    expect(lookups.size).toBe(0);
    const a = lookups.run('db:v1', lookups.arrive(), reg.lookup, never); // in flight across the next clear()
    await flush();
    lookups.clear();
    reg.move('sha256:new');
    const b = lookups.run('db:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    expect(reg.sent).toHaveLength(2); // b queued behind a: it did not join a lookup sent before the clear
    reg.sent[1]!.answer();
    expect(await a).toBe('sha256:old');
    await flush();
    expect(lookups.size).toBe(0); // sent before the clear: not remembered
    reg.sent[2]!.answer();
    expect(await b).toBe('sha256:new');
    expect(await lookups.run('app:v1', lookups.arrive(), async () => 'sha256:fresh', never)).toBe('sha256:fresh');
  });

  it('remembered answers are bounded; the least recently used is dropped first', async () => {
    const { lookups } = withClock({ ttlMs: 5_000, maxEntries: 2 });
    const reg = registry('sha256:1');
    await answered(lookups, 'a:1', reg);
    await answered(lookups, 'b:1', reg);
    await lookups.run('a:1', lookups.arrive(), reg.lookup, never); // a used again: b is now the oldest
    await answered(lookups, 'c:1', reg);
    expect(lookups.size).toBe(2);
    expect(lookups.sent).toBe(3);
    await lookups.run('a:1', lookups.arrive(), reg.lookup, never);
    expect(lookups.sent).toBe(3);
    await answered(lookups, 'b:1', reg);
    expect(lookups.sent).toBe(4);
  });

  it('hint(): the last digest a lookup answered (a guess for early verification), forgotten on errors and clear()', async () => {
    const lookups = new FreshLookups<string | undefined>({ ttlMs: 0, now: () => 0 });
    const reg = registry('sha256:1');
    expect(lookups.hint('app:v1')).toBeUndefined();
    const p = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
    await flush();
    expect(lookups.hint('app:v1')).toBeUndefined(); // not before the answer
    reg.sent.at(-1)!.answer();
    await p;
    expect(lookups.hint('app:v1')).toBe('sha256:1');
    expect(lookups.size).toBe(0); // never an answer: TTL 0 still remembers none
    const failing = lookups.run('app:v1', lookups.arrive(), () => Promise.reject(new Error('down')), never);
    await expect(failing).rejects.toThrow('down');
    expect(lookups.hint('app:v1')).toBeUndefined();
    await lookups.run('app:v1', lookups.arrive(), () => Promise.resolve('sha256:2'), never);
    expect(lookups.hint('app:v1')).toBe('sha256:2');
    lookups.clear();
    expect(lookups.hint('app:v1')).toBeUndefined();
  });

  it('TTL 0 (the default) remembers nothing: each later request sends its own lookup', async () => {
    const lookups = new FreshLookups<string>({ ttlMs: 0, now: () => 0 });
    const reg = registry('sha256:1');
    for (let i = 0; i < 3; i++) {
      const p = lookups.run('app:v1', lookups.arrive(), reg.lookup, never);
      await flush();
      reg.sent.at(-1)!.answer();
      await p;
    }
    expect(lookups.sent).toBe(3);
    expect(lookups.size).toBe(0);
  });
});
