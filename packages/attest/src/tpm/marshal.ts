import { AttestError } from '../errors.js';

/** Big-endian reader for TPM-marshalled structures; every read is bounds-checked (attacker input). */
export class TpmReader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get offset(): number {
    return this.off;
  }

  private need(n: number): void {
    if (this.off + n > this.buf.length)
      throw new AttestError('TPM_MALFORMED', `${this.what}: truncated at byte ${this.off} (need ${n} more)`);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.off++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return Buffer.from(v);
  }
  /** A TPM2B: UINT16 size then that many bytes. */
  tpm2b(max = 4096): Buffer {
    const n = this.u16();
    if (n > max) throw new AttestError('TPM_MALFORMED', `${this.what}: TPM2B of ${n} bytes exceeds ${max}`);
    return this.bytes(n);
  }
  /** Fails unless every byte was consumed (no trailing data may ride along unauthenticated). */
  end(): void {
    if (this.off !== this.buf.length)
      throw new AttestError('TPM_MALFORMED', `${this.what}: ${this.buf.length - this.off} trailing bytes`);
  }
}

export function u16be(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function tpm2b(data: Buffer): Buffer {
  return Buffer.concat([u16be(data.length), data]);
}
