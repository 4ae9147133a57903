import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { formatCheckpoint, isValidKeyName, signNote } from './checkpoint.js';
import { setPayload, type LogEntry } from './entry.js';
import { TlogError } from './errors.js';
import { MerkleFrontier, MerkleTree } from './merkle.js';
import { LogSigner, type KeySigner } from './signing-key.js';
import { LogStore, type NewEntryRow, type StoredEntry } from './storage.js';
import { prepareEntry, type PreparedEntry } from './types/index.js';

export const DATABASE_FILE = 'tlog.sqlite';
const DEFAULT_MAX_BATCH = 1000;
const MAX_SEARCH_RESULTS = 10_000;

export interface TransparencyLogOptions {
  /** Directory for `tlog.sqlite` and (unless `signingKeyPath`) `tlog-signing-key.pem`. Created if missing. */
  dataDir: string;
  /**
   * Checkpoint key name and origin host: origin = `<logName> - <treeID>`. sigstore-js requires it to occur in the
   * trusted root's `baseUrl`, so keep it stable (a hostname, no port). Default `127.0.0.1`.
   */
  logName?: string;
  /** PEM ECDSA P-256 private key to use instead of `<dataDir>/tlog-signing-key.pem`. */
  signingKeyPath?: string;
  /** A signer whose key lives outside the data dir (PKCS#11); wins over `signingKeyPath`. */
  signer?: KeySigner;
  /** Entries per commit (group commit). 1 = one fsynced transaction per entry (for measurements). Default 1000. */
  maxBatch?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

export interface SignedCheckpoint {
  size: number;
  rootHash: Buffer;
  /** The signed note (C2SP), as served in `signedTreeHead` and `inclusionProof.checkpoint`. */
  note: string;
}

interface Pending {
  entry: PreparedEntry;
  resolve: (e: LogEntry) => void;
  reject: (err: unknown) => void;
}

/**
 * The transparency log, in process: verification (`prepareEntry`), sequencing with group commit, proofs and
 * signed checkpoints. Single writer: appends are serialised on the event loop and each batch is one SQLite
 * transaction, so concurrent callers can neither duplicate nor lose an index. A promise from `append`/`submit`
 * resolves only after the entry's transaction has committed.
 */
export class TransparencyLog {
  readonly logName: string;
  /** Decimal tree ID (a random positive int64, fixed at creation). */
  readonly treeId: string;
  /** The tree ID as 16 hex digits: the prefix of Rekor's 80-hex entry IDs. */
  readonly treeIdHex: string;
  readonly origin: string;
  readonly logId: string;
  readonly publicKeyPem: string;
  readonly publicKeyDer: Buffer;

  private readonly tree: MerkleTree;
  private frontier: MerkleFrontier;
  private readonly maxBatch: number;
  private readonly now: () => number;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  private cachedCheckpoint: SignedCheckpoint | undefined;
  private readonly commitListeners = new Set<(size: number) => void>();

  private constructor(
    private readonly store: LogStore,
    private readonly signer: LogSigner,
    options: TransparencyLogOptions,
    treeId: string,
  ) {
    this.logName = options.logName ?? '127.0.0.1';
    this.treeId = treeId;
    this.treeIdHex = BigInt(treeId).toString(16).padStart(16, '0');
    this.origin = `${this.logName} - ${treeId}`;
    this.logId = signer.logId;
    this.publicKeyPem = signer.publicKeyPem;
    this.publicKeyDer = signer.publicKeyDer;
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.now = options.now ?? Date.now;
    this.tree = new MerkleTree(store);
    this.frontier = MerkleFrontier.load(store, store.treeSize());
  }

  static open(options: TransparencyLogOptions): TransparencyLog {
    const logName = options.logName ?? '127.0.0.1';
    if (!isValidKeyName(logName))
      throw new TlogError('TLOG_INVALID_OPTION', `logName '${logName}' must be non-empty, without spaces or '+'`);
    if (options.maxBatch !== undefined && (!Number.isSafeInteger(options.maxBatch) || options.maxBatch < 1)) {
      throw new TlogError('TLOG_INVALID_OPTION', 'maxBatch must be a positive integer');
    }
    mkdirSync(options.dataDir, { recursive: true });
    const signer = options.signer
      ? new LogSigner(options.signer)
      : options.signingKeyPath
        ? LogSigner.fromFile(options.signingKeyPath)
        : LogSigner.loadOrCreate(options.dataDir);
    const store = LogStore.open(join(options.dataDir, DATABASE_FILE));
    try {
      const treeId = store.transaction(() => {
        const logId = store.getMeta('log_id');
        if (logId === undefined) store.setMeta('log_id', signer.logId);
        else if (logId !== signer.logId) {
          throw new TlogError(
            'TLOG_KEY_MISMATCH',
            `this log was created with the signing key whose log ID is ${logId}, but the configured key has log ID ${signer.logId}`,
          );
        }
        let id = store.getMeta('tree_id');
        if (id === undefined) {
          id = randomTreeId();
          store.setMeta('tree_id', id);
          store.setMeta('tree_size', '0');
        }
        return id;
      });
      if (!/^[1-9][0-9]{0,18}$/.test(treeId))
        throw new TlogError('TLOG_STORE_CORRUPT', `stored tree ID '${treeId}' is invalid`);
      return new TransparencyLog(store, signer, { ...options, logName }, treeId);
    } catch (err) {
      store.close();
      throw err;
    }
  }

