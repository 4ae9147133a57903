import { canonicalBytes } from '@airlock/core';
import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { toPublicKey, verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { TlogError } from './errors.js';
import { hashLeaf, verifyInclusionProof } from './merkle.js';

/** `verification.inclusionProof` of a Rekor v1 log entry (hashes hex, leaf → root; index tree-local). */
export interface InclusionProof {
  logIndex: number;
  treeSize: number;
  rootHash: string;
  hashes: string[];
  checkpoint: string;
}

/**
 * A Rekor v1 log entry: the value under the UUID key in `{"<uuid>": {...}}` responses, plus that UUID. `body` is
 * base64 of the canonicalized entry; `logID` hex SHA-256 of the log's DER SPKI; `integratedTime` Unix seconds.
 */
export interface LogEntry {
  uuid: string;
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification?: {
    signedEntryTimestamp?: string;
    inclusionProof?: InclusionProof;
  };
}

/** The bytes the SET signs: RFC 8785 JSON of {body, integratedTime, logID, logIndex} (rekor `pkg/api/entries.go`). */
export function setPayload(e: { body: string; integratedTime: number; logID: string; logIndex: number }): Buffer {
  return canonicalBytes({ body: e.body, integratedTime: e.integratedTime, logID: e.logID, logIndex: e.logIndex });
}

/** The wire form: `{ "<uuid>": { body, integratedTime, logID, logIndex, verification } }`. */
export function toWire(entry: LogEntry): Record<string, Omit<LogEntry, 'uuid'>> {
  const { uuid, ...value } = entry;
  return { [uuid]: value };
}

export interface VerifiedEntry {
  /** The checkpoint the inclusion proof was verified against (absent when the entry had only a SET). */
  checkpoint?: Checkpoint;
  /** The decoded canonicalized body. */
  body: Buffer;
}

function fail(message: string): never {
  throw new TlogError('TLOG_ENTRY_VERIFICATION_FAILED', `log entry: ${message}`);
}

/**
 * Verifies a log entry offline against the log's public key, as a sigstore client does: the log ID is the key's,
 * the SET verifies, and the inclusion proof leads from the body's leaf hash to the root of a checkpoint signed by
 * the key (tree size and root taken from the verified checkpoint). Both SET and proof are required unless
 * `requireInclusionProof` is false.
 */
export function verifyLogEntry(
  entry: LogEntry,
  options: { publicKey: KeyObject | string | Uint8Array; expectedKeyName?: string; requireInclusionProof?: boolean },
): VerifiedEntry {
  const key = toPublicKey(options.publicKey);
  const logId = createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
  if (entry.logID !== logId) fail(`logID ${entry.logID} is not the ID of the given log key (${logId})`);
  const body = Buffer.from(entry.body, 'base64');
  if (body.toString('base64') !== entry.body) fail('body is not canonical base64');

  const set = entry.verification?.signedEntryTimestamp;
  if (set === undefined) fail('no signed entry timestamp');
  let setOk = false;
  try {
    setOk = cryptoVerify('sha256', setPayload(entry), key, Buffer.from(set, 'base64'));
  } catch {
    setOk = false;
  }
  if (!setOk) fail('signed entry timestamp does not verify');

  const proof = entry.verification?.inclusionProof;
  if (proof === undefined) {
    if (options.requireInclusionProof === false) return { body };
    fail('no inclusion proof');
  }
  let checkpoint: Checkpoint;
  try {
    checkpoint = verifyCheckpoint(proof.checkpoint, key, options.expectedKeyName);
  } catch (err) {
    throw new TlogError('TLOG_ENTRY_VERIFICATION_FAILED', `log entry: ${(err as Error).message}`, { cause: err });
  }
  if (checkpoint.size !== proof.treeSize)
    fail(`inclusion proof tree size ${proof.treeSize} differs from the checkpoint's ${checkpoint.size}`);
  if (checkpoint.rootHash.toString('hex') !== proof.rootHash)
    fail('inclusion proof root hash differs from the checkpoint root');
  const hashes = proof.hashes.map((h) => Buffer.from(h, 'hex'));
  if (!verifyInclusionProof(hashLeaf(body), proof.logIndex, checkpoint.size, hashes, checkpoint.rootHash)) {
    fail(`inclusion proof for index ${proof.logIndex} does not lead to the checkpoint root`);
  }
  return { checkpoint, body };
}
