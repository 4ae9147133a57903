import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../errors.js';
import { sendBlob, sendCachedWhole } from './blob-response.js';
import type { MirrorContext } from './context.js';
import { notFound, parseRequestPath, sendError, sendJson } from './http-utils.js';
import { handleBlob, handleHashed, parseBlobPath, parseHashedPath } from './routes/hashed.js';
import { handleNpm, parseNpmPath } from './routes/npm.js';
import { handlePypi, parsePypiPath } from './routes/pypi.js';
import { handleLookup, parseLookupPath } from './routes/lookup.js';
import { handleSnapshots, parseSnapshotsPath } from './routes/snapshots.js';

/**
 * Dispatches one request. Order matters where spaces overlap: `/simple/`, `/files/<sha256>/…`, `/blobs/…` and
 * hash paths first; anything else is an npm name. (An npm package called e.g. `simple` still works: `/simple`
 * and `/simple/-/…` are npm paths, `/simple/` and `/simple/<project>` are PyPI's.)
 */
export async function routeRequest(ctx: MirrorContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new HttpError(
      405,
      'MIRROR_METHOD_NOT_ALLOWED',
      `method ${String(req.method).slice(0, 20)} not allowed: this mirror is read-only`,
      {
        Allow: 'GET, HEAD',
      },
    );
  }
  const { segments, trailingSlash } = parseRequestPath(req.url);
  if (segments.length === 0) {
    const head = ctx.store.index.head();
    sendJson(
      req,
      res,
      200,
      {
        service: 'airlock-mirror',
        head: head ? { id: head.id, sequence: head.sequence, createdAt: head.createdAt } : null,
      },
      {
        'Cache-Control': 'no-store',
      },
    );
    return;
  }
  if (segments[0] === '-') {
    if (segments.length === 2 && segments[1] === 'ping') return sendJson(req, res, 200, {});
    const lookup = parseLookupPath(segments);
    if (lookup) return handleLookup(ctx, req, res, lookup);
    const snapshots = parseSnapshotsPath(segments);
    if (snapshots) return handleSnapshots(ctx, req, res, snapshots);
    throw notFound('not found');
  }
  const pypi = parsePypiPath(segments, trailingSlash);
  if (pypi) return handlePypi(ctx, req, res, pypi);
  const blob = parseBlobPath(segments);
  if (blob) return handleBlob(ctx, req, res, blob);
  const hashed = parseHashedPath(segments);
  if (hashed) return handleHashed(ctx, req, res, hashed);
  if (!trailingSlash) {
    const npm = parseNpmPath(segments);
    if (npm) return handleNpm(ctx, req, res, npm);
  }
  throw notFound('not found');
}

/** Wraps routing so that no request can crash the server; unexpected errors become an opaque 500. */
export function createRequestHandler(ctx: MirrorContext, onError?: (err: unknown, req: IncomingMessage) => void) {
  const fail = (err: unknown, req: IncomingMessage, res: ServerResponse): void => {
    if (err instanceof HttpError) {
      sendError(req, res, err);
      return;
    }
    onError?.(err, req);
    sendError(req, res, new HttpError(500, 'MIRROR_INTERNAL', 'internal error'));
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    const hot = req.method === 'GET' || req.method === 'HEAD' ? ctx.routes.get(req.url ?? '') : undefined;
    if (hot) {
      // Synchronous: a throw here would otherwise escape the server's 'request' event and end the process.
      try {
        if (sendCachedWhole(ctx, req, res, hot)) return;
      } catch (err) {
        fail(err, req, res);
        return;
      }
    }
    const done = hot ? sendBlob(ctx, req, res, hot.blob, hot) : routeRequest(ctx, req, res);
    done.catch((err: unknown) => fail(err, req, res));
  };
}
