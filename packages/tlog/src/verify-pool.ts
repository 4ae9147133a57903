import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TlogError, type TlogErrorCode } from './errors.js';
import { entryPreparation, type PreparedEntry } from './types/index.js';
import { prepareAsync, prepareSync, type Preparation } from './types/preparation.js';
import { v2Preparation } from './types/v2.js';

/** Verification of one proposal, as it crosses the thread boundary (structured clone turns Buffers into Uint8Arrays). */
export type WireResult =
  | { ok: true; entry: PreparedEntry }
  | { ok: false; error: { code?: TlogErrorCode; message: string; details?: Record<string, unknown> | undefined } };
/** Which API's request format: Rekor v1 proposed entries or Rekor v2 CreateEntryRequests. */
export type ProposalApi = 'v1' | 'v2';
export interface VerifyRequest {
  id: number;
  proposals: Array<{ api: ProposalApi; proposal: unknown }>;
}

function preparationFor(api: ProposalApi, proposal: unknown): Preparation {
  return api === 'v2' ? v2Preparation(proposal) : entryPreparation(proposal);
}

/** Verifies and canonicalizes one proposal of either API (what a verifier thread runs). */
export function prepareFor(api: ProposalApi, proposal: unknown): PreparedEntry {
  return prepareSync(preparationFor(api, proposal));
}
export interface VerifyReply {
  id: number;
  results: WireResult[];
}

interface Job {
  api: ProposalApi;
  proposal: unknown;
  resolve: (e: PreparedEntry) => void;
  reject: (err: unknown) => void;
}

interface Lane {
  worker: Worker;
  inflight: Map<number, Job[]>;
}

const WORKER_FILE = fileURLToPath(new URL('./verify-worker.js', import.meta.url));
/** Proposals per message: large enough to amortize a message, small enough to spread a burst over the lanes. */
const MAX_CHUNK = 64;

/** Below this many cores the default is inline verification. */
const MIN_CORES_FOR_THREADS = 4;

/**
 * Default number of verifier threads: none (inline) below 4 cores — measured on 2 cores, handing each proposal to
 * a thread and back (structured clone, wake-ups) cost more CPU than the ~0.1 ms signature check it moved, and the
 * inline log did more appends/s — else all cores but the event loop's and one more (the clients'), at most 4.
 */
export function defaultVerifierThreads(cores: number = availableParallelism()): number {
  if (cores < MIN_CORES_FOR_THREADS) return 0;
  return Math.min(4, cores - 2);
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function revive(result: WireResult): PreparedEntry {
  if (!result.ok) {
    const { code, message, details } = result.error;
    if (code === undefined) throw new TlogError('TLOG_VERIFIER_FAILED', message);
    throw new TlogError(code, message, details ? { details } : undefined);
  }
  const e = result.entry;
  return { ...e, body: toBuffer(e.body), leafHash: toBuffer(e.leafHash) };
}

/**
 * Signature verification batched across requests: proposals arriving in the same event-loop turn (from any number
 * of concurrent requests) go to worker threads as one message per lane, so the event loop keeps parsing requests
 * and committing batches while signatures are checked in parallel. With 0 threads — or when the compiled worker
 * is missing (sources run directly, as in unit tests) — it prepares on the event loop, with message-signature checks
 * on the libuv thread pool (prepareAsync).
 */
export class VerifierPool {
  private readonly lanes: Lane[] = [];
  private queue: Job[] = [];
  private nextId = 1;
  private nextLane = 0;
  private closed = false;

  constructor(threads: number = defaultVerifierThreads()) {
    if (!Number.isSafeInteger(threads) || threads < 0)
      throw new TlogError('TLOG_INVALID_OPTION', 'verifier threads must be a non-negative integer');
    if (!existsSync(WORKER_FILE)) return;
    for (let i = 0; i < threads; i++) this.lanes.push(this.spawn());
  }

  /** Number of worker threads (0 = inline). */
  get threads(): number {
    return this.lanes.length;
  }

  /** Verifies and canonicalizes a proposal (same contract as `prepareEntry` / `prepareV2Entry`). */
  prepare(proposal: unknown, api: ProposalApi = 'v1'): Promise<PreparedEntry> {
    // Inline: the signature checks go to the libuv thread pool, the event loop goes on meanwhile.
    if (this.lanes.length === 0) return prepareAsync(preparationFor(api, proposal));
    if (this.closed) return Promise.reject(new TlogError('TLOG_CLOSED', 'the verifier is closed'));
    return new Promise((resolve, reject) => {
      if (this.queue.push({ api, proposal, resolve, reject }) === 1) setImmediate(() => this.dispatch());
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.lanes.splice(0).map((l) => l.worker.terminate()));
  }

  private dispatch(): void {
    const jobs = this.queue;
    this.queue = [];
    const chunk = Math.min(MAX_CHUNK, Math.ceil(jobs.length / this.lanes.length));
    for (let i = 0; i < jobs.length; i += chunk) {
      const lane = this.lanes[this.nextLane++ % this.lanes.length]!;
      const part = jobs.slice(i, i + chunk);
      const id = this.nextId++;
      lane.inflight.set(id, part);
      const req: VerifyRequest = { id, proposals: part.map((j) => ({ api: j.api, proposal: j.proposal })) };
      try {
        lane.worker.postMessage(req);
      } catch (err) {
        // An uncloneable proposal cannot come from JSON; fail this chunk rather than the lane.
        lane.inflight.delete(id);
        for (const j of part) j.reject(err);
      }
    }
  }

  private spawn(): Lane {
    const worker = new Worker(WORKER_FILE);
    worker.unref();
    const lane: Lane = { worker, inflight: new Map() };
    worker.on('message', (reply: VerifyReply) => {
      const jobs = lane.inflight.get(reply.id);
      lane.inflight.delete(reply.id);
      jobs?.forEach((job, i) => {
        try {
          job.resolve(revive(reply.results[i]!));
        } catch (err) {
          job.reject(err);
        }
      });
    });
    const fail = (err: unknown) => {
      const jobs = [...lane.inflight.values()].flat();
      lane.inflight.clear();
      for (const j of jobs) j.reject(new TlogError('TLOG_VERIFIER_FAILED', 'a verifier thread died', { cause: err }));
      const at = this.lanes.indexOf(lane);
      if (at >= 0 && !this.closed) this.lanes[at] = this.spawn();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`verifier thread exited with ${code}`));
    });
    return lane;
  }
}
