import { createServer, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { closeNow, listen, urlHost } from '../src/listen.js';

const open: Array<ReturnType<typeof createServer>> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => (s.listening ? closeNow(s) : undefined)));
});

function server() {
  const s = createServer((_req, res) => res.end('ok'));
  open.push(s);
  return s;
}

describe('listen', () => {
  it('binds 127.0.0.1 on an ephemeral port by default and names it in the URL', async () => {
    const got = await listen(server(), {});
    expect(got.host).toBe('127.0.0.1');
    expect(got.port).toBeGreaterThan(0);
    expect(got.url).toBe(`http://127.0.0.1:${got.port}`);
    expect(await fetch(`${got.url}/`).then((r) => r.text())).toBe('ok');
  });

  it('uses https in the URL when TLS options are given, and brackets IPv6 hosts', async () => {
    expect((await listen(server(), { tls: {} })).url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(urlHost('::1')).toBe('[::1]');
    expect(urlHost('[::1]')).toBe('[::1]');
    expect(urlHost('mirror.internal')).toBe('mirror.internal');
  });

  it('rejects with the bind error when the port is taken', async () => {
    const first = await listen(server(), {});
    await expect(listen(server(), { port: first.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('closeNow drops connections with a request in flight instead of waiting for them', async () => {
    const s = createServer(() => undefined); // never answers
    open.push(s);
    const { port } = await listen(s, {});
    const answered = new Promise<string>((resolve) => {
      const req = request({ port, host: '127.0.0.1', path: '/' }, () => resolve('answered'));
      req.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? 'error'));
      req.end();
    });
    await new Promise<void>((resolve) => s.once('request', () => resolve()));
    await closeNow(s);
    expect(s.listening).toBe(false);
    expect(await answered).toBe('ECONNRESET');
  });
});
