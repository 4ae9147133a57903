import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  createLimitedServer,
  listen,
  type Listening,
  type HttpLimits,
  type RequestContext,
  type RequestGate,
} from '@airlock/core';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { TransparencyLog, type BatchCommittedHook } from '../log.js';
import type { LogStorage } from '../storage.js';
import { defaultVerifierThreads } from '../verify-pool.js';
import type { KeySigner } from '../signing-key.js';
import { DEFAULT_MAX_BODY_BYTES, errorResponse, responseForError, send } from './http-util.js';
import { ROUTES, type RouteDeps } from './routes.js';
import { V2_ROUTES } from './v2-routes.js';
import { FsTileStore, type TileStore } from '../tiles/store.js';
import { TileWriter } from '../tiles/writer.js';
import { CosignatureCollector, type WitnessEndpoint } from '../witness/collector.js';
import { join } from 'node:path';

/** Default tile directory inside the data dir (served at /api/v2/ by the log, or by any static server). */
export const TILES_DIR = 'tiles';

export interface TlogServerOptions {
  dataDir: string;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** Checkpoint key name / origin host; default: `host`. Must occur in the trusted root's tlog `baseUrl`. */
  logName?: string;
  /** PEM ECDSA P-256 private key; default `<dataDir>/tlog-signing-key.pem` (generated on first start). */
  signingKeyPath?: string;
  /** A signer whose key lives outside the data dir (PKCS#11); nothing is generated in `dataDir`. */
  signer?: KeySigner;
  /** Largest accepted request body. Default 32 MiB. */
  maxBodyBytes?: number;
  /** Entries per commit; 1 disables group commit (for measurements). */
  maxBatch?: number;
  /** Metadata storage (PostgreSQL); default SQLite in `dataDir`. */
  storage?: LogStorage;
  /**
   * Signature-verification threads; default `defaultVerifierThreads()`: none below 4 cores, where proposals are
   * prepared on the event loop (message signatures checked on the libuv thread pool).
   */
  verifierThreads?: number;
  /** After each durable batch, before its callers are answered (tile writing). */
  onBatchCommitted?: BatchCommittedHook;
  /** Concurrency, timeouts and per-request deadline (defaults: `DEFAULT_HTTP_LIMITS` of @airlock/core). */
  limits?: Partial<HttpLimits>;
  /** Serve HTTPS (e.g. mTLS with SPIFFE SVIDs); the URL becomes https://. */
  tls?: HttpsServerOptions;
  /** Pre-handler check (e.g. SPIFFE ID authorization of writes); true = it answered. */
  gate?: RequestGate;
  /**
   * Where the C2SP tlog-tiles are published after every commit: a directory (default `<dataDir>/tiles`), another
   * TileStore (object storage), or false to publish none (then the v2 reads answer 404).
   */
  tiles?: string | TileStore | false;
  /** Witnesses asked (in the background) to cosign each published tile checkpoint (C2SP tlog-witness). */
  witnesses?: readonly WitnessEndpoint[];
}

export interface RunningTlog {
  url: string;
  logName: string;
  origin: string;
  /** Hex SHA-256 of the DER SPKI. */
  logId: string;
  publicKeyPem: string;
  publicKeyDer: Buffer;
  /** The in-process log behind the server. */
  log: TransparencyLog;
  /** The tile publisher (undefined with `tiles: false`). */
  tiles?: TileWriter;
  /** The tile directory when tiles go to one. */
  tilesDir?: string;
  close(): Promise<void>;
}

const CLOSE_GRACE_MS = 5_000;

/** Serves one request: route match → method check → handler → response (errors become `{code, message}`). */
export async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  deps: RouteDeps,
  maxBodyBytes: number,
  ctx: RequestContext,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    for (const route of ALL_ROUTES) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      const handler = route.methods[req.method as 'GET' | 'POST'];
      if (!handler) {
        send(
          res,
          errorResponse(405, `method ${req.method} not allowed on ${path}`, {
            Allow: Object.keys(route.methods).join(', '),
          }),
        );
        return;
      }
      send(res, await handler({ url, params: m.slice(1), readJson: () => ctx.readJson(maxBodyBytes) }, deps));
      return;
    }
    send(res, errorResponse(404, `no route for ${path.slice(0, 200)}`));
  } catch (err) {
    const response = responseForError(err);
    if (response.status === 500) console.error('tlog: internal error', err);
    send(res, response);
  }
}

