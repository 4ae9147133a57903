/**
 * One admission request issues dozens of registry reads (tags, referrers, manifests, bundles per image), each
 * listening for the abort of the request's (or the shared verification's) signal. Node warns past 10 listeners on
 * an EventTarget ("Possible EventTarget memory leak detected"), once per process, into the server's log: the
 * signals the admission code hands to reads must take many listeners without it.
 */
import type { ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requestSignal } from '../src/server/http.js';
import { VerificationCache } from '../src/verify/cache.js';

const READS = 40;
let warnings: Error[] = [];
const onWarning = (w: Error): void => {
  warnings.push(w);
};
beforeEach(() => {
  warnings = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

function listenMany(signal: AbortSignal): void {
  for (let i = 0; i < READS; i++) signal.addEventListener('abort', () => undefined, { once: true });
}

async function leakWarnings(): Promise<string[]> {
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  return warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message);
}

describe('abort signals shared by many registry reads', () => {
  it("a request's deadline signal takes many listeners without a leak warning", async () => {
    const res = new EventEmitter() as unknown as ServerResponse;
    const { signal, done } = requestSignal(res, 60_000);
    listenMany(signal);
    done();
    expect(await leakWarnings()).toEqual([]);
  });

  it("a shared verification's signal takes many listeners without a leak warning", async () => {
    const cache = new VerificationCache<{ passed: boolean }>({ ttlMs: 1000, maxEntries: 10 });
    const caller = new AbortController().signal;
    const r = await cache.run(
      'k',
      async (signal) => {
        listenMany(signal);
        return { passed: true };
      },
      (v) => v.passed,
      caller,
    );
    expect(r.value.passed).toBe(true);
    expect(await leakWarnings()).toEqual([]);
  });
});
