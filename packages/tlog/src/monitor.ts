import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { dirname } from 'node:path';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { RekorClient } from './client.js';
import { TlogError } from './errors.js';
import { verifyConsistencyProof } from './merkle.js';
import { fsyncDir } from './signing-key.js';

/**
 * Log monitor (a "witness" of one log): keeps the last verified checkpoint in a state file and, on every run,
 * checks that the newest checkpoint is signed by the pinned key and is a consistent extension of the last one
 * (RFC 9162 §2.1.4 consistency proof). A log that shrinks, forks (same size with another root, or a proof that
 * does not verify) or signs with another key fails with a typed error; the state file is then left untouched.
 */

export interface MonitorOptions {
  url: string;
  stateFile: string;
  /** The log key. Without it, the key pinned in the state file is used; on the first run it is fetched and pinned. */
  publicKeyPem?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface MonitorResult {
  status: 'initialized' | 'unchanged' | 'extended';
  url: string;
  origin: string;
  logId: string;
  treeSize: number;
  rootHash: string;
  previousTreeSize?: number;
  previousRootHash?: string;
  /** True when this run pinned the key fetched from the log (trust on first use). */
  keyPinnedFromLog: boolean;
}

export interface MonitorState {
  version: 1;
  url: string;
  publicKeyPem: string;
  logId: string;
  origin: string;
  treeSize: number;
  rootHash: string;
  checkpoint: string;
  verifiedAt: string;
}

const MAX_STATE_BYTES = 256 * 1024;

function stateInvalid(path: string, what: string): never {
  throw new TlogError('TLOG_MONITOR_STATE_INVALID', `monitor state ${path}: ${what}`);
}

function readState(path: string): MonitorState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TlogError('TLOG_MONITOR_STATE_INVALID', `cannot read monitor state ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.length > MAX_STATE_BYTES) stateInvalid(path, 'file too large');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    stateInvalid(path, 'not JSON');
  }
  const s = v as Partial<MonitorState>;
  if (typeof v !== 'object' || v === null || s.version !== 1) stateInvalid(path, 'unknown format (expected version 1)');
  if (typeof s.publicKeyPem !== 'string' || typeof s.logId !== 'string' || typeof s.origin !== 'string')
    stateInvalid(path, 'missing key or origin');
  if (typeof s.checkpoint !== 'string' || !Number.isSafeInteger(s.treeSize) || typeof s.rootHash !== 'string')
    stateInvalid(path, 'missing checkpoint');
  // Never trust the stored summary alone: re-verify the stored checkpoint with the stored key.
  let cp: Checkpoint;
  try {
    cp = verifyCheckpoint(s.checkpoint, s.publicKeyPem);
  } catch (err) {
    throw new TlogError(
      'TLOG_MONITOR_STATE_INVALID',
      `monitor state ${path}: stored checkpoint does not verify: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (cp.size !== s.treeSize || cp.rootHash.toString('hex') !== s.rootHash || cp.origin !== s.origin)
    stateInvalid(path, 'summary differs from the stored checkpoint');
  return s as MonitorState;
}

/** Writes the state atomically: temp file in the same directory, fsync, rename, fsync directory. */
function writeState(path: string, state: MonitorState): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  fsyncDir(dirname(path));
}

function logIdOf(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

function parseKey(pem: string, what: string): KeyObject {
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new TlogError('TLOG_MONITOR_KEY_MISMATCH', `${what} is not a PEM public key`, { cause: err });
  }
}

/** HTTP statuses that mean "not reachable right now" (a proxy or an overloaded log), not "answered wrongly". */
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

/**
 * Runs a request to the log, classifying failures: no connection, a timeout or 502/503/504 is
 * `TLOG_MONITOR_UNREACHABLE` (the CLI exits 3); any other error status or a malformed answer is
 * `TLOG_MONITOR_BAD_RESPONSE` (the log misbehaved: exit 1).
 */
async function remote<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const status = (err as TlogError).details?.status;
    const unreachable =
      (err as { code?: string }).code === 'TLOG_HTTP_ERROR' &&
      (status === undefined || UNAVAILABLE_STATUSES.has(status as number));
    throw new TlogError(
      unreachable ? 'TLOG_MONITOR_UNREACHABLE' : 'TLOG_MONITOR_BAD_RESPONSE',
      `${what}: ${(err as Error).message}`,
      { cause: err, ...(status === undefined ? {} : { details: { status } }) },
    );
  }
}

