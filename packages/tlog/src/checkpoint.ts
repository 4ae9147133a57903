import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { TlogError } from './errors.js';
import type { LogSigner } from './signing-key.js';

/**
 * Checkpoints as Rekor v1 writes them: a C2SP signed note (https://github.com/C2SP/C2SP/blob/main/signed-note.md)
 * whose text is a tlog checkpoint (https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md):
 *
 *   <origin>\n<tree size>\n<base64 root hash>\n[other lines\n]
 *   \n
 *   — <key name> <base64(4-byte key hint ‖ signature)>\n
 *
 * The signature covers the text up to and including the newline before the blank line. For an ECDSA key the
 * hint is SHA-256(DER SPKI)[:4] (Rekor `pkg/util/signed_note.go`); sigstore-js matches it against the log ID
 * and the key name against the trusted root's `baseUrl`.
 */

const EM_DASH_PREFIX = '\u2014 ';
const MAX_NOTE_BYTES = 64 * 1024;
const MAX_SIGNATURES = 100;

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  /** Extra body lines after the root hash (Rekor may add e.g. `Timestamp: …`). */
  otherContent: string[];
}

export interface NoteSignature {
  name: string;
  keyHint: Buffer;
  signature: Buffer;
}

export interface SignedNote {
  /** The signed text, ending in '\n'. */
  note: string;
  signatures: NoteSignature[];
}

function malformed(message: string): never {
  throw new TlogError('TLOG_CHECKPOINT_MALFORMED', `checkpoint: ${message}`);
}

/** A key name must be non-empty and contain no whitespace or '+' (C2SP signed-note). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && !/[\s+]/u.test(name);
}

/** The checkpoint body (the signed text). */
export function formatCheckpoint(cp: {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  otherContent?: readonly string[];
}): string {
  if (cp.origin === '' || /[\n\r]/.test(cp.origin))
    throw new TlogError('TLOG_INVALID_OPTION', 'checkpoint origin must be one non-empty line');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0)
    throw new TlogError('TLOG_INVALID_OPTION', `checkpoint size ${cp.size} is not a non-negative integer`);
  if (cp.rootHash.length !== 32) throw new TlogError('TLOG_INVALID_OPTION', 'checkpoint root hash must be 32 bytes');
  for (const line of cp.otherContent ?? []) {
    if (line === '' || /[\n\r]/.test(line))
      throw new TlogError('TLOG_INVALID_OPTION', 'checkpoint extra lines must be non-empty single lines');
  }
  const root = Buffer.from(cp.rootHash).toString('base64');
  return [cp.origin, String(cp.size), root, ...(cp.otherContent ?? [])].map((l) => `${l}\n`).join('');
}

/** Signs a checkpoint body with the log key: the complete signed note. */
export function signNote(note: string, keyName: string, signer: Pick<LogSigner, 'sign' | 'keyHint'>): string {
  if (!isValidKeyName(keyName))
    throw new TlogError('TLOG_INVALID_OPTION', `invalid signed-note key name '${keyName}' (no spaces or '+')`);
  if (!note.endsWith('\n')) throw new TlogError('TLOG_INVALID_OPTION', 'a note must end with a newline');
  const sig = signer.sign(Buffer.from(note, 'utf8'));
  return `${note}\n${EM_DASH_PREFIX}${keyName} ${Buffer.concat([signer.keyHint, sig]).toString('base64')}\n`;
}