const ALL_ROUTES = [...ROUTES, ...V2_ROUTES];

function tileStoreFor(options: TlogServerOptions): TileStore | undefined {
  if (options.tiles === false) return undefined;
  if (options.tiles === undefined || typeof options.tiles === 'string')
    return new FsTileStore(options.tiles ?? join(options.dataDir, TILES_DIR));
  return options.tiles;
}

/** Hook for witness cosignatures: the tile store wrapped by the collector when witnesses are configured. */
function withWitnesses(store: TileStore | undefined, options: TlogServerOptions): TileStore | undefined {
  if (!store || !options.witnesses?.length) return store;
  return new CosignatureCollector(store, {
    witnesses: options.witnesses,
    onError: (url, err) => console.error(`tlog: witness ${url}: ${(err as Error).message}`),
  });
}

function tilesDirOf(store: TileStore | undefined): string | undefined {
  const inner = store instanceof CosignatureCollector ? store.inner : store;
  return inner instanceof FsTileStore ? inner.root : undefined;
}

/** Opens the log in `dataDir` and serves the Rekor v1 API on it. */
export async function startTlogServer(options: TlogServerOptions): Promise<RunningTlog> {
  const host = options.host ?? '127.0.0.1';
  const logName = options.logName ?? host;
  const base = tileStoreFor(options);
  // A directory store the server made is the server's to close (its publication thread); a store passed in is not.
  const ownStore = base instanceof FsTileStore && base !== options.tiles ? base : undefined;
  const store = withWitnesses(base, options);
  const tiles = store && new TileWriter(store);
  const userHook = options.onBatchCommitted;
  // Tiles are published in the background, grouped across batches: a Rekor v1 append is answered once its batch
  // is durable and its checkpoint signed; a Rekor v2 append also waits for the tiles (createEntryV2). The tile
  // checkpoint is still written only after the tiles it covers.
  const hook: BatchCommittedHook | undefined = tiles
    ? async (batch) => {
        tiles.enqueue(batch);
        await userHook?.(batch);
      }
    : userHook;
  const log = await TransparencyLog.open({
    dataDir: options.dataDir,
    logName,
    ...(options.signingKeyPath ? { signingKeyPath: options.signingKeyPath } : {}),
    ...(options.signer ? { signer: options.signer } : {}),
    ...(options.maxBatch !== undefined ? { maxBatch: options.maxBatch } : {}),
    ...(options.storage ? { storage: options.storage } : {}),
    verifierThreads: options.verifierThreads ?? defaultVerifierThreads(),
    ...(hook ? { onBatchCommitted: hook } : {}),
  });
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  try {
    await tiles?.catchUp(log);
    if (store instanceof CosignatureCollector) await store.resume();
  } catch (err) {
    await log.close();
    await ownStore?.close();
    throw err;
  }
  const deps: RouteDeps = { log, ...(tiles ? { tiles } : {}) };
  let server: Server;
  let listening: Listening;
  try {
    server = createLimitedServer((req, res, ctx) => handleRequest(req, res, deps, maxBodyBytes, ctx), {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.gate ? { gate: options.gate } : {}),
      writeError: (res, status, code, message, headers) =>
        send(res, { status, body: { code: status, message: `${code}: ${message}` }, headers }),
    });
    listening = await listen(server, { ...options, host });
  } catch (err) {
    await log.close();
    await ownStore?.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url: listening.url,
    logName: log.logName,
    origin: log.origin,
    logId: log.logId,
    publicKeyPem: log.publicKeyPem,
    publicKeyDer: log.publicKeyDer,
    log,
    ...(tiles ? { tiles } : {}),
    ...(tilesDirOf(store) !== undefined ? { tilesDir: tilesDirOf(store)! } : {}),
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
          server.closeIdleConnections();
        });
        await log.close();
        await tiles?.flush(); // the last batches' tiles, so a clean stop leaves nothing to catch up
        if (store instanceof CosignatureCollector) await store.close();
        await ownStore?.close();
      })();
      return closing;
    },
  };
}
