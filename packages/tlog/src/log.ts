import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { formatCheckpoint, isValidKeyName, signNote } from './checkpoint.js';
import { setPayload, type LogEntry } from './entry.js';
import { TlogError } from './errors.js';
import { Linger } from './linger.js';
import {
  consistencyPlan,
  decompose,
  inclusionPlan,
  MerkleFrontier,
  resolvePlans,
  rootPlan,
  type NodeCoord,
} from './merkle.js';
import { LogSigner, type KeySigner } from './signing-key.js';
import { SqliteLogStorage, type LogStorage, type NewEntryRow, type StoredEntry } from './storage.js';
import { type PreparedEntry } from './types/index.js';
import { HASHEDREKORD_V2_API_VERSION } from './types/v2.js';
import { VerifierPool, type ProposalApi } from './verify-pool.js';

export const DATABASE_FILE = 'tlog.sqlite';
const DEFAULT_MAX_BATCH = 1000;
const DEFAULT_COMMIT_LINGER_MS = 1;
const MAX_SEARCH_RESULTS = 10_000;
/** The stored SET of an entry that has none (Rekor v2). */
const NO_SET = Buffer.alloc(0);

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
  /** Metadata storage (e.g. PostgreSQL); default SQLite `<dataDir>/tlog.sqlite`. The log closes it on close(). */
  storage?: LogStorage;
  /**
   * Entries per commit (group commit): per written transaction, and per sync that makes written batches durable.
   * 1 = one transaction and one fsync per entry (for measurements). Default 1000.
   */
  maxBatch?: number;
  /**
   * Once callers are seen to be concurrent (two entries in one batch, or one queued while a batch committed), each
   * next commit waits this long for more entries (or until as many are queued as the last batch held, at least 2 and
   * at most `maxBatch`): fewer, larger batches, so fewer fsyncs and WAL pages per entry. A lone caller's entries
   * commit at once. 0 = never wait. Default 1 ms.
   */
  commitLingerMs?: number;
  /** Called after each durable batch, before its callers are answered (tiles are written here). */
  onBatchCommitted?: BatchCommittedHook;
  /** Worker threads verifying signatures of `append`ed proposals in batches; 0 (default) = inline. */
  verifierThreads?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

export interface SignedCheckpoint {
  size: number;
  rootHash: Buffer;
  /** The signed note (C2SP), as served in `signedTreeHead` and `inclusionProof.checkpoint`. */
  note: string;
}

/** One leaf of a committed batch. */
export interface CommittedLeaf {
  logIndex: number;
  leafHash: Buffer;
  /** Canonical entry body (the leaf data: leafHash = SHA-256(0x00 ‖ body)). */
  body: Buffer;
  kind: string;
  apiVersion: string;
  integratedTime: number;
}

/** A batch that is durable in storage: leaves [treeSize − leaves.length, treeSize), in index order. */
export interface CommittedBatch {
  treeSize: number;
  rootHash: Buffer;
  leaves: readonly CommittedLeaf[];
  /** The log's signed checkpoint of `treeSize`, not yet served to anyone. */
  checkpoint: SignedCheckpoint;
}

/**
 * Runs after each durable batch, one batch at a time, in order. The log serves the new tree size (checkpoint,
 * responses) only after the returned promise resolves. If it rejects, that batch's callers get TLOG_PUBLISH_FAILED
 * (their entries ARE durably logged) and the log refuses further appends until reopened: a consumer that fell
 * behind (tiles) catches up at open from `log.size` and `log.getEntryRange`.
 */
export type BatchCommittedHook = (batch: CommittedBatch) => void | Promise<void>;

interface Pending {
  entry: PreparedEntry;
  resolve: (e: LogEntry) => void;
  reject: (err: unknown) => void;
}

interface Sequenced {
  rows: NewEntryRow[];
  outcomes: Array<{ row?: NewEntryRow; duplicateOf?: number }>;
  frontier: MerkleFrontier;
}

/** A batch written to storage (then durable) whose callers wait for its publication. */
interface Staged {
  batch: Pending[];
  sequenced: Sequenced;
}

