/**
 * TpmAttester: the attesting side, driving tpm2-tools (5.x) against a TPM reachable through a TCTI string (a real
 * TPM: "device:/dev/tpmrm0"; swtpm in tests: "swtpm:path=<unix socket>"). There is no resource manager in the
 * swtpm setup, so every tool run is followed by flushing transient objects and sessions, and runs are serialised.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fromBase64, toBase64 } from '@airlock/core';
import { AttestError } from '../errors.js';
import type { AttestationChallenge, NodeAttestor, TpmEvidence, TpmIdentity } from '../evidence.js';
import { TPMA_OBJECT } from './constants.js';
import { tpm2ToolsCredentialFile } from './credential.js';
import { parseTpm2bPublic } from './public.js';
import { parseQuote } from './quote.js';
import type { BuildQuote } from '../quote-check.js';

const run = promisify(execFile);

export interface TpmAttesterOptions {
  /** TCTI configuration, e.g. "swtpm:path=/run/swtpm/sock" or "device:/dev/tpmrm0". */
  tcti: string;
  /** Private directory for the AK's context and the tools' files (0700). */
  workDir: string;
  /** Persistent EK handle (swtpm_setup / manufacturer provisioning); default 0x81010001 (RSA 2048). */
  ekHandle?: number;
  /** NV index of the EK certificate; default 0x1c00002 (RSA 2048 EK certificate). */
  ekCertNvIndex?: number;
  /** AK algorithm; default ecc (P-256, ECDSA-SHA256). */
  akAlgorithm?: 'ecc' | 'rsa';
  /** Untrusted intermediates to present with the EK certificate (DER). */
  ekIntermediates?: Buffer[];
  /** Directory holding the tpm2_* tools (default: PATH). */
  toolsDir?: string;
}

/** A TPM command that has not answered in this time will not: fail instead of hanging the agent. */
const TOOL_TIMEOUT_MS = 30_000;
const hex = (n: number): string => `0x${n.toString(16)}`;

export class TpmAttester implements NodeAttestor {
  private queue: Promise<unknown> = Promise.resolve();
  private cached?: TpmIdentity;
  private ekUserWithAuth = false;
  private ekNameAlg = 'sha256';

  constructor(private readonly opts: TpmAttesterOptions) {
    mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return join(this.opts.workDir, name);
  }

