import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { privateKeyFileProblem } from '@airlock/core';
import { TlogError } from './errors.js';

export const SIGNING_KEY_FILE = 'tlog-signing-key.pem';

/**
 * An ECDSA P-256 key held elsewhere (a PKCS#11 token): its SPKI, and one method that signs with SHA-256 and returns
 * a DER (X9.62) signature. The private key never enters this process.
 */
export interface KeySigner {
  readonly spkiDer: Buffer;
  sign(data: Uint8Array): Buffer;
  /** The same signature made off the event loop (the libuv thread pool), where the key allows it. */
  signAsync?(data: Uint8Array): Promise<Buffer>;
}

/** Today's file-backed key as a `KeySigner`. */
class KeyObjectSigner implements KeySigner {
  readonly spkiDer: Buffer;
  constructor(private readonly key: KeyObject) {
    if (
      key.type !== 'private' ||
      key.asymmetricKeyType !== 'ec' ||
      key.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new TlogError('TLOG_SIGNING_KEY_INVALID', 'the log signing key must be an ECDSA P-256 private key');
    }
    this.spkiDer = createPublicKey(key).export({ type: 'spki', format: 'der' });
  }
  sign(data: Uint8Array): Buffer {
    return sign('sha256', data, this.key);
  }
  signAsync(data: Uint8Array): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      sign('sha256', data, this.key, (err, signature) => (err ? reject(err) : resolve(signature))),
    );
  }
}

/**
 * The log's ECDSA P-256 key. It signs SETs and checkpoints with ECDSA/SHA-256 (DER signatures) — the only EC
 * combination sigstore-js verifies (`crypto.verify(undefined, …)` always hashes with SHA-256).
 */
export class LogSigner {
  readonly publicKey: KeyObject;
  readonly publicKeyDer: Buffer;
  readonly publicKeyPem: string;
  /** Hex SHA-256 of the DER SPKI: Rekor's `logID`. */
  readonly logId: string;
  /** First 4 bytes of SHA-256(DER SPKI): the C2SP signed-note key hint Rekor v1 uses for ECDSA keys. */
  readonly keyHint: Buffer;

  private readonly signer: KeySigner;

  /** A PEM/KeyObject private key (today's file), or a `KeySigner` whose key lives in a token. */
  constructor(key: KeyObject | KeySigner) {
    this.signer = 'spkiDer' in key ? key : new KeyObjectSigner(key);
    try {
      this.publicKey = createPublicKey({ key: this.signer.spkiDer, format: 'der', type: 'spki' });
    } catch (err) {
      throw new TlogError('TLOG_SIGNING_KEY_INVALID', 'the log signing key has an invalid public key', { cause: err });
    }
    if (this.publicKey.asymmetricKeyType !== 'ec' || this.publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      throw new TlogError('TLOG_SIGNING_KEY_INVALID', 'the log signing key must be an ECDSA P-256 key');
    this.publicKeyDer = this.publicKey.export({ type: 'spki', format: 'der' });
    this.publicKeyPem = this.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const digest = createHash('sha256').update(this.publicKeyDer).digest();
    this.logId = digest.toString('hex');
    this.keyHint = digest.subarray(0, 4);
  }

  sign(data: Uint8Array): Buffer {
    return this.signer.sign(data);
  }

  /** `sign` on the thread pool when the key is in this process (a token's signer signs synchronously). */
  signAsync(data: Uint8Array): Promise<Buffer> {
    if (this.signer.signAsync) return this.signer.signAsync(data);
    try {
      return Promise.resolve(this.signer.sign(data));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Loads `path` (PKCS#8 or SEC1 PEM), which must be 0600 and owned by this process's user. */
  static fromFile(path: string): LogSigner {
    let pem: string;
    try {
      const problem = privateKeyFileProblem(path, 'log signing key');
      if (problem) {
        const code = problem.kind === 'type' ? 'TLOG_SIGNING_KEY_INVALID' : 'TLOG_SIGNING_KEY_PERMISSIONS';
        throw new TlogError(code, problem.message);
      }
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      if (err instanceof TlogError) throw err;
      throw new TlogError(
        'TLOG_SIGNING_KEY_INVALID',
        `cannot read the log signing key ${path}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch (err) {
      throw new TlogError('TLOG_SIGNING_KEY_INVALID', `${path} is not a PEM private key`, { cause: err });
    }
    return new LogSigner(key);
  }

  /**
   * The key in `<dataDir>/tlog-signing-key.pem`, generated on first use (mode 0600). Written to a temp file and
   * hard-linked into place, so a crash never leaves a half-written key and two racing starts cannot both win.
   */
  static loadOrCreate(dataDir: string): LogSigner {
    const path = join(dataDir, SIGNING_KEY_FILE);
    if (existsSync(path)) return LogSigner.fromFile(path);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, pem);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else created it first: use theirs.
    } finally {
      unlinkSync(tmp);
    }
    fsyncDir(dataDir);
    return LogSigner.fromFile(path);
  }
}

/** fsync a directory so a rename/link in it survives a power loss (best effort where unsupported). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the data itself was fsynced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
