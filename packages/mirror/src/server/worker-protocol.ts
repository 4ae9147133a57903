/** Messages between the primary mirror process and its worker processes (over the fork IPC channel). */
export interface WorkerListenMessage {
  type: 'airlock-mirror-listen';
  storeDir: string;
  /** Open the store through this module's `openMirrorStoreForWorker(args)` (a store not in one directory). */
  store?: WorkerStoreOpener;
  publicUrl: string;
  /** False when publicUrl is only the listening address (absent: configured, as before). */
  publicUrlConfigured?: boolean;
  tls?: { cert: string; key: string; ca?: string; requestClientCert?: boolean; allowSpiffeIds?: string[] };
}

/** One accepted connection, handed to a worker with the socket (the primary never read from it). */
export interface WorkerConnectionMessage {
  type: 'airlock-mirror-connection';
}

export interface WorkerCloseMessage {
  type: 'airlock-mirror-close';
}

export interface WorkerReadyMessage {
  type: 'airlock-mirror-ready';
}

export interface WorkerFailedMessage {
  type: 'airlock-mirror-failed';
  message: string;
}

export function isMessage<T extends { type: string }>(m: unknown, type: T['type']): m is T {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type;
}

/** How a worker opens a store that is more than a directory (S3 blobs, a database index). */
export interface WorkerStoreOpener {
  /** Module URL or specifier exporting `openMirrorStoreForWorker(args: unknown): Promise<MirrorStore>`. */
  module: string;
  /** Structured-cloneable arguments (never secrets: workers inherit the primary's environment). */
  args: unknown;
}