export async function monitorLog(options: MonitorOptions): Promise<MonitorResult> {
  const client = new RekorClient({
    baseUrl: options.url,
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const previous = readState(options.stateFile);

  // 1. The trusted key: given > pinned > fetched (trust on first use).
  let keyPem: string;
  let keyPinnedFromLog = false;
  if (options.publicKeyPem !== undefined) {
    keyPem = options.publicKeyPem;
    if (previous && logIdOf(parseKey(keyPem, 'the given public key')) !== previous.logId) {
      throw new TlogError(
        'TLOG_MONITOR_KEY_MISMATCH',
        `the given public key (log ID ${logIdOf(parseKey(keyPem, 'key'))}) is not the key pinned in ${options.stateFile} (log ID ${previous.logId})`,
      );
    }
  } else if (previous) {
    keyPem = previous.publicKeyPem;
  } else {
    keyPem = await remote('fetching the log public key', () => client.getPublicKey());
    keyPinnedFromLog = true;
  }
  const key = parseKey(keyPem, 'the log public key');
  const logId = logIdOf(key);

  // 2. The newest checkpoint, signed by that key.
  const info = await remote('fetching the log info', () => client.getLogInfo());
  let current: Checkpoint;
  try {
    current = verifyCheckpoint(info.signedTreeHead, key);
  } catch (err) {
    throw new TlogError(
      'TLOG_MONITOR_BAD_SIGNATURE',
      `checkpoint from ${options.url} is not validly signed by the log key ${logId}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (current.size !== info.treeSize || current.rootHash.toString('hex') !== info.rootHash) {
    throw new TlogError(
      'TLOG_MONITOR_BAD_RESPONSE',
      `log info treeSize/rootHash (${info.treeSize}/${info.rootHash}) differ from its signed checkpoint (${current.size}/${current.rootHash.toString('hex')})`,
    );
  }
  const rootHex = current.rootHash.toString('hex');

  // 3. Consistency with the last verified checkpoint.
  let status: MonitorResult['status'] = 'initialized';
  if (previous) {
    if (current.origin !== previous.origin) {
      throw new TlogError(
        'TLOG_MONITOR_ORIGIN_MISMATCH',
        `checkpoint origin '${current.origin}' differs from the pinned origin '${previous.origin}': this is another log`,
      );
    }
    if (current.size < previous.treeSize) {
      throw new TlogError(
        'TLOG_MONITOR_SHRINK',
        `log shrank from ${previous.treeSize} to ${current.size} entries: the log is rewriting its history`,
        {
          details: { previousTreeSize: previous.treeSize, treeSize: current.size },
        },
      );
    }
    if (current.size === previous.treeSize) {
      if (rootHex !== previous.rootHash) {
        throw new TlogError(
          'TLOG_MONITOR_FORK',
          `log fork: tree size ${current.size} now has root ${rootHex}, previously ${previous.rootHash}`,
          {
            details: { treeSize: current.size, rootHash: rootHex, previousRootHash: previous.rootHash },
          },
        );
      }
      status = 'unchanged';
    } else {
      if (previous.treeSize > 0) {
        const proof = await remote('fetching a consistency proof', () =>
          client.getConsistencyProof(previous.treeSize, current.size),
        );
        const ok =
          proof.rootHash === rootHex &&
          verifyConsistencyProof(
            previous.treeSize,
            current.size,
            Buffer.from(previous.rootHash, 'hex'),
            current.rootHash,
            proof.hashes.map((h) => Buffer.from(h, 'hex')),
          );
        if (!ok) {
          throw new TlogError(
            'TLOG_MONITOR_FORK',
            `log fork: the tree of size ${current.size} (root ${rootHex}) is not a consistent extension of the verified tree of size ${previous.treeSize} (root ${previous.rootHash})`,
            {
              details: {
                treeSize: current.size,
                rootHash: rootHex,
                previousTreeSize: previous.treeSize,
                previousRootHash: previous.rootHash,
              },
            },
          );
        }
      }
      status = 'extended';
    }
  }

  // 4. All checks passed: remember this checkpoint.
  writeState(options.stateFile, {
    version: 1,
    url: options.url,
    publicKeyPem: key.export({ type: 'spki', format: 'pem' }).toString(),
    logId,
    origin: current.origin,
    treeSize: current.size,
    rootHash: rootHex,
    checkpoint: info.signedTreeHead,
    verifiedAt: new Date().toISOString(),
  });
  return {
    status,
    url: options.url,
    origin: current.origin,
    logId,
    treeSize: current.size,
    rootHash: rootHex,
    ...(previous ? { previousTreeSize: previous.treeSize, previousRootHash: previous.rootHash } : {}),
    keyPinnedFromLog,
  };
}
