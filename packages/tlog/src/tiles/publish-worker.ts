/**
 * Worker thread of `FsTileStore`: runs its publications (create, write, link, fsync, rename) off the log's event
 * loop. Metadata calls on ext4 wait for the journal while fsyncs run; on the event loop they stalled every request.
 * One message in = one publication; out: `readable` once the tiles are linked and `durable` once they are synced
 * (each if asked), then `done` or `error`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TlogError } from '../errors.js';
import { FsTileStore, TileDeltas, type PublishReply, type PublishRequest } from './store.js';

const store = new FsTileStore(workerData as string, { thread: false });
const received = new TileDeltas();

parentPort!.on('message', (req: PublishRequest) => {
  const reply = (r: PublishReply): void => parentPort!.postMessage(r);
  const failed = (err: unknown): void =>
    reply({
      id: req.id,
      error: { message: (err as Error).message, ...(err instanceof TlogError ? { code: err.code } : {}) },
    });
  let tiles: Array<readonly [string, Uint8Array]>;
  try {
    // In message order, synchronously: every delta refers to the tile received before it.
    tiles = req.tiles.map((t) => [t[0], received.decode(t)] as const);
  } catch (err) {
    return failed(err);
  }
  store
    .publish(tiles, req.checkpoint, {
      replace: req.replace,
      // Only when the caller listens: each reply is a message across threads.
      ...(req.wantReadable ? { onReadable: () => reply({ id: req.id, readable: true }) } : {}),
      ...(req.wantDurable ? { onDurable: () => reply({ id: req.id, durable: true }) } : {}),
    })
    .then(() => reply({ id: req.id, done: true }), failed);
});
