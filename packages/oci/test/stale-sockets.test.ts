/**
 * The registry client's retry of a read that lands on a keep-alive socket the server already closed: it must be
 * repeated on a NEW connection. With several idle sockets pooled (concurrent reads leave several), a retry through
 * the pool picked the next dead socket and the read failed with a bare "socket hang up". A loopback HTTP server that
 * drops (without answering) every request arriving on a connection opened before `dropOld()` plays the registry.
 */
import { createServer, Agent, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenLoopback } from './helpers.js';
import { RegistryClient } from '../src/index.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

interface DroppingServer {
  url: string;
  /** Connections opened so far are dropped at their next request (as a server closing idle sockets). */
  dropOld(): void;
  connections(): number;
  close(): Promise<void>;
}

async function startDroppingServer(): Promise<DroppingServer> {
  const old = new WeakSet<Socket>();
  let opened = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (old.has(req.socket)) req.socket.destroy();
    else res.writeHead(200, { 'docker-content-digest': DIGEST, 'content-length': '0' }).end();
  });
  server.on('connection', (s: Socket) => {
    opened++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const { url, close } = await listenLoopback(server);
  return {
    url,
    dropOld: () => sockets.forEach((s) => old.add(s)),
    connections: () => opened,
    close,
  };
}

let server: DroppingServer | undefined;
let agent: Agent | undefined;
afterEach(async () => {
  agent?.destroy();
  await server?.close();
});

describe('RegistryClient: stale keep-alive sockets', () => {
  it('a read on a dropped pooled socket is repeated on a new connection, even with more dead sockets pooled', async () => {
    server = await startDroppingServer();
    agent = new Agent({ keepAlive: true, maxSockets: 8, maxFreeSockets: 8 });
    const client = new RegistryClient({ url: server.url, agent });
    // Three reads at once leave three idle sockets in the pool.
    const first = await Promise.all([1, 2, 3].map(() => client.manifestDigest('acme/app', 'v1')));
    expect(first).toEqual([DIGEST, DIGEST, DIGEST]);
    expect(server.connections()).toBe(3);
    server.dropOld();
    expect(await client.manifestDigest('acme/app', 'v1')).toBe(DIGEST);
    expect(server.connections()).toBe(4); // the retry's own connection
  });
});
