import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MirrorBlobLookup } from '@airlock/schemas';
import type { MirrorContext } from '../context.js';
import { notFound, sendJson } from '../http-utils.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `/-/airlock/blobs/<sha256 hex>`: what the mirror knows about one blob. */
export function parseLookupPath(segments: readonly string[]): { sha256: string } | undefined {
  if (segments.length !== 4 || segments[0] !== '-' || segments[1] !== 'airlock' || segments[2] !== 'blobs')
    return undefined;
  const sha256 = segments[3]!;
  return SHA256_HEX.test(sha256) ? { sha256 } : undefined;
}

/**
 * Describes a blob visible at head: its size, the head snapshot, and every entry (ecosystem, name, version,
 * purl, upstream URLs, digests) that names it. The runner uses it to turn "the build received bytes with this
 * sha256" into SLSA resolvedDependencies that a verifier can check against the snapshot.
 */
export function handleLookup(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  { sha256 }: { sha256: string },
): void {
  const blob = ctx.store.index.getVisibleBlob(sha256);
  const head = ctx.store.index.head();
  if (!blob || !head) throw notFound(`sha256:${sha256} is not in this mirror`);
  const entries = ctx.store.index.findEntriesBySha256(sha256).map((e) => ({
    ecosystem: e.ecosystem,
    name: e.name,
    version: e.version,
    filename: e.filename,
    purl: e.purl,
    urls: e.urls,
    digests: e.digests,
    addedIn: e.addedIn,
  }));
  // The contract (mirror-blob-lookup.v1.schema.json) the runner checks the answer against.
  const body: MirrorBlobLookup = {
    sha256,
    size: blob.size,
    snapshot: { id: head.id, sequence: head.sequence },
    entries,
  };
  sendJson(req, res, 200, body, { 'Cache-Control': 'no-store' });
}
