/**
 * SmallBlobCache: bytes valid only under their change token, bounded by total size, and second-chance eviction:
 * an entry hit (get or peek) since the eviction scan last passed it survives once, the oldest untouched one goes.
 */
import { describe, expect, it } from 'vitest';
import { SmallBlobCache } from '../src/index.js';

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe('SmallBlobCache', () => {
  it('answers only under the token the bytes were stored with, and forgets them on a mismatch', () => {
    const cache = new SmallBlobCache(100);
    cache.set('a', 't1', bytes(10, 1));
    expect(cache.get('a', 't1')?.equals(bytes(10, 1))).toBe(true);
    expect(cache.get('a', 't2')).toBeUndefined();
    expect(cache.has('a')).toBe(false);
  });

  it('evicts the oldest entry not used since it was stored, keeping a used older one', () => {
    const cache = new SmallBlobCache<string>(30);
    cache.set('a', 't', bytes(10, 1), 'meta-a');
    cache.set('b', 't', bytes(10, 2));
    cache.set('c', 't', bytes(10, 3));
    expect(cache.peek('a')?.meta).toBe('meta-a'); // a is the oldest, but used
    cache.set('d', 't', bytes(10, 4));
    expect(cache.has('a')).toBe(true);
    expect(cache.has('b')).toBe(false);
    expect(cache.has('c') && cache.has('d')).toBe(true);
    // c used (by get), d never: d goes next although a was used before d was stored. Then a, whose second chance
    // is spent and which was not used since, goes before the used c.
    expect(cache.get('c', 't')).toBeDefined();
    cache.set('e', 't', bytes(10, 5));
    expect(cache.has('d')).toBe(false);
    expect(cache.has('a') && cache.has('c') && cache.has('e')).toBe(true);
    cache.set('f', 't', bytes(10, 6));
    expect(cache.has('a')).toBe(false);
    expect(cache.has('c') && cache.has('e') && cache.has('f')).toBe(true);
  });

  it('stays within its byte budget however entries are used, and refuses a blob over the budget', () => {
    const cache = new SmallBlobCache(100);
    cache.set('huge', 't', bytes(101, 0));
    expect(cache.has('huge')).toBe(false);
    let held = 0;
    for (let i = 0; i < 200; i++) {
      cache.set(`k${i}`, 't', bytes(7 + (i % 5), i));
      // Every other entry used: second chances must never let the total grow past the budget.
      for (let j = i; j >= 0 && j > i - 20; j -= 2) cache.peek(`k${j}`);
      held = 0;
      for (let j = 0; j <= i; j++) held += cache.has(`k${j}`) ? 7 + (j % 5) : 0;
      expect(held).toBeLessThanOrEqual(100);
    }
    expect(held).toBeGreaterThan(100 - 12); // evicted only as much as needed
    // Replacing an entry counts its bytes once.
    const one = new SmallBlobCache(20);
    one.set('x', 't1', bytes(15, 1));
    one.set('x', 't2', bytes(15, 2));
    expect(one.get('x', 't2')?.equals(bytes(15, 2))).toBe(true);
  });
});
