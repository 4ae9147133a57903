/**
 * @airlock/tlog — a Rekor v1-compatible transparency log: RFC 6962 Merkle tree with persisted perfect subtrees,
 * durable SQLite storage with group commit, hashedrekord/dsse verification, signed checkpoints (C2SP), the
 * Rekor REST API, a client for it and a consistency monitor.
 */
export * from './errors.js';
export {
  HASH_SIZE,
  hashLeaf,
  hashChildren,
  emptyRoot,
  decompose,
  MerkleFrontier,
  MerkleTree,
  MemoryNodeStore,
  foldRange,
  rootPlan,
  inclusionPlan,
  consistencyPlan,
  resolvePlans,
  type AsyncNodeReader,
  type NodeCoord,
  type RangePlan,
  rootFromInclusionProof,
  verifyInclusionProof,
  verifyConsistencyProof,
  type NodeReader,
  type TreeNode,
} from './merkle.js';
export {
  formatCheckpoint,
  signNote,
  parseSignedNote,
  parseCheckpoint,
  verifyCheckpoint,
  keyHintFor,
  isValidKeyName,
  type Checkpoint,
  type SignedNote,
  type NoteSignature,
} from './checkpoint.js';
export { LogSigner, SIGNING_KEY_FILE, type KeySigner } from './signing-key.js';
export { setPayload, toWire, verifyLogEntry, type LogEntry, type InclusionProof, type VerifiedEntry } from './entry.js';
export {
  prepareEntry,
  SUPPORTED_KINDS,
  DSSE_API_VERSION,
  HASHEDREKORD_API_VERSION,
  type PreparedEntry,
} from './types/index.js';
export { pemEncode, parseVerifierPem, type VerifierKey } from './pki.js';
export {
  TransparencyLog,
  DATABASE_FILE,
  type TransparencyLogOptions,
  type SignedCheckpoint,
  type BatchCommittedHook,
  type CommittedBatch,
  type CommittedLeaf,
} from './log.js';
export { VerifierPool, defaultVerifierThreads } from './verify-pool.js';
export { SqliteLogStorage, type LogStorage, type StoredEntry, type NewEntryRow } from './storage.js';
export { startTlogServer, handleRequest, type TlogServerOptions, type RunningTlog } from './http/server.js';
export { serveTlogUntilSignal } from './serve-process.js';
export { ROUTES, type RouteHandler, type RouteDeps, type RouteRequest } from './http/routes.js';
export {
  RekorClient,
  parseLogEntryResponse,
  type RekorClientOptions,
  type LogInfo,
  type ConsistencyProof,
  type CreatedEntry,
} from './client.js';
export { monitorLog, type MonitorOptions, type MonitorResult, type MonitorState } from './monitor.js';
export { prepareV2Entry, HASHEDREKORD_V2_API_VERSION } from './types/v2.js';
export {
  TILE_WIDTH,
  TILE_HEIGHT,
  TILE_PATH_PATTERN,
  CHECKPOINT_PATH,
  encodeTileIndex,
  tilePath,
  entriesPath,
  encodeEntryBundle,
  decodeEntryBundle,
} from './tiles/layout.js';
export { FsTileStore, type TileStore } from './tiles/store.js';
export { TileWriter } from './tiles/writer.js';
export { V2_ROUTES, toTransparencyLogEntry } from './http/v2-routes.js';
export { TILES_DIR } from './http/server.js';
export { CosignatureCollector, type WitnessEndpoint, type CollectorOptions } from './witness/collector.js';
export {
  startWitnessServer,
  type WitnessServerOptions,
  type WitnessedLog,
  type RunningWitness,
} from './witness/server.js';
export { formatAddCheckpoint, parseAddCheckpoint, type AddCheckpointRequest } from './witness/protocol.js';
export { TileReader, httpTileFetch, type TileFetch } from './tiles/reader.js';
export {
  cosignCheckpoint,
  verifyCosignatures,
  requireCosignatures,
  parseWitnessVkey,
  witnessVkey,
  cosignatureKeyId,
  type WitnessKey,
  type VerifiedCosignature,
} from './note.js';
export {
  followTiledLog,
  witnessTiledLog,
  monitorTiledLog,
  type FollowOptions,
  type FollowResult,
  type TiledState,
} from './tiles/follow.js';
