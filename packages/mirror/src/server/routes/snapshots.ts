import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MirrorContext } from '../context.js';
import { notFound, sendBody, sendJson } from '../http-utils.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SNAPSHOT_ID = /^sha256:[0-9a-f]{64}$/;
/** The name the transfer bundle gives the sync job's signature over manifest.json (kept by the import). */
const MANIFEST_BUNDLE = 'attestations/manifest.sigstore.json';

/** Media types of the two documents (schemas/mirror-snapshot-lookup.v1.schema.json describes both). */
export const BLOB_SNAPSHOTS_MEDIA_TYPE = 'application/vnd.airlock.mirror.blob-snapshots.v1+json';
export const SNAPSHOT_DOCUMENT_MEDIA_TYPE = 'application/vnd.airlock.mirror.snapshot.v1+json';

export type SnapshotsRequest = { kind: 'blob'; sha256: string } | { kind: 'snapshot'; id: string };

/**
 * `/-/airlock/blobs/<sha256 hex>/snapshots` (which snapshots list an entry with this blob) and
 * `/-/airlock/snapshots/sha256:<hex>` (one snapshot's transfer manifest and the sync signature over it).
 */
export function parseSnapshotsPath(segments: readonly string[]): SnapshotsRequest | undefined {
  if (segments[0] !== '-' || segments[1] !== 'airlock') return undefined;
  if (segments.length === 5 && segments[2] === 'blobs' && segments[4] === 'snapshots')
    return SHA256_HEX.test(segments[3]!) ? { kind: 'blob', sha256: segments[3]! } : undefined;
  if (segments.length === 4 && segments[2] === 'snapshots')
    return SNAPSHOT_ID.test(segments[3]!) ? { kind: 'snapshot', id: segments[3]! } : undefined;
  return undefined;
}

/**
 * Read-only evidence for verifiers that cannot read the store. Nothing here is trusted by them: the client
 * re-verifies each snapshot's bundle against its own trusted root and checks that the signed manifest lists the
 * blob, so this API can only withhold evidence, never forge it.
 */
export function handleSnapshots(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  request: SnapshotsRequest,
): void {
  if (request.kind === 'blob') return sendBlobSnapshots(ctx, req, res, request.sha256);
  return sendSnapshot(ctx, req, res, request.id);
}

/** Every snapshot whose manifest lists an entry naming the blob (entries are never removed; empty when none). */
function sendBlobSnapshots(ctx: MirrorContext, req: IncomingMessage, res: ServerResponse, sha256: string): void {
  const sequences = [...new Set(ctx.store.index.findEntriesBySha256(sha256).map((e) => e.addedIn))];
  const bySequence = new Map(ctx.store.index.listSnapshots().map((s) => [s.sequence, s] as const));
  const snapshots = sequences
    .map((seq) => bySequence.get(seq))
    .filter((s) => s !== undefined)
    .map((s) => ({ id: s.id, sequence: s.sequence }));
  sendJson(req, res, 200, { mediaType: BLOB_SNAPSHOTS_MEDIA_TYPE, sha256, snapshots }, { 'Cache-Control': 'no-store' });
}

/** The manifest as the store keeps it (its canonical form is the signed bytes) and the bundle as imported. */
function sendSnapshot(ctx: MirrorContext, req: IncomingMessage, res: ServerResponse, id: string): void {
  const sequence = ctx.store.index.headSequence();
  const key = `snapshot\0${id}`;
  let doc = ctx.cache.get(sequence, key);
  if (!doc) {
    const d = ctx.store.index.getSnapshot(id);
    const bundle = (d?.signedBundles as Record<string, unknown> | null | undefined)?.[MANIFEST_BUNDLE];
    if (!d) throw notFound(`snapshot ${id} is not in this mirror`);
    if (bundle === undefined) throw notFound(`snapshot ${id} has no ${MANIFEST_BUNDLE}`);
    const body = Buffer.from(
      JSON.stringify({
        mediaType: SNAPSHOT_DOCUMENT_MEDIA_TYPE,
        id: d.id,
        sequence: d.sequence,
        manifest: d.manifest,
        bundle,
      }),
    );
    doc = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"` };
    ctx.cache.set(sequence, key, doc);
  }
  // Immutable: a snapshot id is the hash of its content.
  sendBody(req, res, 200, doc.body, {
    'Content-Type': 'application/json',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'public, max-age=31536000, immutable',
    ETag: doc.etag,
  });
}
