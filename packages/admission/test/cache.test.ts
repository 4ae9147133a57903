/**
 * VerificationCache: successes only, TTL (a clock the test controls), LRU size bound, identical verifications in
 * flight coalesced into one, clear() drops entries and in-flight results, and the shared run is aborted only when
 * every waiter has given up.
 */
import { describe, expect, it } from 'vitest';
import { VerificationCache } from '../src/verify/cache.js';

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
const ok = (v: { passed: boolean }) => v.passed;

describe('VerificationCache', () => {
  it('coalesces concurrent identical verifications into one run, then serves hits', async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    const d = deferred<{ passed: boolean }>();
    let runs = 0;
    const verify = () => {
      runs++;
      return d.promise;
    };
    const all = Promise.all([1, 2, 3, 4, 5].map(() => cache.run('k', verify, ok, never)));
    d.resolve({ passed: true });
    const results = await all;
    expect(runs).toBe(1);
    expect(results.map((r) => r.hit)).toEqual([false, false, false, false, false]);
    expect((await cache.run('k', verify, ok, never)).hit).toBe(true);
    expect(runs).toBe(1);
  });

  it('never caches a failure or an error', async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    let runs = 0;
    await cache.run('k', async () => (runs++, { passed: false }), ok, never);
    await cache.run('k', async () => (runs++, { passed: false }), ok, never);
    await expect(
      cache.run('e', async () => (runs++, Promise.reject(new Error('registry down'))), ok, never),
    ).rejects.toThrow('registry down');
    await expect(
      cache.run('e', async () => (runs++, Promise.reject(new Error('registry down'))), ok, never),
    ).rejects.toThrow('registry down');
    expect(runs).toBe(4);
    expect(cache.size).toBe(0);
  });

  it('expires entries after the TTL and evicts the least recently used past maxEntries', async () => {
    let now = 0;
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 100, maxEntries: 2, now: () => now });
    const pass = async () => ({ passed: true });
    await cache.run('a', pass, ok, never);
    await cache.run('b', pass, ok, never);
    expect((await cache.run('a', pass, ok, never)).hit).toBe(true); // a is now most recent
    await cache.run('c', pass, ok, never); // evicts b
    expect(cache.size).toBe(2);
    expect((await cache.run('b', pass, ok, never)).hit).toBe(false);
    now = 1000;
    expect((await cache.run('a', pass, ok, never)).hit).toBe(false);
  });

  it('clear() during a verification: its result is not stored', async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    const d = deferred<{ passed: boolean }>();
    const p = cache.run('k', () => d.promise, ok, never);
    cache.clear();
    d.resolve({ passed: true });
    await p;
    expect(cache.size).toBe(0);
  });

  it('one waiter aborting does not abort the shared run; the last one leaving does', async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    let shared: AbortSignal | undefined;
    const d = deferred<{ passed: boolean }>();
    const verify = (s: AbortSignal) => {
      shared = s;
      s.addEventListener('abort', () => d.reject(new Error('cut off')));
      return d.promise;
    };
    const a = new AbortController();
    const b = new AbortController();
    const pa = cache.run('k', verify, ok, a.signal);
    const pb = cache.run('k', verify, ok, b.signal);
    a.abort(new Error('deadline a'));
    await expect(pa).rejects.toThrow('deadline a');
    expect(shared!.aborted).toBe(false);
    b.abort(new Error('deadline b'));
    await expect(pb).rejects.toThrow('deadline b');
    expect(shared!.aborted).toBe(true);
    // A new request after that starts afresh instead of joining the aborted run.
    const pc = await cache.run('k', async () => ({ passed: true }), ok, never);
    expect(pc.value.passed).toBe(true);
  });

  it('an already aborted signal is refused before any work', async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    const c = new AbortController();
    c.abort(new Error('late'));
    let runs = 0;
    await expect(cache.run('k', async () => (runs++, { passed: true }), ok, c.signal)).rejects.toThrow('late');
    expect(runs).toBe(0);
  });
});
