import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IdentityError } from './errors.js';
import { splitDerCertificates, x509SvidToJson, type X509Svid } from './x509-svid.js';

/** Never re-fetch sooner than this (an SVID of a few seconds would otherwise spin). */
const MIN_REFRESH_MS = 500;
const MAX_RETRY_MS = 30_000;

/**
 * When to fetch the next SVID: at about half of the remaining lifetime (SPIRE rotates at half-life), so a
 * workload holds a fresh certificate long before the old one expires even if one fetch fails.
 */
export function svidRefreshDelayMs(svid: Pick<X509Svid, 'expires_at'>, nowMs: number): number {
  return Math.max(MIN_REFRESH_MS, Math.floor((svid.expires_at * 1000 - nowMs) / 2));
}

/** After a failed fetch: a quarter of what is left of the current SVID (bounded), or 2 s without one. */
export function svidRetryDelayMs(current: Pick<X509Svid, 'expires_at'> | undefined, nowMs: number): number {
  if (!current) return 2_000;
  return Math.min(MAX_RETRY_MS, Math.max(MIN_REFRESH_MS, Math.floor((current.expires_at * 1000 - nowMs) / 4)));
}

export interface X509SvidWatcherOptions {
  /** Fetches a fresh SVID (e.g. `requestAgentX509Svid(socket)` of @airlock/agent). */
  fetch: () => Promise<X509Svid>;
  /** Called with every new SVID (first one included), before the next fetch is scheduled. */
  onUpdate: (svid: X509Svid) => void | Promise<void>;
  /** A failed fetch or update; the watcher keeps the current SVID and retries. */
  onError?: (err: Error, retryInMs: number) => void;
}

export interface X509SvidWatcher {
  /** The first SVID (rejects when the first fetch fails: a workload with no identity should stop). */
  readonly ready: Promise<X509Svid>;
  current(): X509Svid | undefined;
  stop(): void;
}

/** Fetches an SVID, then keeps re-fetching it at about half-life until stopped. */
export function watchX509Svid(options: X509SvidWatcherOptions): X509SvidWatcher {
  let current: X509Svid | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (ms: number): void => {
    if (!stopped) timer = setTimeout(() => void cycle(), ms);
  };
  const cycle = async (): Promise<X509Svid> => {
    try {
      const svid = await options.fetch();
      await options.onUpdate(svid);
      current = svid;
      schedule(svidRefreshDelayMs(svid, Date.now()));
      return svid;
    } catch (err) {
      const retry = svidRetryDelayMs(current, Date.now());
      options.onError?.(err as Error, retry);
      if (current) schedule(retry);
      throw err;
    }
  };
  const ready = cycle();
  ready.catch(() => undefined); // observed by the caller through `ready`
  return {
    ready,
    current: () => current,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** The files `writeX509SvidFiles` keeps in its directory. */
export const SVID_FILES = {
  cert: 'svid.pem',
  key: 'svid-key.pem',
  bundle: 'bundle.pem',
  json: 'svid.json',
} as const;

/**
 * Writes an SVID as PEM files (chain, key 0600, bundle) plus `svid.json` (the Workload-API JSON, key included,
 * 0600: the single-file form `airlock run --mirror-svid` reads). Each file is replaced atomically (write to a
 * temporary file in the same directory, fsync, rename), so a reader never sees a half-written file.
 */
export function writeX509SvidFiles(dir: string, svid: X509Svid): Record<keyof typeof SVID_FILES, string> {
  if (!svid.x509_svid_key)
    throw new IdentityError('MTLS_CONFIG_INVALID', `the SVID for ${svid.spiffe_id} carries no key to write`);
  const pem = (der: Buffer): string =>
    splitDerCertificates(der)
      .map((c) => new X509Certificate(c).toString())
      .join('');
  const keyPem = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = {
    key: atomicWrite(path.join(dir, SVID_FILES.key), keyPem, 0o600),
    json: atomicWrite(path.join(dir, SVID_FILES.json), `${JSON.stringify(x509SvidToJson(svid))}\n`, 0o600),
    cert: atomicWrite(path.join(dir, SVID_FILES.cert), pem(svid.x509_svid), 0o644),
    bundle: atomicWrite(path.join(dir, SVID_FILES.bundle), pem(svid.bundle), 0o644),
  };
  return files;
}

function atomicWrite(file: string, data: string, mode: number): string {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true }); // a leftover of a crash; 'wx' then never follows a planted link
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode); // the umask may have narrowed it; make it exact
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return file;
}
