// SEV-SNP and TDX evidence: real published samples (Google's go-sev-guest / go-tdx-guest test data, see
// fixtures/README.md) verified against AMD's / Intel's roots, plus SNP reports constructed here in the exact
// 1184-byte layout and signed with test keys (a P-384 "VCEK" under an RSA-PSS "ASK"/"ARK" made with openssl).
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { opensslProblem, toolsAvailable } from '@airlock/testkit';
import { SNP_REPORT_SIZE, parseSnpReport, parseTdxQuote, verifySnpEvidence, verifyTdxEvidence } from '../src/index.js';

const fixture = (name: string): Buffer => readFileSync(join(__dirname, 'fixtures', name));
const pems = (name: string): string[] =>
  fixture(name)
    .toString('utf8')
    .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
const [milanAsk, milanArk] = pems('snp-milan-ask-ark.pem') as [string, string];
const [, genoaArk] = pems('snp-genoa-ask-ark.pem') as [string, string];
const intelRoot = fixture('intel-sgx-root-ca.pem').toString('utf8');
// The samples' leaf certificates are valid 2022–2029; verify at a fixed time inside that window.
const now = new Date('2025-06-01T00:00:00Z');

const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return 'no error';
};

describe('SEV-SNP: a real Milan report (go-sev-guest test data)', () => {
  const report = fixture('snp-milan-report.bin');
  const evidence = (r: Buffer) => ({
    kind: 'sev-snp' as const,
    report: r.toString('base64'),
    certificates: fixture('snp-milan-vcek.der').toString('base64'),
  });

  it('parses the 1184-byte layout and verifies the VCEK signature and VCEK → ASK → ARK chain', () => {
    const { report: parsed, signer } = verifySnpEvidence(evidence(report), { arkPem: milanArk, askPem: milanAsk, now });
    expect(parsed.version).toBe(2);
    expect(parsed.signatureAlgo).toBe(1);
    expect(parsed.signingKey).toBe(0);
    expect(parsed.measurement).toHaveLength(48);
    expect(signer.subject).toContain('CN=SEV-VCEK');
  });

  it('refuses the report with one measurement byte changed', () => {
    const tampered = Buffer.from(report);
    tampered[0x90] ^= 1;
    expect(errorOf(() => verifySnpEvidence(evidence(tampered), { arkPem: milanArk, askPem: milanAsk, now }))).toMatch(
      /^SNP_SIGNATURE_INVALID: /,
    );
  });

  it("refuses a Milan VCEK against Genoa's ARK", () => {
    expect(errorOf(() => verifySnpEvidence(evidence(report), { arkPem: genoaArk, askPem: milanAsk, now }))).toMatch(
      /^SNP_CHAIN_UNTRUSTED: VCEK: .*does not chain/,
    );
  });

  it('refuses a report of the wrong size', () => {
    expect(errorOf(() => parseSnpReport(report.subarray(0, SNP_REPORT_SIZE - 1)))).toMatch(
      /^SNP_REPORT_MALFORMED: .*1183 bytes/,
    );
  });
});

// The test VCEK's AMD extensions: TCB boot loader 3, TEE 0, SNP 8, microcode 115 (DER INTEGERs); hwID = 64 × 0xc1.
const TCB = { bootLoader: 3, tee: 0, snp: 8, microcode: 115 };
const int = (n: number): string => `DER:0201${n.toString(16).padStart(2, '0')}`;
const VCEK_EXT = [
  `1.3.6.1.4.1.3704.1.3.1=${int(TCB.bootLoader)}`,
  `1.3.6.1.4.1.3704.1.3.2=${int(TCB.tee)}`,
  `1.3.6.1.4.1.3704.1.3.3=${int(TCB.snp)}`,
  `1.3.6.1.4.1.3704.1.3.8=${int(TCB.microcode)}`,
  `1.3.6.1.4.1.3704.1.4=DER:${'c1'.repeat(64)}`,
].join('\n');