/** Splits a signed note into its text and signature lines. Strict: anything unexpected is an error. */
export function parseSignedNote(text: string): SignedNote {
  if (typeof text !== 'string') malformed('not a string');
  if (Buffer.byteLength(text, 'utf8') > MAX_NOTE_BYTES) malformed(`larger than ${MAX_NOTE_BYTES} bytes`);
  const split = text.indexOf('\n\n');
  if (split < 0) malformed('no blank line between the note and its signatures');
  const note = text.slice(0, split + 1);
  const sigBlock = text.slice(split + 2);
  if (!sigBlock.endsWith('\n')) malformed('signature block must end with a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) malformed('too many signature lines');
  const signatures = lines.map((line, i) => {
    if (!line.startsWith(EM_DASH_PREFIX)) malformed(`signature line ${i + 1} does not start with '— '`);
    const parts = line.slice(EM_DASH_PREFIX.length).split(' ');
    if (parts.length !== 2) malformed(`signature line ${i + 1} is not '— <name> <signature>'`);
    const [name, b64] = parts as [string, string];
    if (!isValidKeyName(name)) malformed(`signature line ${i + 1} has an invalid key name`);
    if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) malformed(`signature line ${i + 1} is not base64`);
    const raw = Buffer.from(b64, 'base64');
    if (raw.length < 5) malformed(`signature line ${i + 1} is too short`);
    return { name, keyHint: raw.subarray(0, 4), signature: raw.subarray(4) };
  });
  return { note, signatures };
}

/** Parses a checkpoint body (the note text of a signed note). */
export function parseCheckpoint(note: string): Checkpoint {
  if (!note.endsWith('\n')) malformed('body must end with a newline');
  const lines = note.slice(0, -1).split('\n');
  if (lines.length < 3) malformed('body needs origin, size and root hash lines');
  const [origin, sizeLine, rootLine, ...otherContent] = lines as [string, string, string, ...string[]];
  if (origin === '') malformed('empty origin');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine)))
    malformed(`invalid tree size '${sizeLine.slice(0, 32)}'`);
  if (rootLine.length !== 44 || !/^[A-Za-z0-9+/]{43}=$/.test(rootLine))
    malformed('root hash is not base64 of 32 bytes');
  if (otherContent.some((l) => l === '')) malformed('empty line inside the body');
  return { origin, size: Number(sizeLine), rootHash: Buffer.from(rootLine, 'base64'), otherContent };
}

/** Accepts a KeyObject, a PEM string or DER SPKI bytes. */
export function toPublicKey(key: KeyObject | string | Uint8Array): KeyObject {
  if (typeof key === 'string') return createPublicKey({ key, format: 'pem' });
  if (key instanceof Uint8Array) return createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' });
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** SHA-256(DER SPKI)[:4]. */
export function keyHintFor(publicKey: KeyObject): Buffer {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest()
    .subarray(0, 4);
}

/**
 * Verifies a signed checkpoint against the log's public key: at least one signature line whose key hint is the
 * key's (and whose name is `expectedKeyName`, if given) must verify. Returns the parsed checkpoint.
 */
export function verifyCheckpoint(
  signedNote: string,
  publicKey: KeyObject | string | Uint8Array,
  expectedKeyName?: string,
): Checkpoint {
  const parsed = parseSignedNote(signedNote);
  const checkpoint = parseCheckpoint(parsed.note);
  const key = toPublicKey(publicKey);
  const hint = keyHintFor(key);
  const data = Buffer.from(parsed.note, 'utf8');
  const candidates = parsed.signatures.filter((s) => timingSafeEqual(s.keyHint, hint));
  if (candidates.length === 0) {
    throw new TlogError(
      'TLOG_CHECKPOINT_SIGNATURE_INVALID',
      'checkpoint has no signature by the log key (no matching key hint)',
    );
  }
  const named = expectedKeyName === undefined ? candidates : candidates.filter((s) => s.name === expectedKeyName);
  if (named.length === 0) {
    throw new TlogError(
      'TLOG_CHECKPOINT_SIGNATURE_INVALID',
      `checkpoint is signed as '${candidates[0]!.name}', expected key name '${expectedKeyName}'`,
    );
  }
  const digest = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  if (!named.some((s) => safeVerify(digest, data, key, s.signature))) {
    throw new TlogError('TLOG_CHECKPOINT_SIGNATURE_INVALID', 'checkpoint signature does not verify with the log key');
  }
  return checkpoint;
}

function safeVerify(digest: string | null, data: Buffer, key: KeyObject, sig: Buffer): boolean {
  try {
    return verify(digest, data, key, sig);
  } catch {
    return false;
  }
}
