/**
 * The host side of the mirror bridge (mirror-endpoint.ts), driven over its UNIX socket with raw HTTP the way a
 * hostile build could speak it, against a real upstream HTTP server that records every request it parses.
 * - request smuggling: a GET whose chunked body holds a second request must never reach the upstream as one;
 *   GET/HEAD with any body, Transfer-Encoding or Content-Length > 0 is refused (400) and counted;
 * - provenance completeness: Range / conditional headers are stripped so every body the build gets is a full 200
 *   response the bridge records.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openMirrorEndpoint, type MirrorEndpoint } from '../src/mirror-endpoint.js';
import { rmrf, tempDir } from './helpers.js';

const BODY = Buffer.from(Array.from({ length: 512 }, (_, i) => `blob line ${i}\n`).join(''));
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');
const ETAG = `"sha256:${BODY_SHA}"`;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real HTTP/1.1 upstream that serves one blob with Range and ETag support, as the mirror does. */
async function startUpstream(): Promise<{ server: Server; port: number; seen: Seen[]; closed: Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url !== '/blob') return void res.writeHead(404, { 'content-length': '0' }).end();
      if (req.headers['if-none-match'] === ETAG) return void res.writeHead(304, { etag: ETAG }).end();
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (m) {
        const start = Number(m[1]);
        const end = m[2] ? Number(m[2]) : BODY.length - 1;
        const part = BODY.subarray(start, end + 1);
        res.writeHead(206, {
          etag: ETAG,
          'content-range': `bytes ${start}-${end}/${BODY.length}`,
          'content-length': String(part.length),
        });
        return void res.end(part);
      }
      res.writeHead(200, { etag: ETAG, 'accept-ranges': 'bytes', 'content-length': String(BODY.length) }).end(BODY);
    });
  });
  let open = 0;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  server.on('connection', (s: Socket) => {
    open++;
    s.on('close', () => {
      if (--open === 0) resolveClosed();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, seen, closed };
}

/** Writes raw bytes to the bridge socket and collects everything it answers until it closes the connection. */
function rawExchange(socketPath: string, bytes: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolvePromise(Buffer.concat(chunks).toString('latin1')));
    s.on('error', reject);
    s.write(bytes);
  });
}

const dir = tempDir('bridge');
afterAll(() => rmrf(dir));

describe('mirror bridge: requests the build sends to the mirror', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let bridge: MirrorEndpoint;
  let n = 0;

  beforeEach(async () => {
    upstream = await startUpstream();
    bridge = (await openMirrorEndpoint({
      url: `http://127.0.0.1:${upstream.port}`,
      socketPath: join(dir, `b${++n}.sock`),
    }))!;
  });
  afterEach(async () => {
    await bridge.close();
    await new Promise<void>((r) => upstream.server.close(() => r()));
  });

  /** Closes the bridge and waits until the upstream has seen every byte the bridge sent it (all connections closed). */
  async function drain(): Promise<Seen[]> {
    const hadConnections = upstream.seen.length > 0;
    await bridge.close();
    if (hadConnections) await upstream.closed;
    return upstream.seen;
  }

  it('never lets a chunked GET body reach the upstream as a second request (request smuggling)', async () => {
    const smuggled = 'POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n';
    const chunk = `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
    const answer = await rawExchange(
      bridge.socketPath,
      `GET /blob HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk}`,
    );
    const seen = await drain();
    expect(seen.map((r) => `${r.method} ${r.url}`)).not.toContain('POST /containers/create');
    expect(seen.filter((r) => r.body !== '')).toEqual([]);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(seen).toEqual([]);
    expect(bridge.refused()).toEqual([
      expect.objectContaining({ method: 'GET', path: '/blob', reason: expect.stringMatching(/Transfer-Encoding/) }),
    ]);
  });

  it('refuses a GET with Content-Length > 0, another method and an absolute-form target, counting each', async () => {
    const withLength = await rawExchange(
      bridge.socketPath,
      'GET /blob HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
    expect(withLength).toMatch(/^HTTP\/1\.1 400 /);
    const post = await rawExchange(
      bridge.socketPath,
      'POST /blob HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(post).toMatch(/^HTTP\/1\.1 405 /);
    const proxyForm = await rawExchange(
      bridge.socketPath,
      'GET http://127.0.0.1:2375/containers/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(proxyForm).toMatch(/^HTTP\/1\.1 400 /);
    expect(await drain()).toEqual([]);
    expect(bridge.refused().map((r) => r.method)).toEqual(['GET', 'POST', 'GET']);
  });

  it('passes a plain GET with only allow-listed headers, in its own HTTP/1.1 framing, and records the body', async () => {
    const answer = await rawExchange(
      bridge.socketPath,
      'GET /blob HTTP/1.0\r\nHost: 127.0.0.1:18080\r\nAccept: */*\r\nCookie: a=b\r\nProxy-Authorization: Basic eA==\r\nX-Forwarded-For: 10.0.0.1\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(answer.endsWith(BODY.toString('latin1'))).toBe(true);
    const seen = await drain();
    expect(seen).toHaveLength(1);
    const h = seen[0]!.headers;
    expect(Object.keys(h).sort()).toEqual(expect.arrayContaining(['accept', 'host']));
    for (const k of [
      'cookie',
      'proxy-authorization',
      'x-forwarded-for',
      'upgrade',
      'content-length',
      'transfer-encoding',
    ])
      expect(h[k], k).toBeUndefined();
    expect(bridge.fetched()).toEqual([{ path: '/blob', sha256: BODY_SHA, size: BODY.length }]);
    expect(bridge.refused()).toEqual([]);
  });

  it('records a `Range: bytes=0-` fetch: the range is stripped, the build gets (and provenance names) the whole blob', async () => {
    const answer = await rawExchange(
      bridge.socketPath,
      'GET /blob HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\nIf-Range: "x"\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const seen = await drain();
    expect(seen[0]!.headers.range).toBeUndefined();
    expect(seen[0]!.headers['if-range']).toBeUndefined();
    expect(bridge.fetched()).toEqual([{ path: '/blob', sha256: BODY_SHA, size: BODY.length }]);
  });

  it('strips If-None-Match / If-Modified-Since, so a cached copy cannot hide a dependency behind a 304', async () => {
    const answer = await rawExchange(
      bridge.socketPath,
      `GET /blob HTTP/1.1\r\nHost: x\r\nIf-None-Match: ${ETAG}\r\nIf-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\nConnection: close\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const seen = await drain();
    expect(seen[0]!.headers['if-none-match']).toBeUndefined();
    expect(seen[0]!.headers['if-modified-since']).toBeUndefined();
    expect(bridge.fetched()).toHaveLength(1);
  });
});