describe('SEV-SNP: reports constructed in the exact layout, signed with test keys', () => {
  const available = toolsAvailable('SNP test PKI (openssl)', [opensslProblem()]);
  let dir: string;
  const file = (n: string): string => readFileSync(join(dir, n), 'utf8');
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };

  beforeAll(() => {
    if (!available) return;
    dir = mkdtempSync(join(tmpdir(), 'airlock-snp-'));
    const pss = ['-sha384', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48'];
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ark.key',
      '-out',
      'ark.crt',
      '-days',
      '2',
      '-subj',
      '/CN=test ARK',
      ...pss,
    ]);
    require_ca('ask', 'ark', ['-newkey', 'rsa:2048'], pss, true);
    for (const leaf of ['vcek', 'other'])
      require_ca(leaf, 'ask', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], pss, false, VCEK_EXT);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  function require_ca(name: string, issuer: string, keyArgs: string[], pss: string[], ca: boolean, extra = ''): void {
    openssl([
      'req',
      ...keyArgs,
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=test ${name}`,
    ]);
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:${ca ? 'TRUE' : 'FALSE'}\n${extra}\n`);
    openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${issuer}.crt`,
      '-CAkey',
      `${issuer}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
      ...pss,
    ]);
  }

  /** A version-3 report with the given report data and measurement, signed by `key` (r, s little-endian). */
  function makeReport(keyFile: string, reportData: Buffer, measurement: Buffer, tcb = TCB, chip = 0xc1): Buffer {
    const b = Buffer.alloc(SNP_REPORT_SIZE);
    b.writeUInt32LE(3, 0x00); // version
    b.writeUInt32LE(1, 0x04); // guest SVN
    b.writeBigUInt64LE(0x30000n, 0x08); // policy: SMT allowed, reserved bit 17
    b.writeUInt32LE(1, 0x34); // ECDSA P-384 with SHA-384
    reportData.copy(b, 0x50);
    measurement.copy(b, 0x90);
    for (const off of [0x38, 0x180, 0x1e0, 0x1f0]) {
      // CURRENT, REPORTED, COMMITTED and LAUNCH TCB: boot loader, TEE, 4 reserved, SNP, microcode
      b[off] = tcb.bootLoader;
      b[off + 1] = tcb.tee;
      b[off + 6] = tcb.snp;
      b[off + 7] = tcb.microcode;
    }
    b.fill(chip, 0x1a0, 0x1e0); // chip id
    const sig = sign('sha384', b.subarray(0, 0x2a0), {
      key: createPrivateKey(file(keyFile)),
      dsaEncoding: 'ieee-p1363',
    });
    Buffer.from(sig.subarray(0, 48)).reverse().copy(b, 0x2a0);
    Buffer.from(sig.subarray(48))
      .reverse()
      .copy(b, 0x2a0 + 72);
    return b;
  }

  it.skipIf(!available)('verifies a constructed report and exposes report_data (the nonce binding)', () => {
    const nonce = Buffer.alloc(64, 0x5a);
    const measurement = Buffer.alloc(48, 0x42);
    const report = makeReport('vcek.key', nonce, measurement);
    const ok = verifySnpEvidence(
      { kind: 'sev-snp', report: report.toString('base64'), certificates: file('vcek.crt') + file('ask.crt') },
      { arkPem: file('ark.crt') },
    );
    expect(ok.report.reportData).toEqual(nonce);
    expect(ok.report.measurement).toEqual(measurement);
    expect(ok.report.version).toBe(3);
    expect(ok.report.chipId).toEqual(Buffer.alloc(64, 0xc1));
    const ev = {
      kind: 'sev-snp' as const,
      report: report.toString('base64'),
      certificates: file('vcek.crt') + file('ask.crt'),
    };
    expect(() => verifySnpEvidence(ev, { arkPem: file('ark.crt') }, { reportData: nonce })).not.toThrow();
    expect(
      errorOf(() => verifySnpEvidence(ev, { arkPem: file('ark.crt') }, { reportData: Buffer.alloc(32, 1) })),
    ).toMatch(/^SNP_REPORT_DATA_MISMATCH: /);
  });

  it.skipIf(!available)("refuses a report whose REPORTED_TCB or CHIP_ID is not the VCEK's", () => {
    const certs = file('vcek.crt') + file('ask.crt');
    const ev = (r: Buffer) => ({ kind: 'sev-snp' as const, report: r.toString('base64'), certificates: certs });
    const rolledBack = makeReport('vcek.key', Buffer.alloc(64), Buffer.alloc(48), { ...TCB, microcode: 114 });
    expect(errorOf(() => verifySnpEvidence(ev(rolledBack), { arkPem: file('ark.crt') }))).toMatch(
      /^SNP_CHAIN_UNTRUSTED: VCEK microcode SPL 115 differs from the report's REPORTED_TCB 114/,
    );
    const otherChip = makeReport('vcek.key', Buffer.alloc(64), Buffer.alloc(48), TCB, 0xc2);
    expect(errorOf(() => verifySnpEvidence(ev(otherChip), { arkPem: file('ark.crt') }))).toMatch(
      /^SNP_CHAIN_UNTRUSTED: the VCEK's hwID is not the report's CHIP_ID/,
    );
  });

  it.skipIf(!available)('refuses a report signed by a different key than the presented VCEK', () => {
    const report = makeReport('other.key', Buffer.alloc(64), Buffer.alloc(48));
    expect(
      errorOf(() =>
        verifySnpEvidence(
          { kind: 'sev-snp', report: report.toString('base64'), certificates: file('vcek.crt') + file('ask.crt') },
          { arkPem: file('ark.crt') },
        ),
      ),
    ).toMatch(/^SNP_SIGNATURE_INVALID: .*VCEK/);
  });

  it.skipIf(!available)("refuses a test-keys report against AMD's real Milan ARK", () => {
    const report = makeReport('vcek.key', Buffer.alloc(64), Buffer.alloc(48));
    expect(
      errorOf(() =>
        verifySnpEvidence(
          { kind: 'sev-snp', report: report.toString('base64'), certificates: file('vcek.crt') + file('ask.crt') },
          { arkPem: milanArk },
        ),
      ),
    ).toMatch(/^SNP_CHAIN_UNTRUSTED: /);
  });
});

