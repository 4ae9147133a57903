/**
 * Issue 7: the log, the CA and the issuer bound their load. Real servers on loopback, real TCP clients: a
 * slowloris header, a slow body, more than the allowed concurrent requests, a handler past its deadline and an
 * oversized body are each answered with the right status while an ordinary request still succeeds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HttpLimits } from '@airlock/core';
import { startTlogServer } from '@airlock/tlog';
import { startCaServer } from '@airlock/ca';
import { startIdentityIssuer } from '@airlock/identity';

interface Service {
  url: string;
  close(): Promise<void>;
}

interface Target {
  name: string;
  start(dataDir: string, limits: Partial<HttpLimits>, maxBodyBytes: number): Promise<Service>;
  /** A POST route that reads a JSON body. */
  postPath: string;
  /** A cheap GET that answers 200. */
  okPath: string;
}

const TARGETS: Target[] = [
  {
    name: 'tlog',
    start: (dataDir, limits, maxBodyBytes) => startTlogServer({ dataDir, limits, maxBodyBytes }),
    postPath: '/api/v1/log/entries',
    okPath: '/api/v1/log',
  },
  {
    name: 'ca',
    start: (dataDir, limits, maxBodyBytes) =>
      startCaServer({
        dataDir,
        limits,
        maxBodyBytes,
        issuers: [{ issuerUrl: 'https://issuer.invalid', type: 'email' }],
      }),
    postPath: '/api/v2/signingCert',
    okPath: '/api/v2/configuration',
  },
  {
    name: 'identity',
    start: (dataDir, limits, maxBodyBytes) =>
      startIdentityIssuer({ dataDir, limits, maxBodyBytes, enableTokenEndpoint: true }),
    postPath: '/token',
    okPath: '/.well-known/openid-configuration',
  },
];

const dirs: string[] = [];
const services: Service[] = [];
afterAll(async () => {
  for (const s of services) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(t: Target, limits: Partial<HttpLimits>, maxBodyBytes = 4096): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), `airlock-limits-${t.name}-`));
  dirs.push(dir);
  const s = await t.start(dir, limits, maxBodyBytes);
  services.push(s);
  return s;
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A raw TCP client: writes `head` (+ optional first body bytes) and keeps the socket for later writes. */
function open(url: string, head: string): { socket: Socket; response: Promise<RawResponse | 'closed'> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.write(head);
  const response = new Promise<RawResponse | 'closed'>((resolve) => {
    let data = '';
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      const parsed = parseResponse(data);
      if (parsed) {
        resolve(parsed);
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(parseResponse(data) ?? 'closed'));
  });
  return { socket, response };
}

function parseResponse(data: string): RawResponse | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = data.slice(end + 4);
  const length = Number(headers['content-length'] ?? '0');
  if (Buffer.byteLength(body, 'latin1') < length) return undefined;
  return { status: Number(statusLine!.split(' ')[1]), headers, body };
}

function postHead(url: string, path: string, contentLength: number): string {
  const { host } = new URL(url);
  return `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;
}

async function okGet(s: Service, path: string): Promise<number> {
  return (await fetch(`${s.url}${path}`)).status;
}

/** The error body (each API has its own shape; the log's Rekor-style body puts the code in the message). */
function errorText(r: RawResponse | 'closed'): string {
  return r === 'closed' ? 'closed' : r.body;
}

describe.each(TARGETS)('load limits: $name', (t) => {
  it('answers a slowloris header with 408 while a normal request succeeds', { timeout: 20_000 }, async () => {
    const s = await start(t, { headersTimeoutMs: 300 });
    const { host } = new URL(s.url);
    const loris = open(s.url, `GET ${t.okPath} HTTP/1.1\r\nHost: ${host}\r\nX-Slow: 1`);
    expect(await okGet(s, t.okPath)).toBe(200);
    const r = await loris.response;
    expect(r === 'closed' ? 'closed' : r.status).toBe(408);
  });

  it('answers a slow body with 408 and closes the connection', { timeout: 20_000 }, async () => {
    const s = await start(t, { bodyTimeoutMs: 300, requestDeadlineMs: 60_000 });
    const slow = open(s.url, postHead(s.url, t.postPath, 100) + '{');
    expect(await okGet(s, t.okPath)).toBe(200);
    const r = await slow.response;
    expect(r).not.toBe('closed');
    expect((r as RawResponse).status).toBe(408);
    expect((r as RawResponse).headers.connection).toBe('close');
  });

  it('refuses requests beyond maxConcurrentRequests with 503 + Retry-After, not a queue', async () => {
    const s = await start(t, { maxConcurrentRequests: 2, bodyTimeoutMs: 60_000, requestDeadlineMs: 60_000 });
    const body = '{"x":1}';
    const holders = [0, 1].map(() => open(s.url, postHead(s.url, t.postPath, body.length) + '{'));
    // Both holders are inside their handlers once a third request is refused.
    let third = await fetch(`${s.url}${t.okPath}`);
    for (let i = 0; i < 50 && third.status === 200; i++) third = await fetch(`${s.url}${t.okPath}`);
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(JSON.stringify(await third.json())).toContain('HTTP_OVERLOADED');
    // The holders finish their bodies and are answered; then a normal request succeeds again.
    for (const h of holders) h.socket.write(body.slice(1));
    for (const h of holders) expect((await h.response) === 'closed').toBe(false);
    expect(await okGet(s, t.okPath)).toBe(200);
  });

  it('answers a request past its deadline with 503 and abandons it', { timeout: 20_000 }, async () => {
    const s = await start(t, { requestDeadlineMs: 300, bodyTimeoutMs: 60_000 });
    const stuck = open(s.url, postHead(s.url, t.postPath, 100) + '{');
    const r = await stuck.response;
    expect(r === 'closed' ? 'closed' : r.status).toBe(503);
    expect(errorText(r)).toContain('HTTP_DEADLINE_EXCEEDED');
    expect(await okGet(s, t.okPath)).toBe(200);
  });

  it('answers an oversized body with 413 (declared and chunked) and bad JSON with 400', async () => {
    const s = await start(t, {}, 1024);
    const declared = open(s.url, postHead(s.url, t.postPath, 1_000_000) + '{"pad":"');
    const r = await declared.response;
    expect(r === 'closed' ? 'closed' : r.status).toBe(413);
    const { host } = new URL(s.url);
    const chunkHead = `POST ${t.postPath} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const chunked = open(s.url, chunkHead);
    for (let i = 0; i < 3; i++) chunked.socket.write(`400\r\n${'x'.repeat(0x400)}\r\n`);
    const c = await chunked.response;
    expect(c === 'closed' ? 'closed' : c.status).toBe(413);
    const bad = await fetch(`${s.url}${t.postPath}`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect(await bad.text()).not.toContain('not json');
    expect(await okGet(s, t.okPath)).toBe(200);
  });
});
