/** TPMS_ATTEST (quote) parsing and PCR digest recomputation (Part 2 §10.12). */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AttestError } from '../errors.js';
import { TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, hashName, type TpmHashName } from './constants.js';
import { TpmReader } from './marshal.js';

export interface PcrSelection {
  hash: TpmHashName;
  /** PCR indices, ascending. */
  pcrs: number[];
}

export interface TpmQuote {
  qualifiedSigner: Buffer;
  /** The qualifying data: the verifier's nonce. */
  extraData: Buffer;
  clock: { clock: bigint; resetCount: number; restartCount: number; safe: boolean };
  firmwareVersion: bigint;
  pcrSelect: PcrSelection[];
  pcrDigest: Buffer;
}

function readSelection(r: TpmReader): PcrSelection[] {
  const count = r.u32();
  if (count > 16) throw new AttestError('TPM_MALFORMED', `TPML_PCR_SELECTION: ${count} banks`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashId = r.u16();
    const hash = hashName(hashId);
    if (!hash) throw new AttestError('TPM_UNSUPPORTED', `PCR bank 0x${hashId.toString(16)} is not supported`);
    const size = r.u8();
    if (size > 8) throw new AttestError('TPM_MALFORMED', `TPMS_PCR_SELECTION: sizeofSelect ${size}`);
    const bits = r.bytes(size);
    const pcrs: number[] = [];
    for (let pcr = 0; pcr < size * 8; pcr++) if (bits[pcr >> 3]! & (1 << (pcr & 7))) pcrs.push(pcr);
    out.push({ hash, pcrs });
  }
  return out;
}

/** Parses a marshalled TPMS_ATTEST that must be a quote made by a TPM (magic + type checked). */
export function parseQuote(buf: Buffer): TpmQuote {
  const r = new TpmReader(buf, 'TPMS_ATTEST');
  const magic = r.u32();
  if (magic !== TPM_GENERATED_VALUE)
    throw new AttestError('TPM_MALFORMED', `TPMS_ATTEST: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`);
  const type = r.u16();
  if (type !== TPM_ST_ATTEST_QUOTE)
    throw new AttestError('TPM_MALFORMED', `TPMS_ATTEST: type 0x${type.toString(16)} is not TPM_ST_ATTEST_QUOTE`);
  const qualifiedSigner = r.tpm2b(130);
  const extraData = r.tpm2b(64);
  const clock = { clock: r.u64(), resetCount: r.u32(), restartCount: r.u32(), safe: r.u8() === 1 };
  const firmwareVersion = r.u64();
  const pcrSelect = readSelection(r);
  const pcrDigest = r.tpm2b(64);
  r.end();
  return { qualifiedSigner, extraData, clock, firmwareVersion, pcrSelect, pcrDigest };
}

/** PCR values per bank: bank → PCR index → value. */
export type PcrValues = Partial<Record<TpmHashName, Record<number, Buffer>>>;

/**
 * The digest a quote carries: H_sig(concatenation of the selected PCR values, in selection order). Fails when a
 * selected PCR has no reported value or a value of the wrong length.
 */
export function computePcrDigest(selection: PcrSelection[], values: PcrValues, digestAlg: TpmHashName): Buffer {
  const h = createHash(digestAlg);
  for (const sel of selection) {
    for (const pcr of sel.pcrs) {
      const v = values[sel.hash]?.[pcr];
      if (!v) throw new AttestError('PCR_SELECTION_MISMATCH', `no value reported for quoted PCR ${sel.hash}:${pcr}`);
      if (v.length !== createHash(sel.hash).digest().length)
        throw new AttestError('TPM_MALFORMED', `PCR ${sel.hash}:${pcr} value has ${v.length} bytes`);
      h.update(v);
    }
  }
  return h.digest();
}

export function buffersEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value a PCR holds after extending a zeroed PCR with each digest in turn. */
export function extendPcr(hash: TpmHashName, digests: Buffer[], initial?: Buffer): Buffer {
  let pcr = initial ?? Buffer.alloc(createHash(hash).digest().length);
  for (const d of digests) pcr = createHash(hash).update(pcr).update(d).digest();
  return pcr;
}
