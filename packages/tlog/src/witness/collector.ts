import { parseCheckpoint, parseSignedNote } from '../checkpoint.js';
import { parseWitnessVkey, verifyCosignatures, type WitnessKey } from '../note.js';
import { TileReader } from '../tiles/reader.js';
import type { TileStore } from '../tiles/store.js';
import { formatAddCheckpoint, TLOG_SIZE_TYPE } from './protocol.js';

/**
 * The log's side of C2SP tlog-witness: wraps the tile store, and after each checkpoint is published asks every
 * operator-configured witness (in the background: appends never wait for a witness) to cosign it, then re-publishes
 * the checkpoint with the cosignature lines that verify under the configured vkey appended. Anything else a witness
 * answers is dropped. A newer checkpoint always wins: a late cosigned copy of an older one is never written.
 */

export interface WitnessEndpoint {
  /** Base URL; the request goes to `<url>/add-checkpoint`. */
  url: string;
  /** The witness's C2SP vkey. */
  vkey: string;
}

export interface CollectorOptions {
  witnesses: readonly WitnessEndpoint[];
  /** Per-request timeout. Default 5 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Called with each witness failure (logging); never throws into the log. */
  onError?: (witness: string, err: unknown) => void;
}

interface Witness {
  url: string;
  key: WitnessKey;
  /** The size this witness last cosigned (its 409 answers correct it). */
  size: number;
  /** Each witness is asked by its own loop, so a slow one never delays the others' cosignatures. */
  running: boolean;
  pending: boolean;
}

export class CosignatureCollector implements TileStore {
  private readonly witnesses: Witness[];
  /** Every checkpoint write, in order (the tile writer's and ours). */
  private writes: Promise<unknown> = Promise.resolve();
  private latest: string | undefined;
  /** Verified cosignature lines on `latest`, by witness URL. */
  private lines = new Map<string, string>();
  private readonly loops = new Set<Promise<void>>();
  private closed = false;

  constructor(
    readonly inner: TileStore,
    private readonly options: CollectorOptions,
  ) {
    this.witnesses = options.witnesses.map((w) => ({
      url: w.url.replace(/\/+$/, ''),
      key: parseWitnessVkey(w.vkey),
      size: 0,
      running: false,
      pending: false,
    }));
  }

  put(path: string, bytes: Uint8Array): Promise<void> {
    return this.inner.put(path, bytes);
  }

  get(path: string): Promise<Buffer | undefined> {
    return this.inner.get(path);
  }

  putCheckpoint(bytes: Uint8Array): Promise<void> {
    const note = Buffer.from(bytes).toString('utf8');
    const done = this.serialized(async () => {
      await this.inner.putCheckpoint(bytes);
      this.latest = note;
      this.lines = new Map();
    });
    void done.then(() => this.kick()).catch(() => undefined);
    return done;
  }

  /** Asks the witnesses about the checkpoint already in the store (a restarted log). */
  async resume(): Promise<void> {
    const stored = await this.inner.get('checkpoint');
    if (!stored) return;
    // The log's own signature line comes first; cosignatures from the previous run are collected afresh.
    const text = stored.toString('utf8');
    const split = text.indexOf('\n\n') + 2;
    const own = text.slice(0, text.indexOf('\n', split) + 1);
    await this.serialized(async () => {
      this.latest ??= own;
    });
    this.kick();
  }

  /**
   * From the published tiles (the log's tree may not serve the new size yet when its checkpoint is written). A
   * fresh reader each time: partial tiles are replaced as the log grows.
   */
  private async proofFromTiles(from: number, to: number): Promise<Buffer[]> {
    const reader = new TileReader((p) => this.inner.get(p));
    await reader.checkpointText();
    return reader.consistencyProof(from, to);
  }

  /** Stops publishing: answers arriving later are dropped (a restarted log may own the store by then). */
  async close(): Promise<void> {
    this.closed = true;
    await this.writes;
  }

  /** Resolves when no witness request is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.loops.size > 0) await Promise.all([...this.loops]);
    await this.writes;
  }

  private serialized(fn: () => Promise<void>): Promise<void> {
    const run = this.writes.then(fn);
    this.writes = run.catch(() => undefined);
    return run;
  }

  private kick(): void {
    if (this.closed) return;
    for (const w of this.witnesses) {
      if (w.running) {
        w.pending = true;
        continue;
      }
      w.running = true;
      const loop = this.loop(w).finally(() => {
        w.running = false;
        this.loops.delete(loop);
      });
      this.loops.add(loop);
    }
  }

  /** Asks one witness about the latest checkpoint; again if a newer one was published meanwhile. */
  private async loop(w: Witness): Promise<void> {
    do {
      w.pending = false;
      const note = this.latest;
      if (note === undefined) return;
      const line = await this.ask(w, note, parseCheckpoint(parseSignedNote(note).note).size);
      if (line !== undefined) await this.addLine(w, note, line);
    } while (w.pending);
  }

  /** Re-publishes the latest checkpoint with every line collected for it (unless a newer one replaced it). */
  private addLine(w: Witness, note: string, line: string): Promise<void> {
    return this.serialized(async () => {
      if (this.closed || this.latest !== note) return;
      this.lines.set(w.url, line);
      await this.inner.putCheckpoint(Buffer.from(note + [...this.lines.values()].join('')));
    });
  }
  /** The witness's verified cosignature line, or undefined (down, refused, or a line that does not verify). */
  private async ask(w: Witness, note: string, size: number): Promise<string | undefined> {
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        if (w.size > size) return undefined;
        const proof = w.size === 0 || w.size === size ? [] : await this.proofFromTiles(w.size, size);
        const res = await (this.options.fetch ?? fetch)(`${w.url}/add-checkpoint`, {
          method: 'POST',
          body: formatAddCheckpoint({ oldSize: w.size, proof, checkpoint: note }),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000),
        });
        const text = await res.text();
        if (res.status === 409 && (res.headers.get('content-type') ?? '').startsWith(TLOG_SIZE_TYPE)) {
          const theirs = Number(text.trim());
          if (!Number.isSafeInteger(theirs) || theirs < 0 || theirs === w.size) return undefined;
          w.size = theirs;
          continue;
        }
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
        return this.accept(w, note, size, text);
      }
    } catch (err) {
      this.options.onError?.(w.url, err);
    }
    return undefined;
  }

  private accept(w: Witness, note: string, size: number, text: string): string | undefined {
    const lines = text.split('\n').filter((l) => l !== '');
    for (const line of lines) {
      try {
        if (verifyCosignatures(`${note}${line}\n`, [w.key]).length === 1) {
          w.size = size;
          return `${line}\n`;
        }
      } catch {
        // A line that names this witness but does not verify: dropped.
      }
    }
    this.options.onError?.(w.url, new Error('no cosignature line that verifies with the configured vkey'));
    return undefined;
  }
}
