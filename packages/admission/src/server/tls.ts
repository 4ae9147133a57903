import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { AdmissionServerError } from './errors.js';

/** TLS 1.2 is the floor (the requirement; Kubernetes API servers speak 1.2 and 1.3). */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Trust bundle for client certificates (mTLS); kept in every reloaded context. */
  clientCa?: string | Buffer;
}

export interface TlsReloadResult {
  ok: boolean;
  /** Why the new pair was refused (the old one stays in use). Never quotes the key. */
  error?: string;
}

/**
 * Reads a certificate/key pair and proves it loads (PEM parses, key matches certificate) before anyone serves it.
 * Errors name the files and OpenSSL's reason, never the contents.
 */
export async function loadTlsPair(files: TlsFiles): Promise<SecureContextOptions> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  } catch (err) {
    throw new AdmissionServerError('ADMISSION_TLS_INVALID', `cannot read TLS files: ${(err as Error).message}`);
  }
  const options: SecureContextOptions = {
    cert,
    key,
    minVersion: TLS_MIN_VERSION,
    ...(files.clientCa !== undefined ? { ca: files.clientCa } : {}),
  };
  try {
    createSecureContext(options);
  } catch (err) {
    throw new AdmissionServerError(
      'ADMISSION_TLS_INVALID',
      `TLS certificate ${files.certFile} / key ${files.keyFile} do not load: ${(err as Error).message}`,
    );
  }
  return options;
}

/**
 * Watches the certificate and key and swaps them into the running server when both load. The directories are
 * watched, not the files: Kubernetes secret volumes and cert-manager replace files by renaming a symlink, which a
 * watch on the old file would never see. A broken new pair (half-written, mismatched) keeps the old one.
 */
export class TlsReloader {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<TlsReloadResult> | undefined;
  private closed = false;

  constructor(
    private readonly server: TlsServer,
    private readonly files: TlsFiles,
    private readonly onResult: (result: TlsReloadResult) => void,
    /** Quiet period after the last file event before reloading (a writer touches both files). */
    private readonly settleMs = 100,
  ) {}

  start(): void {
    const names = new Set([basename(this.files.certFile), basename(this.files.keyFile)]);
    for (const dir of new Set([dirname(this.files.certFile), dirname(this.files.keyFile)])) {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        // Secret volumes swap `..data`; other names in the directory are not ours.
        if (name === null || names.has(name) || name.startsWith('..')) this.schedule();
      });
      w.on('error', (err) => this.onResult({ ok: false, error: `watching ${dir} failed: ${err.message}` }));
      this.watchers.push(w);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), this.settleMs);
  }

  /** Loads the files now; on success the next TLS handshake uses the new pair. */
  async reload(): Promise<TlsReloadResult> {
    if (this.running) await this.running.catch(() => undefined);
    this.running = this.loadAndSwap();
    const result = await this.running;
    this.running = undefined;
    if (!this.closed) this.onResult(result);
    return result;
  }

  private async loadAndSwap(): Promise<TlsReloadResult> {
    try {
      const options = await loadTlsPair(this.files);
      if (this.closed) return { ok: false, error: 'server closed' };
      this.server.setSecureContext(options);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
  }
}
