/**
 * A read still queued in the keep-alive agent (every socket busy) when its AbortSignal fires: the caller hears
 * OCI_ABORTED at once and the request is never sent. On Node 20 with `http.request`'s own `signal` option, the abort
 * of a queued request surfaced only once a socket freed up (the caller's promise lingered until then). A loopback
 * HTTP server that holds the first request until released plays the registry; no timing is asserted.
 */
import { createServer, Agent, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { listenLoopback } from './helpers.js';
import { RegistryClient, type OciError } from '../src/index.js';

const DIGEST = `sha256:${'b'.repeat(64)}`;

interface HoldingServer {
  url: string;
  /** Paths requested so far. */
  seen: string[];
  /** Answers the held requests. */
  release(): void;
  held(): number;
  close(): Promise<void>;
}

async function startHoldingServer(): Promise<HoldingServer> {
  const seen: string[] = [];
  const held: ServerResponse[] = [];
  const answer = (res: ServerResponse): void => {
    res.writeHead(200, { 'docker-content-digest': DIGEST, 'content-length': '0' }).end();
  };
  let holding = true;
  const server: Server = createServer((req, res) => {
    seen.push(req.url ?? '');
    if (holding) held.push(res);
    else answer(res);
  });
  const { url, close } = await listenLoopback(server);
  return {
    url,
    seen,
    release: () => {
      holding = false;
      held.splice(0).forEach(answer);
    },
    held: () => held.length,
    close,
  };
}

let server: HoldingServer | undefined;
let agent: Agent | undefined;
afterEach(async () => {
  agent?.destroy();
  await server?.close();
});

describe('RegistryClient: abort of a read queued in the agent', () => {
  it('rejects with OCI_ABORTED while the socket is still busy, and the read is never sent', async () => {
    server = await startHoldingServer();
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const busy = new RegistryClient({ url: server.url, agent }).manifestDigest('acme/app', 'first');
    await expect.poll(() => server!.held(), { timeout: 5_000 }).toBe(1);
    const controller = new AbortController();
    const queued = new RegistryClient({ url: server.url, agent, signal: controller.signal }).manifestDigest(
      'acme/app',
      'queued',
    );
    let outcome: string | undefined;
    queued.then(
      () => (outcome = 'answered'),
      (err: OciError) => (outcome = err.code),
    );
    controller.abort();
    // The first read still holds the only socket: the queued one must have been answered without it.
    await expect.poll(() => outcome, { timeout: 5_000 }).toBe('OCI_ABORTED');
    expect(server.held()).toBe(1);
    server.release();
    expect(await busy).toBe(DIGEST);
    // The socket is free again and the next read goes through it: the aborted one was dropped, not sent late.
    expect(await new RegistryClient({ url: server.url, agent }).manifestDigest('acme/app', 'after')).toBe(DIGEST);
    expect(server.seen).toEqual(['/v2/acme/app/manifests/first', '/v2/acme/app/manifests/after']);
  });
});
