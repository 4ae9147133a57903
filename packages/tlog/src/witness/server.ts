import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { listen } from '@airlock/core';
import { parseCheckpoint, parseSignedNote, toPublicKey, verifyCheckpoint, type Checkpoint } from '../checkpoint.js';
import { TlogError } from '../errors.js';
import { verifyConsistencyProof } from '../merkle.js';
import { cosignCheckpoint } from '../note.js';
import { MAX_ADD_CHECKPOINT_BYTES, parseAddCheckpoint, TLOG_SIZE_TYPE, type AddCheckpointRequest } from './protocol.js';

/**
 * A C2SP tlog-witness HTTP endpoint (`POST /add-checkpoint`): for each operator-configured log (origin + key) it
 * keeps the latest checkpoint it cosigned, and cosigns a new one only when it is signed by that log and is a
 * consistent extension (RFC 9162 consistency proof). Answers: 200 with the cosignature line; 409 with its own size
 * when the client's `old` size is not the witness's; 404 unknown origin; 403 bad log signature; 422 bad proof.
 */

export interface WitnessedLog {
  origin: string;
  /** The log's public key (PEM). */
  publicKeyPem: string;
  /** The log's checkpoint key name, if pinned. */
  keyName?: string;
}

export interface WitnessServerOptions {
  name: string;
  /** Ed25519 private key (PEM or KeyObject). */
  key: KeyObject | string;
  logs: readonly WitnessedLog[];
  /** JSON file keeping the latest cosigned size and root per origin (survives restarts). */
  stateFile: string;
  host?: string;
  port?: number;
}

export interface RunningWitness {
  url: string;
  close(): Promise<void>;
}

interface LogState {
  size: number;
  rootHash: string;
}

interface Answer {
  status: number;
  body: string;
  type?: string;
}

function loadState(path: string): Map<string, LogState> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const parsed = JSON.parse(text) as { version?: number; logs?: Record<string, LogState> };
  if (parsed.version !== 1 || typeof parsed.logs !== 'object' || parsed.logs === null)
    throw new TlogError('TLOG_MONITOR_STATE_INVALID', `witness state ${path}: unknown format`);
  return new Map(Object.entries(parsed.logs));
}

async function saveState(path: string, state: Map<string, LogState>): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.write(`${JSON.stringify({ version: 1, logs: Object.fromEntries(state) }, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

class Witness {
  private readonly state: Map<string, LogState>;
  private readonly key: KeyObject;
  /** One request at a time: the state is read, checked and advanced atomically. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: WitnessServerOptions) {
    this.state = loadState(options.stateFile);
    this.key = typeof options.key === 'string' ? createPrivateKey(options.key) : options.key;
    for (const log of options.logs) toPublicKey(log.publicKeyPem);
  }

  add(body: string): Promise<Answer> {
    const run = this.queue.then(() => this.addNow(body));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async addNow(body: string): Promise<Answer> {
    let req: AddCheckpointRequest;
    let cp: Checkpoint;
    try {
      req = parseAddCheckpoint(body);
      cp = parseCheckpoint(parseSignedNote(req.checkpoint).note);
    } catch (err) {
      return { status: 400, body: `${(err as Error).message}\n` };
    }
    const log = this.options.logs.find((l) => l.origin === cp.origin);
    if (!log) return { status: 404, body: 'unknown log origin\n' };
    try {
      verifyCheckpoint(req.checkpoint, log.publicKeyPem, log.keyName);
    } catch {
      return { status: 403, body: 'checkpoint is not signed by the log key\n' };
    }
    if (req.oldSize > cp.size) return { status: 400, body: 'old size exceeds the checkpoint size\n' };
    const known = this.state.get(cp.origin) ?? { size: 0, rootHash: '' };
    if (req.oldSize !== known.size) return { status: 409, body: `${known.size}\n`, type: TLOG_SIZE_TYPE };
    const root = cp.rootHash.toString('hex');
    if (!this.consistent(known, cp, req.proof)) return { status: 422, body: 'consistency proof does not verify\n' };
    if (known.size !== cp.size || known.rootHash !== root) {
      this.state.set(cp.origin, { size: cp.size, rootHash: root });
      await saveState(this.options.stateFile, this.state);
    }
    const cosigned = cosignCheckpoint(req.checkpoint, this.options.name, this.key);
    return { status: 200, body: cosigned.slice(req.checkpoint.length) };
  }

  private consistent(known: LogState, cp: Checkpoint, proof: Buffer[]): boolean {
    if (known.size === 0) return proof.length === 0;
    const old = Buffer.from(known.rootHash, 'hex');
    if (known.size === cp.size) return proof.length === 0 && old.equals(cp.rootHash);
    return verifyConsistencyProof(known.size, cp.size, old, cp.rootHash, proof);
  }
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_ADD_CHECKPOINT_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, a: Answer): void {
  res.writeHead(a.status, { 'Content-Type': a.type ?? 'text/plain; charset=utf-8' });
  res.end(a.body);
}

async function handle(witness: Witness, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/add-checkpoint') return reply(res, { status: 404, body: 'not found\n' });
  if (req.method !== 'POST') return reply(res, { status: 405, body: 'POST only\n' });
  const body = await readBody(req);
  if (body === undefined) return reply(res, { status: 413, body: 'request too large\n' });
  reply(res, await witness.add(body));
}

export async function startWitnessServer(options: WitnessServerOptions): Promise<RunningWitness> {
  const witness = new Witness(options);
  const server = createServer((req, res) => {
    handle(witness, req, res).catch((err: unknown) => {
      console.error('witness: internal error', err);
      if (!res.headersSent) reply(res, { status: 500, body: 'internal error\n' });
      else res.destroy();
    });
  });
  const { url } = await listen(server, { ...(options.host ? { host: options.host } : {}), port: options.port ?? 0 });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
