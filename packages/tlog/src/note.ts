import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { isValidKeyName, parseCheckpoint, parseSignedNote, type Checkpoint } from './checkpoint.js';
import { TlogError } from './errors.js';

/**
 * Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 `cosignature/v1`): a note signature line
 * `— <name> base64(keyID ‖ u64 timestamp ‖ Ed25519 signature)` over
 * `cosignature/v1\ntime <timestamp>\n<checkpoint body>`, keyID = SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4].
 * Keys are exchanged as C2SP vkeys: `<name>+<hex keyID>+<base64(0x04 ‖ public key)>`.
 */

const COSIGNATURE_V1 = 0x04;
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface WitnessKey {
  name: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
  keyId: Buffer;
}

export interface VerifiedCosignature {
  name: string;
  timestamp: number;
}

function bad(message: string): never {
  throw new TlogError('TLOG_INVALID_OPTION', message);
}

export function cosignatureKeyId(name: string, publicKey: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), Buffer.from([COSIGNATURE_V1]), publicKey]))
    .digest()
    .subarray(0, 4);
}

function rawEd25519(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') bad('a witness key must be Ed25519');
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return Buffer.from(pub.export({ type: 'spki', format: 'der' }).subarray(ED25519_SPKI_PREFIX.length));
}

/** The vkey of a witness (its name and Ed25519 key). */
export function witnessVkey(name: string, key: KeyObject): string {
  if (!isValidKeyName(name)) bad(`invalid witness name '${name}'`);
  const pub = rawEd25519(key);
  return `${name}+${cosignatureKeyId(name, pub).toString('hex')}+${Buffer.concat([Buffer.from([COSIGNATURE_V1]), pub]).toString('base64')}`;
}

/** Parses a vkey; only Ed25519 cosignature/v1 keys (type 0x04), with a key ID that matches. */
export function parseWitnessVkey(vkey: string): WitnessKey {
  // The base64 key may itself contain '+': split on the first two only.
  const m = /^([^+]+)\+([^+]*)\+(.+)$/.exec(vkey.trim());
  if (!m) bad(`witness key '${vkey.slice(0, 80)}' is not <name>+<hex key ID>+<base64 key>`);
  const [, name, hex, b64] = m as unknown as [string, string, string, string];
  if (!isValidKeyName(name)) bad(`witness key has an invalid name '${name.slice(0, 80)}'`);
  if (!/^[0-9a-f]{8}$/.test(hex)) bad(`witness key ${name}: key ID must be 8 hex digits`);
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 33 || raw[0] !== COSIGNATURE_V1 || raw.toString('base64') !== b64)
    bad(`witness key ${name}: not an Ed25519 cosignature/v1 key (type 0x04, 32 bytes)`);
  const publicKey = raw.subarray(1);
  const keyId = cosignatureKeyId(name, publicKey);
  if (keyId.toString('hex') !== hex) bad(`witness key ${name}: key ID ${hex} does not match the key`);
  return { name, publicKey, keyId };
}

function cosignedMessage(note: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${note}`, 'utf8');
}

/** Adds this witness's cosignature line to a signed checkpoint (after the existing signatures). */
export function cosignCheckpoint(
  signedNote: string,
  name: string,
  privateKey: KeyObject | string,
  now = Date.now(),
): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const pub = rawEd25519(key);
  const parsed = parseSignedNote(signedNote);
  parseCheckpoint(parsed.note);
  const timestamp = Math.floor(now / 1000);
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(timestamp));
  const sig = sign(null, cosignedMessage(parsed.note, timestamp), key);
  const line = `\u2014 ${name} ${Buffer.concat([cosignatureKeyId(name, pub), ts, sig]).toString('base64')}\n`;
  return signedNote + line;
}

/**
 * The configured witnesses whose cosignature on this checkpoint verifies. Lines from unknown signers (the log's
 * own, other witnesses) are ignored; a line that names a configured witness with its key ID but does not verify
 * is an error (a forged or corrupted cosignature).
 */
export function verifyCosignatures(signedNote: string, witnesses: readonly WitnessKey[]): VerifiedCosignature[] {
  const parsed = parseSignedNote(signedNote);
  const found = new Map<string, VerifiedCosignature>();
  for (const s of parsed.signatures) {
    const w = witnesses.find((k) => k.name === s.name && k.keyId.equals(s.keyHint));
    if (!w) continue;
    if (s.signature.length !== 8 + 64)
      throw new TlogError('TLOG_CHECKPOINT_SIGNATURE_INVALID', `cosignature by ${w.name} has the wrong length`);
    const timestamp = Number(s.signature.readBigUInt64BE(0));
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, w.publicKey]),
      format: 'der',
      type: 'spki',
    });
    if (!verify(null, cosignedMessage(parsed.note, timestamp), key, s.signature.subarray(8)))
      throw new TlogError('TLOG_CHECKPOINT_SIGNATURE_INVALID', `cosignature by ${w.name} does not verify`);
    found.set(w.name, { name: w.name, timestamp });
  }
  return [...found.values()];
}

/** Checks at least `threshold` distinct configured witnesses cosigned; returns the checkpoint. */
export function requireCosignatures(
  signedNote: string,
  witnesses: readonly WitnessKey[],
  threshold: number,
): Checkpoint {
  const ok = verifyCosignatures(signedNote, witnesses);
  if (ok.length < threshold) {
    throw new TlogError(
      'TLOG_CHECKPOINT_SIGNATURE_INVALID',
      `checkpoint has ${ok.length} valid witness cosignature(s) (${ok.map((c) => c.name).join(', ') || 'none'}), ${threshold} required`,
    );
  }
  return parseCheckpoint(parseSignedNote(signedNote).note);
}