  /** Committed tree size. */
  get size(): number {
    return this.frontier.size;
  }

  /** Verifies, canonicalizes and appends a proposed entry (Rekor JSON). Rejects with TLOG_ENTRY_EXISTS on a duplicate. */
  append(proposed: unknown): Promise<LogEntry> {
    let prepared: PreparedEntry;
    try {
      prepared = prepareEntry(proposed);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.submit(prepared);
  }

  /**
   * Queues an already verified entry; everything queued in the same event-loop turn is committed in one
   * transaction, then all callers are answered (group commit).
   */
  submit(entry: PreparedEntry): Promise<LogEntry> {
    if (this.closed) return Promise.reject(new TlogError('TLOG_CLOSED', 'the log is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Bulk append of verified entries in one transaction (imports, benchmarks). Throws TLOG_ENTRY_EXISTS if any is
   * already logged (nothing is appended then). Returns the assigned indices.
   */
  appendBatch(entries: readonly PreparedEntry[]): number[] {
    this.assertOpen();
    const { rows, outcomes, frontier } = this.sequence(entries);
    const dup = outcomes.find((o) => o.duplicateOf !== undefined);
    if (dup) throw this.duplicateError(entries[outcomes.indexOf(dup)]!, dup.duplicateOf!);
    this.store.appendBatch(rows, frontier.size);
    this.frontier = frontier;
    this.notifyCommit();
    return rows.map((r) => r.logIndex);
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.commit(batch);
    }
  }

  private sequence(entries: readonly PreparedEntry[]) {
    const frontier = this.frontier.clone();
    const integratedTime = Math.floor(this.now() / 1000);
    const rows: NewEntryRow[] = [];
    const outcomes: Array<{ row?: NewEntryRow; duplicateOf?: number }> = [];
    const inBatch = new Map<string, number>();
    for (const entry of entries) {
      const hex = entry.leafHash.toString('hex');
      const existing = inBatch.get(hex) ?? this.store.indexOfLeafHash(entry.leafHash);
      if (existing !== undefined) {
        outcomes.push({ duplicateOf: existing });
        continue;
      }
      const logIndex = frontier.size;
      const nodes = frontier.append(entry.leafHash).slice(1);
      const body = entry.body.toString('base64');
      const signedEntryTimestamp = this.signer.sign(setPayload({ body, integratedTime, logID: this.logId, logIndex }));
      const row: NewEntryRow = {
        logIndex,
        leafHash: entry.leafHash,
        body: entry.body,
        integratedTime,
        kind: entry.kind,
        apiVersion: entry.apiVersion,
        signedEntryTimestamp,
        indexKeys: entry.indexKeys,
        nodes,
      };
      rows.push(row);
      outcomes.push({ row });
      inBatch.set(hex, logIndex);
    }
    return { rows, outcomes, frontier };
  }

  private commit(batch: Pending[]): void {
    let sequenced: ReturnType<TransparencyLog['sequence']>;
    try {
      sequenced = this.sequence(batch.map((p) => p.entry));
      if (sequenced.rows.length > 0) this.store.appendBatch(sequenced.rows, sequenced.frontier.size);
    } catch (err) {
      // Nothing was committed and the in-memory frontier is untouched: fail the whole batch.
      for (const p of batch) p.reject(err);
      return;
    }
    this.frontier = sequenced.frontier;
    if (sequenced.rows.length > 0) this.notifyCommit();
    let checkpoint: SignedCheckpoint | undefined;
    batch.forEach((p, i) => {
      const outcome = sequenced.outcomes[i]!;
      try {
        if (outcome.row) {
          checkpoint ??= this.checkpoint();
          p.resolve(this.render(outcome.row, checkpoint));
        } else {
          p.reject(this.duplicateError(p.entry, outcome.duplicateOf!));
        }
      } catch (err) {
        p.reject(err);
      }
    });
  }

  /**
   * Tile hook: `listener` runs synchronously after every durable batch commit with the new tree size (the tile
   * writer publishes from there). Returns an unsubscribe function.
   */
  onCommit(listener: (size: number) => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  private notifyCommit(): void {
    for (const l of this.commitListeners) l(this.frontier.size);
  }

  /** Hash of the committed perfect subtree at (level, index); level 0 = leaf hashes (tile writer). */
  nodeHash(level: number, index: number): Buffer {
    this.assertOpen();
    if (!Number.isSafeInteger(index) || index < 0 || (index + 1) * 2 ** level > this.size)
      throw new TlogError('TLOG_INVALID_TREE_SIZE', `node (${level}, ${index}) is outside the committed tree`);
    return this.store.getNode(level, index);
  }

  /** The canonicalized body at `index` (tile writer: entry bundles). */
  leafData(index: number): Buffer {
    const stored = this.store.getEntryByIndex(index);
    if (!stored) throw new TlogError('TLOG_ENTRY_NOT_FOUND', `no entry at index ${index}`);
    return stored.body;
  }

  private duplicateError(entry: PreparedEntry, logIndex: number): TlogError {
    const uuid = entry.leafHash.toString('hex');
    return new TlogError(
      'TLOG_ENTRY_EXISTS',
      `an equivalent entry already exists in the transparency log with UUID ${uuid}`,
      {
        details: { uuid, logIndex },
      },
    );
  }

  /** The signed checkpoint of the current tree (signed once per tree size). */
  checkpoint(): SignedCheckpoint {
    this.assertOpen();
    const size = this.frontier.size;
    if (this.cachedCheckpoint?.size !== size) {
      const rootHash = this.frontier.root();
      const note = signNote(formatCheckpoint({ origin: this.origin, size, rootHash }), this.logName, this.signer);
      this.cachedCheckpoint = { size, rootHash, note };
    }
    return this.cachedCheckpoint;
  }

  rootAt(size: number): Buffer {
    this.assertSize(size);
    return this.tree.rootAt(size);
  }

  inclusionProof(index: number, size: number = this.size): Buffer[] {
    this.assertSize(size);
    return this.tree.inclusionProof(index, size);
  }

  consistencyProof(first: number, second: number = this.size): Buffer[] {
    this.assertSize(second);
    return this.tree.consistencyProof(first, second);
  }

  /** The entry at `index`, with an inclusion proof against the current checkpoint. */
  getByIndex(index: number): LogEntry | undefined {
    this.assertOpen();
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) return undefined;
    const stored = this.store.getEntryByIndex(index);
    return stored && this.render(stored, this.checkpoint());
  }

  /** The entry with this UUID: 64 hex (leaf hash) or Rekor's 80-hex entry ID (16-hex tree ID ‖ leaf hash). */
  getByUuid(uuid: string): LogEntry | undefined {
    this.assertOpen();
    const leaf = this.leafHashFromUuid(uuid);
    const stored = leaf && this.store.getEntryByLeafHash(leaf);
    return stored ? this.render(stored, this.checkpoint()) : undefined;
  }

  /** Leaf hash named by a UUID / entry ID, or undefined when malformed or for another tree. */
  leafHashFromUuid(uuid: string): Buffer | undefined {
    const s = uuid.toLowerCase();
    if (/^[0-9a-f]{64}$/.test(s)) return Buffer.from(s, 'hex');
    if (/^[0-9a-f]{80}$/.test(s) && s.slice(0, 16) === this.treeIdHex) return Buffer.from(s.slice(16), 'hex');
    return undefined;
  }

  /**
   * UUIDs of entries under search-index keys (`sha256:<hex>` artifact digests, `key:<hex>` signer fingerprints),
   * combined with `or` (union) or `and` (intersection), in log order.
   */
  search(keys: readonly string[], operator: 'and' | 'or' = 'or'): string[] {
    this.assertOpen();
    if (keys.length === 0) return [];
    const sets = keys.map((k) => new Set(this.store.search(k, MAX_SEARCH_RESULTS)));
    let result: Set<number>;
    if (operator === 'and') result = new Set([...sets[0]!].filter((i) => sets.every((s) => s.has(i))));
    else result = new Set(sets.flatMap((s) => [...s]));
    return [...result]
      .sort((a, b) => a - b)
      .slice(0, MAX_SEARCH_RESULTS)
      .map((i) => this.store.getNode(0, i).toString('hex'));
  }

  /** Answers pending appends (committing them), then closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.queue.length > 0) this.flush();
    this.closed = true;
    this.store.close();
  }

  private render(stored: StoredEntry, checkpoint: SignedCheckpoint): LogEntry {
    return {
      uuid: stored.leafHash.toString('hex'),
      body: stored.body.toString('base64'),
      integratedTime: stored.integratedTime,
      logID: this.logId,
      logIndex: stored.logIndex,
      verification: {
        signedEntryTimestamp: stored.signedEntryTimestamp.toString('base64'),
        inclusionProof: {
          logIndex: stored.logIndex,
          treeSize: checkpoint.size,
          rootHash: checkpoint.rootHash.toString('hex'),
          hashes: this.tree.inclusionProof(stored.logIndex, checkpoint.size).map((h) => h.toString('hex')),
          checkpoint: checkpoint.note,
        },
      },
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new TlogError('TLOG_CLOSED', 'the log is closed');
  }

  private assertSize(size: number): void {
    this.assertOpen();
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new TlogError('TLOG_INVALID_TREE_SIZE', `tree size ${size} is outside the log (current size ${this.size})`);
    }
  }
}

/** A random positive int64 as a decimal string (Trillian-style tree ID). */
function randomTreeId(): string {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn;
    if (id > 0n) return id.toString();
  }
}
