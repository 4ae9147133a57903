/**
 * Entry point of a mirror worker process (forked by startMirrorServer with `workers > 1`). It receives the
 * primary's listening socket and serves the same store, so several cores accept and serve connections.
 */
import type { Socket } from 'node:net';
import { MirrorStore } from '@airlock/cas';
import { createMirrorServer } from './server.js';
import {
  isMessage,
  type WorkerStoreOpener,
  type WorkerFailedMessage,
  type WorkerConnectionMessage,
  type WorkerListenMessage,
  type WorkerReadyMessage,
} from './worker-protocol.js';

let shutdown: (() => Promise<void>) | undefined;
let serve: ((socket: Socket) => void) | undefined;

process.on('message', (message: unknown, handle: unknown) => {
  if (isMessage<WorkerConnectionMessage>(message, 'airlock-mirror-connection')) {
    const socket = handle as Socket | undefined;
    // The client may have gone while the socket was in transit; one not yet ready to serve is refused.
    if (socket) (serve ?? ((s: Socket) => s.destroy()))(socket);
  } else if (isMessage<WorkerListenMessage>(message, 'airlock-mirror-listen')) {
    void start(message).catch((err: unknown) => {
      const failed: WorkerFailedMessage = {
        type: 'airlock-mirror-failed',
        message: err instanceof Error ? err.message : String(err),
      };
      process.send?.(failed, () => process.exit(1));
    });
  } else if (isMessage(message, 'airlock-mirror-close')) {
    void (shutdown ?? (async () => undefined))().finally(() => process.exit(0));
  }
});
// The primary went away: do not linger holding the socket.
process.on('disconnect', () => {
  void (shutdown ?? (async () => undefined))().finally(() => process.exit(0));
});

async function start(message: WorkerListenMessage): Promise<void> {
  // No recovery here: the primary's process owns the store's maintenance.
  const store = message.store
    ? await openThrough(message.store)
    : await MirrorStore.open(message.storeDir, { recover: false });
  const { server } = createMirrorServer({
    store,
    publicUrl: message.publicUrl,
    ...(message.publicUrlConfigured === false ? { publicUrlIsDefault: true } : {}),
    ...(message.tls ? { tls: message.tls } : {}),
  });
  // Not listening: the primary accepts and hands sockets over. 'listening' starts the server's connection
  // tracking (headersTimeout / requestTimeout checks, closeAllConnections), as listen() would.
  server.emit('listening');
  serve = (socket) => server.emit('connection', socket);
  shutdown = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await store.close();
  };
  const ready: WorkerReadyMessage = { type: 'airlock-mirror-ready' };
  process.send?.(ready);
}

async function openThrough(opener: WorkerStoreOpener): Promise<MirrorStore> {
  const mod = (await import(opener.module)) as { openMirrorStoreForWorker?: (args: unknown) => Promise<MirrorStore> };
  if (typeof mod.openMirrorStoreForWorker !== 'function')
    throw new Error(`${opener.module} does not export openMirrorStoreForWorker`);
  return mod.openMirrorStoreForWorker(opener.args);
}
