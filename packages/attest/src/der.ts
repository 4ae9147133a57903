/** Just enough DER to read X.509 extensions node:crypto does not expose (AMD's VCEK TCB and hwID extensions). */
import { AttestError } from './errors.js';

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function readTlv(b: Buffer, off: number): Tlv {
  const fail = (): never => {
    throw new AttestError('SNP_CHAIN_UNTRUSTED', `certificate DER is malformed at byte ${off}`);
  };
  if (off + 2 > b.length) fail();
  const tag = b[off]!;
  let len = b[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > b.length) fail();
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[start + i]!;
    start += n;
  }
  if (start + len > b.length) fail();
  return { tag, start, end: start + len };
}

function children(b: Buffer, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = t.start; off < t.end;) {
    const c = readTlv(b, off);
    out.push(c);
    off = c.end;
  }
  return out;
}

function oidString(b: Buffer): string {
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

/** OID → extnValue (the OCTET STRING's contents) of a DER certificate. */
export function certificateExtensions(der: Buffer): Map<string, Buffer> {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0];
  const out = new Map<string, Buffer>();
  if (!tbs) return out;
  const ext = children(der, tbs).find((c) => c.tag === 0xa3);
  if (!ext) return out;
  const list = children(der, ext)[0];
  if (!list) return out;
  for (const e of children(der, list)) {
    const parts = children(der, e);
    const oid = parts[0];
    const value = parts[parts.length - 1];
    if (oid?.tag === 0x06 && value?.tag === 0x04)
      out.set(oidString(der.subarray(oid.start, oid.end)), der.subarray(value.start, value.end));
  }
  return out;
}

/** A DER INTEGER (small, non-negative) → number. */
export function derSmallInt(b: Buffer): number | undefined {
  const t = readTlv(b, 0);
  if (t.tag !== 0x02 || t.end - t.start > 4) return undefined;
  let v = 0;
  for (const byte of b.subarray(t.start, t.end)) v = v * 256 + byte;
  return v;
}