  /** Runs one tpm2 tool then flushes what it left loaded. */
  private async tool(name: string, args: string[]): Promise<string> {
    const cmd = this.opts.toolsDir ? join(this.opts.toolsDir, name) : name;
    const env = { ...process.env, TPM2TOOLS_TCTI: this.opts.tcti };
    try {
      const { stdout } = await run(cmd, args, {
        env,
        cwd: this.opts.workDir,
        maxBuffer: 1 << 20,
        timeout: TOOL_TIMEOUT_MS,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      const detail =
        (e.stderr ?? '')
          .split('\n')
          .filter((l) => l.startsWith('ERROR'))
          .slice(-2)
          .join(' ') || e.message;
      throw new AttestError('ATTESTER_FAILED', `${name} failed: ${detail}`);
    } finally {
      // No resource manager: drop the transient objects and sessions this tool left loaded.
      const flush = this.opts.toolsDir ? join(this.opts.toolsDir, 'tpm2_flushcontext') : 'tpm2_flushcontext';
      for (const what of ['-t', '-s'])
        await run(flush, [what], { env, timeout: TOOL_TIMEOUT_MS }).catch(() => undefined);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** EK certificate and public key, and a fresh AK created under the EK (once per attester). */
  identity(): Promise<TpmIdentity> {
    return this.serial(async () => {
      if (this.cached) return this.cached;
      const ek = hex(this.opts.ekHandle ?? 0x81010001);
      await this.tool('tpm2_readpublic', ['-c', ek, '-o', this.file('ek.pub')]);
      await this.tool('tpm2_nvread', [
        hex(this.opts.ekCertNvIndex ?? 0x1c00002),
        '-C',
        'o',
        '-o',
        this.file('ekcert.der'),
      ]);
      const ekPublic = readFileSync(this.file('ek.pub'));
      const parsedEk = parseTpm2bPublic(ekPublic);
      this.ekUserWithAuth = (parsedEk.attributes & TPMA_OBJECT.userWithAuth) !== 0;
      this.ekNameAlg = parsedEk.nameAlg;
      const alg = this.opts.akAlgorithm ?? 'ecc';
      const scheme = alg === 'ecc' ? 'ecdsa' : 'rsassa';
      await this.tool('tpm2_createak', [
        '-C',
        ek,
        '-c',
        this.file('ak.ctx'),
        '-G',
        alg,
        '-g',
        'sha256',
        '-s',
        scheme,
        '-u',
        this.file('ak.pub'),
        '-f',
        'tss',
        '-n',
        this.file('ak.name'),
        '-r',
        this.file('ak.priv'),
      ]);
      this.cached = {
        ekCertificate: toBase64(trimNvCert(readFileSync(this.file('ekcert.der')))),
        ...(this.opts.ekIntermediates ? { ekIntermediates: this.opts.ekIntermediates.map(toBase64) } : {}),
        ekPublic: toBase64(ekPublic),
        akPublic: toBase64(readFileSync(this.file('ak.pub'))),
      };
      return this.cached;
    });
  }

  /** Extends `pcr` (default 23) with a sha256 digest: how the runner measures its own image before attesting. */
  extendPcr(sha256Hex: string, pcr = 23): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(sha256Hex))
      throw new AttestError('ATTESTER_FAILED', 'extendPcr needs a sha256 hex digest');
    return this.serial(async () => {
      await this.tool('tpm2_pcrextend', [`${pcr}:sha256=${sha256Hex}`]);
    });
  }

  /** Activates the challenge's credential with the EK, then quotes the requested PCRs over the nonce with the AK. */
  async attest(challenge: AttestationChallenge): Promise<TpmEvidence> {
    const identity = await this.identity();
    return this.serial(async () => {
      const secret = await this.activate(challenge);
      const { quote, pcrs } = await this.quoteNow(challenge.nonce, challenge.pcrSelection);
      return {
        kind: 'tpm2',
        challengeId: challenge.id,
        identity,
        activatedCredential: toBase64(secret),
        quote,
        pcrs,
      };
    });
  }

  /**
   * A quote with the (already activated) AK over `nonceHex`: what the runner records in provenance, with
   * nonce = buildQuoteNonce(invocationId, specDigest). Includes the AK public so a verifier can check it.
   */
  async quote(nonceHex: string, selection: AttestationChallenge['pcrSelection']): Promise<BuildQuote> {
    const identity = await this.identity();
    const { quote, pcrs } = await this.serial(() => this.quoteNow(nonceHex, selection));
    return { akPublic: identity.akPublic, quote, pcrs };
  }

  private async quoteNow(
    nonceHex: string,
    selection: AttestationChallenge['pcrSelection'],
  ): Promise<Pick<TpmEvidence, 'quote' | 'pcrs'>> {
    if (!/^(?:[0-9a-f]{2}){1,64}$/.test(nonceHex)) throw new AttestError('ATTESTER_FAILED', 'nonce is not hex');
    if (!selection.pcrs.every((p) => Number.isInteger(p) && p >= 0 && p <= 23))
      throw new AttestError('ATTESTER_FAILED', 'PCR selection must be indices 0..23');
    const [msg, sig, pcrs] = ['quote.msg', 'quote.sig', 'quote.pcrs'].map((f) => this.file(f)) as [
      string,
      string,
      string,
    ];
    const sel = `${selection.bank}:${selection.pcrs.join(',')}`;
    const args = ['-c', this.file('ak.ctx'), '-l', sel, '-q', nonceHex, '-m', msg, '-s', sig, '-o', pcrs];
    await this.tool('tpm2_quote', [...args, '-F', 'values', '-g', 'sha256']);
    const attest = readFileSync(msg);
    return {
      quote: { attest: toBase64(attest), signature: toBase64(readFileSync(sig)) },
      pcrs: { bank: selection.bank, values: pcrValues(attest, readFileSync(pcrs)) },
    };
  }

  private async activate(challenge: AttestationChallenge): Promise<Buffer> {
    const cred = tpm2ToolsCredentialFile({
      credentialBlob: fromBase64(challenge.credential.blob),
      encryptedSecret: fromBase64(challenge.credential.encryptedSecret),
    });
    writeFileSync(this.file('cred.in'), cred);
    const out = this.file('cred.out');
    const ek = hex(this.opts.ekHandle ?? 0x81010001);
    const base = ['-c', this.file('ak.ctx'), '-C', ek, '-i', this.file('cred.in'), '-o', out];
    if (this.ekUserWithAuth) {
      await this.tool('tpm2_activatecredential', base);
    } else {
      // The EK's authPolicy is PolicySecret(endorsement hierarchy): satisfy it in one tool run's session.
      const env = { ...process.env, TPM2TOOLS_TCTI: this.opts.tcti };
      const session = this.file('ek-policy.ctx');
      try {
        await run('tpm2_startauthsession', ['--policy-session', '-g', this.ekNameAlg, '-S', session], {
          env,
          timeout: TOOL_TIMEOUT_MS,
        });
        await run('tpm2_policysecret', ['-S', session, '-c', 'e'], { env, timeout: TOOL_TIMEOUT_MS });
        await this.tool('tpm2_activatecredential', [...base, '-P', `session:${session}`]);
      } catch (err) {
        if (err instanceof AttestError) throw err;
        throw new AttestError('ATTESTER_FAILED', `EK policy session failed: ${(err as Error).message}`);
      }
    }
    return readFileSync(out);
  }
}

/** `tpm2_quote -F values` writes the PCR values concatenated in selection order; pair them with the indices. */
function pcrValues(attest: Buffer, values: Buffer): Record<string, string> {
  const quote = parseQuote(attest);
  const out: Record<string, string> = {};
  let off = 0;
  for (const sel of quote.pcrSelect) {
    const size = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }[sel.hash];
    for (const pcr of sel.pcrs) {
      out[String(pcr)] = values.subarray(off, off + size).toString('hex');
      off += size;
    }
  }
  return out;
}

/** NV reads can return the certificate followed by padding; keep the DER SEQUENCE only. */
function trimNvCert(nv: Buffer): Buffer {
  if (nv.length < 4 || nv[0] !== 0x30 || nv[1] !== 0x82) return nv;
  return nv.subarray(0, 4 + nv.readUInt16BE(2));
}
