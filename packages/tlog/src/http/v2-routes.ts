import { TlogError } from '../errors.js';
import type { LogEntry } from '../entry.js';
import { CHECKPOINT_PATH, TILE_PATH_PATTERN } from '../tiles/layout.js';
import type { TileWriter } from '../tiles/writer.js';
import type { HttpResponse } from './http-util.js';
import type { Route, RouteHandler } from './routes.js';

/**
 * Rekor v2 (rekor-tiles) routes on the same tree as the v1 API: `POST /api/v2/log/entries` and the C2SP
 * tlog-tiles reads, served from the tile store (the same files a static server or bucket serves).
 */

/** The `TransparencyLogEntry` (proto3 JSON) rekor-tiles answers: no SET, integratedTime 0, proof + checkpoint. */
export function toTransparencyLogEntry(
  e: LogEntry,
  kindVersion: { kind: string; version: string },
): Record<string, unknown> {
  const proof = e.verification?.inclusionProof;
  if (!proof) throw new TlogError('TLOG_STORE_CORRUPT', `entry ${e.logIndex} has no inclusion proof`);
  const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');
  return {
    logIndex: String(e.logIndex),
    logId: { keyId: b64(e.logID) },
    kindVersion,
    integratedTime: '0',
    inclusionProof: {
      logIndex: String(proof.logIndex),
      rootHash: b64(proof.rootHash),
      treeSize: String(proof.treeSize),
      hashes: proof.hashes.map(b64),
      checkpoint: { envelope: proof.checkpoint },
    },
    canonicalizedBody: e.body,
  };
}

/**
 * POST /api/v2/log/entries. Answered once the entry's batch is durable and the tiles covering it are durable (the
 * tile writer runs in the background, grouped across batches), so the checkpoint returned is provable from the
 * tiles, as with rekor-tiles, also after a power loss. The tile checkpoint itself moves only once those tiles are durable.
 */
export const createEntryV2: RouteHandler = async (req, { log, tiles }) => {
  const prepared = await log.prepare(await req.readJson(), 'v2'); // on the verifier threads, as v1
  const release = tiles?.expectWaiter(); // its batch is published at once, not after a linger
  try {
    const entry = await log.submit(prepared);
    await tiles?.whenPublished(entry.verification?.inclusionProof?.treeSize ?? log.size);
    return { status: 201, body: toTransparencyLogEntry(entry, { kind: prepared.kind, version: prepared.apiVersion }) };
  } finally {
    release?.();
  }
};

function tilesOf(tiles: TileWriter | undefined): TileWriter {
  if (!tiles) throw new TlogError('TLOG_ENTRY_NOT_FOUND', 'this log does not publish tiles');
  return tiles;
}

/** GET /api/v2/checkpoint and /api/v2/tile/… — bytes from the tile store. */
export const getTileObject: RouteHandler = async (req, { tiles }): Promise<HttpResponse> => {
  const path = req.params[0] ?? '';
  if (!TILE_PATH_PATTERN.test(path)) throw new TlogError('TLOG_BAD_REQUEST', `not a tile path: ${path.slice(0, 100)}`);
  const bytes = await tilesOf(tiles).store.get(path);
  if (!bytes) throw new TlogError('TLOG_ENTRY_NOT_FOUND', `no such tile: ${path}`);
  if (path === CHECKPOINT_PATH)
    return {
      status: 200,
      body: bytes,
      contentType: 'text/plain; charset=utf-8',
      headers: { 'Cache-Control': 'no-store' },
    };
  // Full and partial tiles never change once written.
  return { status: 200, body: bytes, headers: { 'Cache-Control': 'public, max-age=31536000, immutable' } };
};

export const V2_ROUTES: readonly Route[] = [
  { pattern: /^\/api\/v2\/log\/entries$/, methods: { POST: createEntryV2 } },
  { pattern: /^\/api\/v2\/(checkpoint|tile\/.+)$/, methods: { GET: getTileObject } },
];