describe('TDX: a real DCAP quote v4 (go-tdx-guest test data, Sapphire Rapids E4)', () => {
  const quote = fixture('tdx-spr-e4-quote-v4.dat');
  const ev = (q: Buffer) => ({ kind: 'tdx' as const, quote: q.toString('base64') });

  it('verifies the PCK chain to the Intel SGX Root CA, the QE report, the key binding and the quote signature', () => {
    const { quote: parsed, pck } = verifyTdxEvidence(ev(quote), { rootPem: intelRoot, now });
    expect(parsed.version).toBe(4);
    expect(parsed.teeType).toBe(0x81);
    expect(parsed.body.mrTd).toHaveLength(48);
    expect(parsed.body.rtmrs).toHaveLength(4);
    expect(pck.subject).toContain('CN=Intel SGX PCK Certificate');
    const own = parsed.body.reportData;
    expect(() => verifyTdxEvidence(ev(quote), { rootPem: intelRoot, now }, { reportData: own })).not.toThrow();
    expect(
      errorOf(() => verifyTdxEvidence(ev(quote), { rootPem: intelRoot, now }, { reportData: Buffer.alloc(64, 7) })),
    ).toMatch(/^TDX_REPORT_DATA_MISMATCH: /);
  });

  it('refuses the quote with its report_data changed', () => {
    const tampered = Buffer.from(quote);
    tampered[48 + 520] ^= 1; // first byte of the body's report_data
    expect(errorOf(() => verifyTdxEvidence(ev(tampered), { rootPem: intelRoot, now }))).toMatch(
      /^TDX_SIGNATURE_INVALID: the quote's signature/,
    );
  });

  it('refuses a swapped attestation key (not the key the QE report binds)', () => {
    const tampered = Buffer.from(quote);
    tampered[632 + 4 + 64] ^= 1; // first byte of the attestation public key
    expect(errorOf(() => verifyTdxEvidence(ev(tampered), { rootPem: intelRoot, now }))).toMatch(
      /^TDX_SIGNATURE_INVALID: the QE report does not bind/,
    );
  });

  it('refuses the quote against a root that is not Intel’s', () => {
    expect(errorOf(() => verifyTdxEvidence(ev(quote), { rootPem: milanArk, now }))).toMatch(
      /^TDX_CHAIN_UNTRUSTED: PCK certificate: .*does not chain/,
    );
  });

  it('refuses truncated quotes and other versions', () => {
    expect(errorOf(() => parseTdxQuote(quote.subarray(0, 700)))).toMatch(/^TDX_QUOTE_MALFORMED: TDX quote truncated/);
    const v3 = Buffer.from(quote);
    v3.writeUInt16LE(3, 0);
    expect(errorOf(() => parseTdxQuote(v3))).toMatch(/^TDX_QUOTE_MALFORMED: TDX quote version 3/);
  });
});