/**
 * The transparency log, in process: sequencing with group commit, proofs and signed checkpoints. A pipeline of
 * three stages, each in order: the single writer sequences and writes one batch at a time (entries submitted
 * meanwhile form the next batch, so a batch's size adapts to the load); the syncer makes written batches durable
 * (one storage `sync`, i.e. fdatasync, covers every batch written before it started, and runs while the next
 * batch is written); the publisher (checkpoint signing and `onBatchCommitted`, i.e. tiles) publishes every batch
 * that became durable meanwhile at once (one checkpoint, one tile write). A promise from `append`/`submit`
 * resolves only after the entry's batch is durable and published. Every read is bounded by the published size.
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

  private readonly maxBatch: number;
  private readonly commitLingerMs: number;
  /** The last committer run (drain) saw concurrent callers: the next one gathers from its first batch. */
  private concurrentCallers = false;
  /** The current commit's wait for more entries (ended early when `gatherTarget` are queued, or on close). */
  private readonly commitLinger = new Linger();
  /** Entries in the last committed batch: under steady load, the callers that come back for the next one. */
  private lastBatchSize = 0;
  /** Queue length that ends the current linger (maxBatch when none is running). */
  private gatherTarget: number;
  private readonly now: () => number;
  private readonly hook: BatchCommittedHook | undefined;
  private readonly verifier: VerifierPool;
  private queue: Pending[] = [];
  private committing: Promise<void> | undefined;
  /** Wakes the committer waiting for an entry while earlier batches sync or publish. */
  private entryQueued: (() => void) | undefined;
  /** Written batches awaiting a sync, in order, and the syncer working on them. */
  private written: Staged[] = [];
  private syncing: Promise<void> | undefined;
  /** Durable batches awaiting publication, in order, and the publisher working on them. */
  private staged: Staged[] = [];
  private publishing: Promise<void> | undefined;
  /** The tree after the last batch durable in storage (ahead of `frontier` while a publication is pending). */
  private tail: MerkleFrontier;
  private closed = false;
  private publishFailure: unknown;
  /** A storage sync failed: written batches may or may not be durable, so nothing more is written or published. */
  private syncFailure: unknown;
  private cachedCheckpoint: SignedCheckpoint | undefined;

  private constructor(
    private readonly store: LogStorage,
    private readonly signer: LogSigner,
    private frontier: MerkleFrontier,
    options: TransparencyLogOptions & { logName: string },
    treeId: string,
  ) {
    this.logName = options.logName;
    this.treeId = treeId;
    this.treeIdHex = BigInt(treeId).toString(16).padStart(16, '0');
    this.origin = `${this.logName} - ${treeId}`;
    this.logId = signer.logId;
    this.publicKeyPem = signer.publicKeyPem;
    this.publicKeyDer = signer.publicKeyDer;
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.commitLingerMs = options.commitLingerMs ?? DEFAULT_COMMIT_LINGER_MS;
    this.gatherTarget = this.maxBatch;
    this.now = options.now ?? Date.now;
    this.hook = options.onBatchCommitted;
    this.tail = frontier;
    this.verifier = new VerifierPool(options.verifierThreads ?? 0);
  }

  static async open(options: TransparencyLogOptions): Promise<TransparencyLog> {
    const logName = options.logName ?? '127.0.0.1';
    if (!isValidKeyName(logName))
      throw new TlogError('TLOG_INVALID_OPTION', `logName '${logName}' must be non-empty, without spaces or '+'`);
    if (options.maxBatch !== undefined && (!Number.isSafeInteger(options.maxBatch) || options.maxBatch < 1)) {
      throw new TlogError('TLOG_INVALID_OPTION', 'maxBatch must be a positive integer');
    }
    const linger = options.commitLingerMs;
    if (linger !== undefined && !(Number.isFinite(linger) && linger >= 0))
      throw new TlogError('TLOG_INVALID_OPTION', 'commitLingerMs must be a non-negative number');
    mkdirSync(options.dataDir, { recursive: true });
    const signer = options.signer
      ? new LogSigner(options.signer)
      : options.signingKeyPath
        ? LogSigner.fromFile(options.signingKeyPath)
        : LogSigner.loadOrCreate(options.dataDir);
    const store = options.storage ?? (await SqliteLogStorage.open(join(options.dataDir, DATABASE_FILE)));
    try {
      const { treeId } = await store.initialize({ logId: signer.logId, treeId: randomTreeId() });
      if (!/^[1-9][0-9]{0,18}$/.test(treeId))
        throw new TlogError('TLOG_STORE_CORRUPT', `stored tree ID '${treeId}' is invalid`);
      const size = await store.treeSize();
      const edge = decompose(size);
      const hashes = await store.getNodes(edge);
      const frontier = MerkleFrontier.fromEdge(
        edge.map((c, i) => ({ ...c, hash: hashes[i]! })),
        size,
      );
      return new TransparencyLog(store, signer, frontier, { ...options, logName }, treeId);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Durable (and published) tree size. */
  get size(): number {
    return this.frontier.size;
  }

  /** Verifies, canonicalizes and appends a proposed entry (Rekor JSON). Rejects with TLOG_ENTRY_EXISTS on a duplicate. */
  async append(proposed: unknown): Promise<LogEntry> {
    return this.submit(await this.prepare(proposed));
  }

  /** Verifies and canonicalizes a proposal (v1 proposed entry or v2 CreateEntryRequest), on a verifier thread when configured. */
  prepare(proposed: unknown, api: ProposalApi = 'v1'): Promise<PreparedEntry> {
    return this.verifier.prepare(proposed, api);
  }

  /**
   * Queues an already verified entry. It joins the next batch: everything queued while the previous batch
   * commits is committed together (group commit), then all its callers are answered.
   */
  submit(entry: PreparedEntry): Promise<LogEntry> {
    if (this.closed) return Promise.reject(new TlogError('TLOG_CLOSED', 'the log is closed'));
    const failure = this.failure();
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      if (this.queue.push({ entry, resolve, reject }) >= this.gatherTarget) this.commitLinger.wake();
      this.entryQueued?.();
      this.committing ??= new Promise<void>((done) => setImmediate(done)).then(() => this.drain());
    });
  }

  /**
   * Bulk append of verified entries as one batch (imports, tests). Throws TLOG_ENTRY_EXISTS if any is already
   * logged (nothing is appended then). Returns the assigned indices.
   */
  async appendBatch(entries: readonly PreparedEntry[]): Promise<number[]> {
    this.assertOpen();
    await this.committing;
    this.assertWritable();
    const sequenced = await this.sequence(entries);
    const dup = sequenced.outcomes.find((o) => o.duplicateOf !== undefined);
    if (dup) throw this.duplicateError(entries[sequenced.outcomes.indexOf(dup)]!, dup.duplicateOf!);
    if (sequenced.rows.length > 0) {
      await this.store.writeBatch(sequenced.rows, sequenced.frontier.size);
      this.tail = sequenced.frontier;
      await this.syncStore();
    }
    await this.announce(sequenced.rows, sequenced.frontier);
    return sequenced.rows.map((r) => r.logIndex);
  }

  /**
   * The single committer: writes one batch at a time until the queue is empty and every written batch is durable
   * and published (close() waits for it). A batch is handed to the syncer once written, so the next one is
   * gathered and written while it syncs.
   */
  private async drain(): Promise<void> {
    try {
      // Batches gather once callers are seen to be concurrent (here or in the previous run); a lone caller's
      // entries, one after another, commit at once.
      let seen = false;
      for (;;) {
        if (this.queue.length === 0) {
          if (!this.syncing && !this.publishing) break;
          await this.nextEvent();
          continue;
        }
        if (seen || this.concurrentCallers) await this.gather();
        const batch = this.queue.splice(0, this.maxBatch);
        this.lastBatchSize = batch.length;
        await this.commit(batch);
        // Two callers in one batch, or one queued while it was written: not a lone caller.
        seen ||= batch.length > 1 || this.queue.length > 0;
      }
      this.concurrentCallers = seen;
    } finally {
      this.committing = undefined;
    }
  }

  /** Resolves when an entry is queued or the sync or publication in flight ends. */
  private async nextEvent(): Promise<void> {
    const queued = new Promise<void>((resolve) => (this.entryQueued = resolve));
    try {
      // (An undefined in a race would win it at once: only the stages in flight.)
      await Promise.race([queued, ...[this.syncing, this.publishing].filter((p) => p !== undefined)]);
    } finally {
      this.entryQueued = undefined;
    }
  }

  /**
   * Group commit under load: entries queued behind a commit mean more are on their way (the answered callers come
   * back, others are being read): wait up to `commitLingerMs` for them, or until as many are queued as the last
   * batch held (at least 2; at most maxBatch). Steady closed-loop callers all come back well within the linger, and
   * waiting on after the last of them has arrived only delays their batch (and its fsync) for nobody. Then one more
   * event-loop turn: requests that have already arrived (read in this turn, not yet parsed) join the batch too —
   * without it a batch was cut as soon as its target was reached, mid-turn, and under 8 closed-loop callers the
   * batches stayed at 2 entries, each paying a transaction and a checkpoint signature (measured: 8 entries with it).
   */
  private async gather(): Promise<void> {
    if (this.commitLingerMs === 0) return;
    const target = Math.min(this.maxBatch, Math.max(2, this.lastBatchSize));
    if (this.queue.length < target) {
      this.gatherTarget = target;
      try {
        await this.commitLinger.wait(this.commitLingerMs);
      } finally {
        this.gatherTarget = this.maxBatch;
      }
    }
    if (this.queue.length < this.maxBatch) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private async sequence(entries: readonly PreparedEntry[]): Promise<Sequenced> {
    const frontier = this.tail.clone();
    const integratedTime = Math.floor(this.now() / 1000);
    const existing = await this.store.findLeafHashes(entries.map((e) => e.leafHash));
    const rows: NewEntryRow[] = [];
    const outcomes: Sequenced['outcomes'] = [];
    const sets: Array<Promise<Buffer>> = [];
    for (const entry of entries) {
      const hex = entry.leafHash.toString('hex');
      const duplicateOf = existing.get(hex);
      if (duplicateOf !== undefined) {
        outcomes.push({ duplicateOf });
        continue;
      }
      const logIndex = frontier.size;
      const nodes = frontier.append(entry.leafHash).slice(1);
      sets.push(this.setFor(entry, integratedTime, logIndex));
      const row: NewEntryRow = {
        logIndex,
        leafHash: entry.leafHash,
        body: entry.body,
        integratedTime,
        kind: entry.kind,
        apiVersion: entry.apiVersion,
        signedEntryTimestamp: NO_SET,
        indexKeys: entry.indexKeys,
        nodes,
      };
      rows.push(row);
      outcomes.push({ row });
      existing.set(hex, logIndex);
    }
    // The batch's SETs are signed in parallel on the thread pool, not one after another on the event loop.
    (await Promise.all(sets)).forEach((set, i) => (rows[i]!.signedEntryTimestamp = set));
    return { rows, outcomes, frontier };
  }

  /**
   * Makes durable rows visible, in order: signs the checkpoint, runs the hook (tiles), then serves the new size.
   * After a failed publication nothing more is published (later callers get TLOG_PUBLISH_FAILED).
   */
  private async announce(rows: readonly NewEntryRow[], frontier: MerkleFrontier): Promise<SignedCheckpoint> {
    if (this.publishFailure !== undefined) {
      this.frontier = frontier; // durable: reads see it, as below
      throw this.publishError();
    }
    if (rows.length === 0) return this.checkpoint();
    const checkpoint = this.signCheckpoint(frontier.size, frontier.root());
    try {
      await this.hook?.({
        treeSize: frontier.size,
        rootHash: checkpoint.rootHash,
        checkpoint,
        leaves: rows.map((r) => ({
          logIndex: r.logIndex,
          leafHash: r.leafHash,
          body: r.body,
          kind: r.kind,
          apiVersion: r.apiVersion,
          integratedTime: r.integratedTime,
        })),
      });
    } catch (err) {
      this.publishFailure = err;
      throw this.publishError();
    } finally {
      // The batch is durable whatever the hook did: reads must see it (and the next batch must extend it).
      this.frontier = frontier;
      this.cachedCheckpoint = checkpoint;
    }
    return checkpoint;
  }

  /** Stage 1: sequence and write one batch, then hand it to the syncer (not awaited). */
  private async commit(batch: Pending[]): Promise<void> {
    let sequenced: Sequenced;
    try {
      this.assertWritable();
      sequenced = await this.sequence(batch.map((p) => p.entry));
      if (sequenced.rows.length > 0) await this.store.writeBatch(sequenced.rows, sequenced.frontier.size);
      this.assertWritable(); // a sync that failed meanwhile may have covered this batch: its state is unknown
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.tail = sequenced.frontier;
    this.written.push({ batch, sequenced });
    this.syncing ??= this.syncWritten();
  }

  /**
   * Stage 2: one storage sync at a time, each covering every batch written before it started; durable batches go
   * to the publisher in order. A failed sync rejects its batches and every later one, and stops the log.
   */
  private async syncWritten(): Promise<void> {
    try {
      while (this.written.length > 0 && this.syncFailure === undefined) {
        const group = this.written.splice(0, this.syncGroupLength());
        try {
          await this.syncStore();
        } catch (err) {
          for (const g of [...group, ...this.written.splice(0)]) for (const p of g.batch) p.reject(err);
          return;
        }
        this.staged.push(...group);
        this.publishing ??= this.publishStaged();
      }
    } finally {
      this.syncing = undefined;
    }
  }

  /** How many written batches the next sync acknowledges: at least one, at most `maxBatch` entries in all. */
  private syncGroupLength(): number {
    let n = 0;
    for (let entries = 0; n < this.written.length; n++) {
      entries += this.written[n]!.batch.length;
      if (n > 0 && entries > this.maxBatch) break;
    }
    return n;
  }

  /** `store.sync()`; a failure stops the log (TLOG_STORE_FAILED from then on). */
  private async syncStore(): Promise<void> {
    try {
      await this.store.sync();
    } catch (err) {
      this.syncFailure ??= err;
      throw this.syncError();
    }
  }

  /** Stage 3: publishes every staged batch at once (one checkpoint and one hook call), until none is left. */
  private async publishStaged(): Promise<void> {
    try {
      while (this.staged.length > 0) await this.publishGroup(this.staged.splice(0));
    } finally {
      this.publishing = undefined;
    }
  }

  /** Publishes consecutive durable batches, then answers their callers with proofs against the new checkpoint. */
  private async publishGroup(group: readonly Staged[]): Promise<void> {
    const rows = group.flatMap((g) => g.sequenced.rows);
    const frontier = group[group.length - 1]!.sequenced.frontier;
    let checkpoint: SignedCheckpoint;
    let proofs: Buffer[][];
    try {
      checkpoint = await this.announce(rows, frontier);
      proofs = await this.proofsFor(
        rows.map((r) => r.logIndex),
        checkpoint.size,
      );
    } catch (err) {
      for (const g of group) for (const p of g.batch) p.reject(err);
      return;
    }
    const proofOf = new Map(rows.map((r, i) => [r.logIndex, proofs[i]!]));
    for (const { batch, sequenced } of group) {
      batch.forEach((p, i) => {
        const outcome = sequenced.outcomes[i]!;
        if (outcome.row) p.resolve(this.render(outcome.row, checkpoint, proofOf.get(outcome.row.logIndex)!));
        else p.reject(this.duplicateError(p.entry, outcome.duplicateOf!));
      });
    }
  }

  /**
   * The signed entry timestamp of a v1 entry. Rekor v2 entries carry none (rekor-tiles issues none; their time
   * comes from a TSA), so none is signed for them: one ECDSA signature less per v2 entry. Stored empty.
   */
  private setFor(entry: PreparedEntry, integratedTime: number, logIndex: number): Promise<Buffer> {
    if (entry.apiVersion === HASHEDREKORD_V2_API_VERSION) return Promise.resolve(NO_SET);
    const body = entry.body.toString('base64');
    return this.signer.signAsync(setPayload({ body, integratedTime, logID: this.logId, logIndex }));
  }

  /** Why appends are refused (a failed sync or publication), if they are. */
  private failure(): TlogError | undefined {
    if (this.syncFailure !== undefined) return this.syncError();
    if (this.publishFailure !== undefined) return this.publishError();
    return undefined;
  }

  private assertWritable(): void {
    const failure = this.failure();
    if (failure) throw failure;
  }

  private syncError(): TlogError {
    return new TlogError(
      'TLOG_STORE_FAILED',
      'the log could not make written entries durable; it accepts no appends until restarted',
      { cause: this.syncFailure },
    );
  }

  private publishError(): TlogError {
    return new TlogError(
      'TLOG_PUBLISH_FAILED',
      'the log could not publish a committed batch (entries are logged); it accepts no appends until restarted',
      { cause: this.publishFailure },
    );
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

  private signCheckpoint(size: number, rootHash: Buffer): SignedCheckpoint {
    const note = signNote(formatCheckpoint({ origin: this.origin, size, rootHash }), this.logName, this.signer);
    return { size, rootHash, note };
  }

  /** The signed checkpoint of the current tree (signed once per tree size). */
  checkpoint(): SignedCheckpoint {
    this.assertOpen();
    const size = this.frontier.size;
    if (this.cachedCheckpoint?.size !== size) this.cachedCheckpoint = this.signCheckpoint(size, this.frontier.root());
    return this.cachedCheckpoint;
  }

  async rootAt(size: number): Promise<Buffer> {
    this.assertSize(size);
    if (size === this.size) return this.frontier.root();
    const [[root]] = await resolvePlans(this.store, [[rootPlan(size)]]);
    return root!;
  }

  async inclusionProof(index: number, size: number = this.size): Promise<Buffer[]> {
    this.assertSize(size);
    const [proof] = await resolvePlans(this.store, [inclusionPlan(index, size)]);
    return proof!;
  }

  /** Inclusion proofs of several leaves in one tree, with one storage read. */
  private async proofsFor(indices: readonly number[], size: number): Promise<Buffer[][]> {
    return resolvePlans(
      this.store,
      indices.map((i) => inclusionPlan(i, size)),
    );
  }

  async consistencyProof(first: number, second: number = this.size): Promise<Buffer[]> {
    this.assertSize(second);
    const [proof] = await resolvePlans(this.store, [consistencyPlan(first, second)]);
    return proof!;
  }

  /** The entry at `index`, with an inclusion proof against the current checkpoint. */
  async getByIndex(index: number): Promise<LogEntry | undefined> {
    this.assertOpen();
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) return undefined;
    const stored = await this.store.getEntryByIndex(index);
    return stored && this.renderWithProof(stored);
  }

  /** The entry with this UUID: 64 hex (leaf hash) or Rekor's 80-hex entry ID (16-hex tree ID ‖ leaf hash). */
  async getByUuid(uuid: string): Promise<LogEntry | undefined> {
    this.assertOpen();
    const leaf = this.leafHashFromUuid(uuid);
    const stored = leaf && (await this.store.getEntryByLeafHash(leaf));
    // A row of a batch still committing is not logged yet.
    return stored && stored.logIndex < this.size ? this.renderWithProof(stored) : undefined;
  }

  /** Stored entries [start, start+count) within the durable tree (tile catch-up). */
  async getEntryRange(start: number, count: number): Promise<StoredEntry[]> {
    this.assertOpen();
    const end = Math.min(this.size, start + count);
    if (!Number.isSafeInteger(start) || start < 0 || end <= start) return [];
    return this.store.getEntryRange(start, end - start);
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
  async search(keys: readonly string[], operator: 'and' | 'or' = 'or'): Promise<string[]> {
    this.assertOpen();
    if (keys.length === 0) return [];
    const size = this.size;
    const lists = await Promise.all(keys.map((k) => this.store.search(k, MAX_SEARCH_RESULTS)));
    const sets = lists.map((l) => new Set(l.filter((i) => i < size)));
    let result: Set<number>;
    if (operator === 'and') result = new Set([...sets[0]!].filter((i) => sets.every((s) => s.has(i))));
    else result = new Set(sets.flatMap((s) => [...s]));
    const indices = [...result].sort((a, b) => a - b).slice(0, MAX_SEARCH_RESULTS);
    const coords: NodeCoord[] = indices.map((index) => ({ level: 0, index }));
    return (await this.store.getNodes(coords)).map((h) => h.toString('hex'));
  }

  /** Commits and answers pending appends, then closes the storage. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.commitLinger.wake(); // no lingering for entries that will not be joined
    while (this.committing) await this.committing;
    this.closed = true;
    await this.verifier.close();
    await this.store.close();
  }

  private async renderWithProof(stored: StoredEntry): Promise<LogEntry> {
    const checkpoint = this.checkpoint();
    const [proof] = await this.proofsFor([stored.logIndex], checkpoint.size);
    return this.render(stored, checkpoint, proof!);
  }

  private render(stored: StoredEntry, checkpoint: SignedCheckpoint, proof: readonly Buffer[]): LogEntry {
    return {
      uuid: stored.leafHash.toString('hex'),
      body: stored.body.toString('base64'),
      integratedTime: stored.integratedTime,
      logID: this.logId,
      logIndex: stored.logIndex,
      verification: {
        ...(stored.signedEntryTimestamp.length > 0
          ? { signedEntryTimestamp: stored.signedEntryTimestamp.toString('base64') }
          : {}),
        inclusionProof: {
          logIndex: stored.logIndex,
          treeSize: checkpoint.size,
          rootHash: checkpoint.rootHash.toString('hex'),
          hashes: proof.map((h) => h.toString('hex')),
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
