import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { verifyCheckpoint, type Checkpoint } from '../checkpoint.js';
import { TlogError } from '../errors.js';
import { verifyConsistencyProof } from '../merkle.js';
import { cosignCheckpoint, parseWitnessVkey, verifyCosignatures } from '../note.js';
import { fsyncDir } from '../signing-key.js';
import { writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { httpTileFetch, TileReader, type TileFetch } from './reader.js';

/**
 * Following a tiled log from its tiles alone (no log API): the newest checkpoint must be signed by the log key and
 * be a consistent extension of the last one accepted (consistency proof computed from tiles). The witness cosigns
 * what passes; the monitor additionally checks witness cosignatures on the published checkpoint.
 */

export interface TiledState {
  version: 1;
  tilesUrl: string;
  origin: string;
  treeSize: number;
  rootHash: string;
  checkpoint: string;
}

export interface FollowOptions {
  /** Base URL of the tiles (`…/api/v2` on the log, or a static server). */
  tilesUrl: string;
  /** The log's public key (PEM) and key name: the checkpoint must carry a valid signature by it. */
  logPublicKeyPem: string;
  logName: string;
  stateFile: string;
  fetch?: TileFetch;
  /** A last check on the verified signed checkpoint before it is saved (throws to refuse). */
  accept?: (signedCheckpoint: string) => void;
}

export interface FollowResult {
  status: 'initialized' | 'unchanged' | 'extended';
  origin: string;
  treeSize: number;
  rootHash: string;
  previousTreeSize?: number;
  /** The verified signed checkpoint as fetched. */
  checkpoint: string;
}

function readState(path: string): TiledState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TlogError('TLOG_MONITOR_STATE_INVALID', `cannot read state ${path}: ${(err as Error).message}`);
  }
  let s: Partial<TiledState>;
  try {
    s = JSON.parse(text) as Partial<TiledState>;
  } catch {
    throw new TlogError('TLOG_MONITOR_STATE_INVALID', `state ${path} is not JSON`);
  }
  if (
    s.version !== 1 ||
    typeof s.origin !== 'string' ||
    !Number.isSafeInteger(s.treeSize) ||
    typeof s.rootHash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(s.rootHash)
  )
    throw new TlogError('TLOG_MONITOR_STATE_INVALID', `state ${path} is not a tiled-log state (version 1)`);
  return s as TiledState;
}

function writeState(path: string, state: TiledState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** Verifies the newest checkpoint against the state (signature, origin, consistency from tiles); saves it. */
export async function followTiledLog(options: FollowOptions): Promise<FollowResult> {
  const reader = new TileReader(options.fetch ?? httpTileFetch(options.tilesUrl));
  const text = await reader.checkpointText();
  let cp: Checkpoint;
  try {
    cp = verifyCheckpoint(text, options.logPublicKeyPem, options.logName);
  } catch (err) {
    throw new TlogError('TLOG_MONITOR_BAD_SIGNATURE', (err as Error).message, { cause: err });
  }
  const prev = readState(options.stateFile);
  const rootHex = cp.rootHash.toString('hex');
  const result: FollowResult = {
    status: 'initialized',
    origin: cp.origin,
    treeSize: cp.size,
    rootHash: rootHex,
    checkpoint: text,
  };
  if (prev) {
    if (prev.origin !== cp.origin)
      throw new TlogError('TLOG_MONITOR_ORIGIN_MISMATCH', `checkpoint origin '${cp.origin}' is not '${prev.origin}'`);
    if (cp.size < prev.treeSize)
      throw new TlogError('TLOG_MONITOR_SHRINK', `the log shrank from ${prev.treeSize} to ${cp.size} entries`);
    if (cp.size === prev.treeSize && rootHex !== prev.rootHash)
      throw new TlogError('TLOG_MONITOR_FORK', `two different roots for tree size ${cp.size}: the log forked`);
    if (cp.size > prev.treeSize && prev.treeSize > 0) {
      const proof = await reader.consistencyProof(prev.treeSize, cp.size);
      if (!verifyConsistencyProof(prev.treeSize, cp.size, Buffer.from(prev.rootHash, 'hex'), cp.rootHash, proof))
        throw new TlogError(
          'TLOG_MONITOR_FORK',
          `tree ${cp.size} is not an extension of tree ${prev.treeSize} (tiles disagree)`,
        );
    }
    // The tiles must also hold the tree the checkpoint names (a checkpoint without its tiles is refused).
    if (cp.size > 0 && !(await reader.rootAt(cp.size)).equals(cp.rootHash))
      throw new TlogError('TLOG_MONITOR_FORK', `the tiles' root for size ${cp.size} is not the checkpoint root`);
    result.status = cp.size === prev.treeSize ? 'unchanged' : 'extended';
    result.previousTreeSize = prev.treeSize;
  } else if (cp.size > 0 && !(await reader.rootAt(cp.size)).equals(cp.rootHash)) {
    throw new TlogError('TLOG_MONITOR_FORK', `the tiles' root for size ${cp.size} is not the checkpoint root`);
  }
  options.accept?.(text);
  writeState(options.stateFile, {
    version: 1,
    tilesUrl: options.tilesUrl,
    origin: cp.origin,
    treeSize: cp.size,
    rootHash: rootHex,
    checkpoint: text,
  });
  return result;
}

/** The witness: follow the log, then cosign the checkpoint it verified. */
export async function witnessTiledLog(
  options: FollowOptions & { witnessName: string; witnessKey: KeyObject | string; now?: () => number },
): Promise<FollowResult & { cosigned: string }> {
  const key = typeof options.witnessKey === 'string' ? createPrivateKey(options.witnessKey) : options.witnessKey;
  const result = await followTiledLog(options);
  return { ...result, cosigned: cosignCheckpoint(result.checkpoint, options.witnessName, key, options.now?.()) };
}

/** The monitor: follow the log and require `minWitnesses` valid cosignatures from `witnesses` (vkeys). */
export async function monitorTiledLog(
  options: FollowOptions & { witnesses?: readonly string[]; minWitnesses?: number },
): Promise<FollowResult & { witnesses: string[] }> {
  const keys = (options.witnesses ?? []).map(parseWitnessVkey);
  const min = options.minWitnesses ?? 0;
  if (!Number.isSafeInteger(min) || min < 0 || min > keys.length)
    throw new TlogError(
      'TLOG_INVALID_OPTION',
      `min witnesses ${min} must be between 0 and the ${keys.length} witness key(s)`,
    );
  let names: string[] = [];
  const result = await followTiledLog({
    ...options,
    accept: (text) => {
      names = verifyCosignatures(text, keys).map((c) => c.name);
      if (names.length < min)
        throw new TlogError(
          'TLOG_MONITOR_BAD_SIGNATURE',
          `the checkpoint carries ${names.length} valid witness cosignature(s) (${names.join(', ') || 'none'}); ${min} required`,
        );
    },
  });
  return { ...result, witnesses: names };
}
