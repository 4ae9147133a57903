import { createHash, createPublicKey, verify } from 'node:crypto';
import type { TransparencyLogEntry } from '@sigstore/bundle';
import { VerifyError } from './errors.js';

/**
 * Witness cosignatures on a log entry's checkpoint (C2SP tlog-cosignature, Ed25519 `cosignature/v1`). Witness
 * keys are C2SP vkeys `<name>+<hex key ID>+<base64(0x04 ‖ 32-byte key)>` chosen by the operator; signature lines
 * from any other signer (the log itself, unknown witnesses) are ignored. Kept here (not imported from
 * @airlock/tlog) so the verifier stays free of the log's storage dependencies.
 */

export interface WitnessPolicy {
  /** Witness vkeys. */
  keys: readonly string[];
  /** How many distinct configured witnesses must have cosigned each entry's checkpoint. */
  threshold: number;
}

interface WitnessKey {
  name: string;
  keyId: Buffer;
  spki: Buffer;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SIGNATURE_LINE = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/;

function invalidPolicy(message: string): never {
  throw new VerifyError('VERIFY_TRUSTED_ROOT', `witness policy: ${message}`);
}

export function parseWitnessPolicy(policy: WitnessPolicy): WitnessKey[] {
  if (!Number.isSafeInteger(policy.threshold) || policy.threshold < 1 || policy.threshold > policy.keys.length)
    invalidPolicy(
      `threshold ${policy.threshold} must be between 1 and the number of witness keys (${policy.keys.length})`,
    );
  return policy.keys.map((vkey) => {
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey.trim());
    if (!m) invalidPolicy(`'${vkey.slice(0, 80)}' is not a vkey <name>+<hex key ID>+<base64 key>`);
    const [, name, hex, b64] = m as unknown as [string, string, string, string];
    const raw = Buffer.from(b64, 'base64');
    if (raw.length !== 33 || raw[0] !== 0x04) invalidPolicy(`${name}: not an Ed25519 cosignature/v1 key`);
    const keyId = createHash('sha256')
      .update(Buffer.concat([Buffer.from(`${name}\n`), raw]))
      .digest()
      .subarray(0, 4);
    if (keyId.toString('hex') !== hex) invalidPolicy(`${name}: key ID ${hex} does not match the key`);
    return { name, keyId, spki: Buffer.concat([ED25519_SPKI_PREFIX, raw.subarray(1)]) };
  });
}

/** Throws VERIFY_TLOG_WITNESS unless the entry's checkpoint carries `threshold` valid configured cosignatures. */
export function checkWitnesses(entry: TransparencyLogEntry, keys: readonly WitnessKey[], threshold: number): void {
  const envelope = entry.inclusionProof?.checkpoint?.envelope;
  if (!envelope)
    throw new VerifyError('VERIFY_TLOG_WITNESS', 'the log entry has no checkpoint to carry witness cosignatures');
  const split = envelope.indexOf('\n\n');
  if (split < 0) throw new VerifyError('VERIFY_TLOG_WITNESS', 'the checkpoint is not a signed note');
  const note = envelope.slice(0, split + 1);
  const cosigned = new Set<string>();
  for (const line of envelope.slice(split + 2).split('\n')) {
    const m = SIGNATURE_LINE.exec(line);
    if (!m) continue;
    const raw = Buffer.from(m[2]!, 'base64');
    const w = keys.find((k) => k.name === m[1] && raw.length === 4 + 8 + 64 && raw.subarray(0, 4).equals(k.keyId));
    if (!w) continue;
    const timestamp = raw.readBigUInt64BE(4);
    const message = Buffer.from(`cosignature/v1\ntime ${timestamp}\n${note}`, 'utf8');
    const key = createPublicKey({ key: w.spki, format: 'der', type: 'spki' });
    if (verify(null, message, key, raw.subarray(12))) cosigned.add(w.name);
  }
  if (cosigned.size < threshold) {
    throw new VerifyError(
      'VERIFY_TLOG_WITNESS',
      `the log checkpoint has ${cosigned.size} valid witness cosignature(s) (${[...cosigned].join(', ') || 'none'}); ${threshold} required`,
    );
  }
}
