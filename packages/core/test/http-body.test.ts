import { request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLimitedServer,
  DeadlineQueue,
  HttpLimitError,
  resolveHttpLimits,
  type ErrorWriter,
} from '../src/http-body.js';

const writeError: ErrorWriter = (res, status, code, message, headers) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ code, message }));
};

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** An echo server: reads a JSON body with the shared reader and returns it. */
async function echoServer(maxBytes: number): Promise<string> {
  const server = createLimitedServer(
    async (_req, res, ctx) => {
      try {
        const body = await ctx.readJson(maxBytes);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      } catch (err) {
        if (!(err instanceof HttpLimitError)) throw err;
        writeError(res, err.status, err.code, err.message, { connection: 'close' });
      }
    },
    { writeError },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function post(url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST' }, (res: IncomingMessage) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('readJsonRequestBody through createLimitedServer', () => {
  it('returns the parsed body within the limit', async () => {
    const url = await echoServer(64);
    expect(await post(url, '{"a":[1,2]}')).toEqual({ status: 200, text: '{"a":[1,2]}' });
  });

  it('413 over the limit, 400 for bad or empty JSON without quoting the body', async () => {
    const url = await echoServer(64);
    const big = await post(url, JSON.stringify({ pad: 'x'.repeat(100) }));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text)).toMatchObject({ code: 'HTTP_BODY_TOO_LARGE' });
    const bad = await post(url, '{secret-token-text');
    expect(bad.status).toBe(400);
    expect(bad.text).not.toContain('secret-token-text');
    expect((await post(url, '  ')).status).toBe(400);
  });
});

describe('resolveHttpLimits', () => {
  it('fills defaults and refuses non-positive or fractional limits', () => {
    expect(resolveHttpLimits({ maxConcurrentRequests: 3 })).toMatchObject({
      maxConcurrentRequests: 3,
      requestDeadlineMs: 30_000,
    });
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => resolveHttpLimits({ bodyTimeoutMs: bad })).toThrow(
        expect.objectContaining({ code: 'HTTP_LIMITS_INVALID' }),
      );
    }
  });
});

describe('DeadlineQueue (one timer for all requests of a server)', () => {
  it('fires live deadlines in the order they were set and never a cancelled one', async () => {
    const q = new DeadlineQueue(20);
    const fired: string[] = [];
    const all = Array.from({ length: 6 }, (_, i) => {
      let done!: () => void;
      const settled = new Promise<void>((r) => (done = r));
      const cancel = q.add(() => {
        fired.push(`d${i}`);
        done();
      });
      return { cancel, settled };
    });
    // Cancel the first (the one the timer is armed for) and two in the middle.
    for (const i of [0, 2, 3]) all[i]!.cancel();
    await Promise.all([1, 4, 5].map((i) => all[i]!.settled));
    expect(fired).toEqual(['d1', 'd4', 'd5']);
    // Added after the timer ran dry: it re-arms.
    await new Promise<void>((r) => q.add(r));
  });

  it("aborts the handler's signal at the deadline, also when the handler asks for it only afterwards", async () => {
    const seen: Array<{ early: boolean; late: boolean }> = [];
    const server = createLimitedServer(
      async (_req, _res, ctx) => {
        const early = ctx.signal;
        await new Promise<void>((r) => early.addEventListener('abort', () => r(), { once: true }));
        seen.push({ early: early.aborted, late: ctx.signal.aborted });
        await expect(ctx.readJson(64)).rejects.toMatchObject({ code: 'HTTP_DEADLINE_EXCEEDED' });
      },
      { writeError, limits: { requestDeadlineMs: 50 } },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const res = await post(url, '{}');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text)).toMatchObject({ code: 'HTTP_DEADLINE_EXCEEDED' });
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([{ early: true, late: true }]);
  });
});
