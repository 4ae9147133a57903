import { TlogError } from '../errors.js';
import type { TransparencyLog, SignedCheckpoint } from '../log.js';
import { CHECKPOINT_PATH, TILE_PATH_PATTERN } from '../tiles/layout.js';
import type { TileWriter } from '../tiles/writer.js';
import type { HttpResponse } from './http-util.js';
import type { Route, RouteHandler } from './routes.js';

/**
 * Rekor v2 (rekor-tiles) routes on the same tree as the v1 API: `POST /api/v2/log/entries` and the C2SP
 * tlog-tiles reads, served from the tile store (the same files a static server or bucket serves).
 */

/** The `TransparencyLogEntry` (proto3 JSON) rekor-tiles answers: no SET, integratedTime 0, proof + checkpoint. */
export async function toTransparencyLogEntry(
  log: TransparencyLog,
  e: { logIndex: number; body: Buffer; kind: string; apiVersion: string },
  cp: SignedCheckpoint,
): Promise<Record<string, unknown>> {
  const proof = await log.inclusionProof(e.logIndex, cp.size);
  return {
    logIndex: String(e.logIndex),
    logId: { keyId: Buffer.from(log.logId, 'hex').toString('base64') },
    kindVersion: { kind: e.kind, version: e.apiVersion },
    integratedTime: '0',
    inclusionProof: {
      logIndex: String(e.logIndex),
      rootHash: cp.rootHash.toString('base64'),
      treeSize: String(cp.size),
      hashes: proof.map((h) => h.toString('base64')),
      checkpoint: { envelope: cp.note },
    },
    canonicalizedBody: e.body.toString('base64'),
  };
}

/** POST /api/v2/log/entries — answers once a published checkpoint covers the entry (as rekor-tiles does). */
export const createEntryV2: RouteHandler = async (req, { log, tiles }) => {
  const prepared = await log.prepare(await req.readJson(), 'v2');
  const entry = await log.submit(prepared);
  const cp = tiles ? await tiles.waitFor(entry.logIndex + 1) : log.checkpoint();
  return {
    status: 201,
    body: await toTransparencyLogEntry(
      log,
      { logIndex: entry.logIndex, body: prepared.body, kind: prepared.kind, apiVersion: prepared.apiVersion },
      cp,
    ),
  };
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
