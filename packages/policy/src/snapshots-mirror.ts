import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { canonicalBytes } from '@airlock/core';
import type { BundleVerifier } from '@airlock/verify';
import { PolicyError } from './errors.js';
import { TransferManifestSnapshotSource, type SnapshotHit, type SnapshotSource } from './snapshots.js';

/** Media types of the mirror's answers (schemas/mirror-snapshot-lookup.v1.schema.json). */
export const MIRROR_BLOB_SNAPSHOTS_MEDIA_TYPE = 'application/vnd.airlock.mirror.blob-snapshots.v1+json';
export const MIRROR_SNAPSHOT_MEDIA_TYPE = 'application/vnd.airlock.mirror.snapshot.v1+json';

export interface MirrorLookupOptions {
  /** Verifiers over the caller's own trusted roots: a snapshot counts only with a sync bundle one of them accepts. */
  verifiers: readonly BundleVerifier[];
  /** Largest blob-lookup answer read (default 1 MiB). */
  maxLookupBytes?: number;
  /** Largest snapshot document read: manifest + bundle (default 256 MiB). */
  maxSnapshotBytes?: number;
  /** A request whose socket stays idle this long fails as unreachable (default 30 s). */
  timeoutMs?: number;
  /** Connections opened to the mirror at once (default 8). */
  maxSockets?: number;
  /** Extra CA certificates (PEM) for an https mirror. */
  ca?: string | Buffer;
}

/** A claim of the mirror the verifier could not confirm; the claim is ignored (the rule then fails closed). */
export interface MirrorDiscrepancy {
  sha256: string;
  snapshotId: string;
  reason: string;
}

/** A snapshot whose sync signature verified, as the report shows it. */
export interface MirrorSnapshotSeen {
  id: string;
  sequence: number;
  signedBy: SnapshotHit['signedBy'];
}

interface VerifiedSnapshot {
  source: TransferManifestSnapshotSource;
  seen: MirrorSnapshotSeen;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SNAPSHOT_ID = /^sha256:[0-9a-f]{64}$/;
/** More snapshots than this claimed for one blob is not an answer a real mirror gives (entries are added once). */
const MAX_CLAIMED_SNAPSHOTS = 1000;

/**
 * A snapshot source over a running mirror's lookup API (`/-/airlock/blobs/<sha256>/snapshots` and
 * `/-/airlock/snapshots/<id>`). The mirror is not trusted: each snapshot's transfer manifest is re-verified here
 * (sync bundle against the caller's trusted root, snapshot id = hash of its content) and a hit counts only when
 * the verified manifest lists the blob. A claim that does not hold is dropped and recorded in `discrepancies`,
 * so a lying mirror can withhold evidence but never add any. Transport failures are POLICY_MIRROR_UNREACHABLE.
 */
export class MirrorLookupSnapshotSource implements SnapshotSource {
  readonly discrepancies: MirrorDiscrepancy[] = [];
  private readonly base: URL;
  private readonly agent: HttpAgent;
  private readonly snapshots = new Map<string, Promise<VerifiedSnapshot | string>>();
  private readonly limits: { lookup: number; snapshot: number; timeoutMs: number };

  constructor(
    baseUrl: string,
    private readonly options: MirrorLookupOptions,
  ) {
    this.base = parseBaseUrl(baseUrl);
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 8 };
    this.agent =
      this.base.protocol === 'https:'
        ? new HttpsAgent({ ...agentOptions, ...(options.ca ? { ca: options.ca } : {}) })
        : new HttpAgent(agentOptions);
    this.limits = {
      lookup: options.maxLookupBytes ?? 1024 * 1024,
      snapshot: options.maxSnapshotBytes ?? 256 * 1024 * 1024,
      timeoutMs: options.timeoutMs ?? 30_000,
    };
  }

  async lookup(digest: { sha256: string }): Promise<SnapshotHit[]> {
    const { sha256 } = digest;
    if (!SHA256_HEX.test(sha256)) return [];
    const answer = await this.getJson(`-/airlock/blobs/${sha256}/snapshots`, this.limits.lookup);
    const claimed = parseBlobSnapshots(answer, sha256, this.where(`blob ${sha256}`));
    const hits: SnapshotHit[] = [];
    for (const id of claimed) {
      const snap = await this.snapshot(id);
      if (typeof snap === 'string') {
        this.discrepancies.push({ sha256, snapshotId: id, reason: snap });
        continue;
      }
      const found = snap.source.lookup({ sha256 });
      if (found.length === 0)
        this.discrepancies.push({ sha256, snapshotId: id, reason: 'its signed manifest does not list the blob' });
      hits.push(...found);
    }
    return hits;
  }

  /** Every snapshot verified so far (for a report). */
  async snapshotsSeen(): Promise<MirrorSnapshotSeen[]> {
    const all = await Promise.all(this.snapshots.values());
    return all.filter((s): s is VerifiedSnapshot => typeof s !== 'string').map((s) => s.seen);
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** One fetch and one signature check per snapshot; a string says why the snapshot does not count. */
  private snapshot(id: string): Promise<VerifiedSnapshot | string> {
    let p = this.snapshots.get(id);
    if (!p) {
      p = this.fetchSnapshot(id);
      this.snapshots.set(id, p);
    }
    return p;
  }

  private async fetchSnapshot(id: string): Promise<VerifiedSnapshot | string> {
    const doc = await this.getJson(`-/airlock/snapshots/${id}`, this.limits.snapshot, true);
    if (doc === undefined) return 'the mirror does not serve it (HTTP 404)';
    const o = doc as Record<string, unknown>;
    if (o?.mediaType !== MIRROR_SNAPSHOT_MEDIA_TYPE || typeof o.manifest !== 'object' || o.manifest === null)
      throw new PolicyError('POLICY_MIRROR_INVALID', `${this.where(`snapshot ${id}`)}: not a snapshot document`);
    const manifestId = (o.manifest as { snapshot?: { id?: unknown } }).snapshot?.id;
    if (manifestId !== id) return `the mirror served snapshot ${String(manifestId).slice(0, 80)} instead`;
    const bytes = canonicalBytes(o.manifest);
    let lastError = 'no verifier';
    for (const v of this.options.verifiers) {
      const source = new TransferManifestSnapshotSource();
      try {
        source.add(bytes, o.bundle, v, this.where(`snapshot ${id}`));
      } catch (err) {
        lastError = (err as Error).message;
        continue;
      }
      const signedBy = source.lastSigner ?? {};
      const sequence = (o.manifest as { snapshot: { sequence?: unknown } }).snapshot.sequence;
      return { source, seen: { id, sequence: typeof sequence === 'number' ? sequence : 0, signedBy } };
    }
    return `its sync signature does not verify: ${lastError}`;
  }

  private where(what: string): string {
    return `mirror ${this.base.origin}: ${what}`;
  }

  /** GET + JSON with a size bound; `undefined` for a 404 when `allow404`. */
  private async getJson(path: string, maxBytes: number, allow404 = false): Promise<unknown> {
    const url = new URL(path, this.base);
    let status: number;
    let body: Buffer;
    try {
      ({ status, body } = await get(url, this.agent, maxBytes, this.limits.timeoutMs));
    } catch (cause) {
      if (cause instanceof PolicyError) throw cause;
      throw new PolicyError(
        'POLICY_MIRROR_UNREACHABLE',
        `mirror ${url.origin} unreachable: ${(cause as Error).message}`,
        { cause },
      );
    }
    if (status === 404 && allow404) return undefined;
    if (status === 404)
      throw new PolicyError(
        'POLICY_MIRROR_INVALID',
        `mirror ${url.origin} does not serve the snapshot lookup API (GET ${url.pathname}: HTTP 404)`,
      );
    if (status !== 200)
      throw new PolicyError(
        'POLICY_MIRROR_UNREACHABLE',
        `mirror ${url.origin}: GET ${url.pathname} answered HTTP ${status}`,
      );
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch (cause) {
      throw new PolicyError('POLICY_MIRROR_INVALID', `mirror ${url.origin}: GET ${url.pathname} is not JSON`, {
        cause,
      });
    }
  }
}

function parseBaseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PolicyError('POLICY_MIRROR_URL_INVALID', `mirror URL '${text.slice(0, 200)}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PolicyError('POLICY_MIRROR_URL_INVALID', `mirror URL '${url.href}' must be http or https`);
  if (url.username || url.password || url.search || url.hash)
    throw new PolicyError('POLICY_MIRROR_URL_INVALID', 'mirror URL must not carry credentials, a query or a fragment');
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** The snapshot ids of a blob-lookup answer, after checking it is about the blob asked for. */
function parseBlobSnapshots(doc: unknown, sha256: string, where: string): string[] {
  const o = doc as { mediaType?: unknown; sha256?: unknown; snapshots?: unknown } | null;
  if (o?.mediaType !== MIRROR_BLOB_SNAPSHOTS_MEDIA_TYPE || o.sha256 !== sha256 || !Array.isArray(o.snapshots))
    throw new PolicyError('POLICY_MIRROR_INVALID', `${where}: not a blob-snapshots answer for this blob`);
  if (o.snapshots.length > MAX_CLAIMED_SNAPSHOTS)
    throw new PolicyError('POLICY_MIRROR_INVALID', `${where}: more than ${MAX_CLAIMED_SNAPSHOTS} snapshots claimed`);
  const ids = new Set<string>();
  for (const s of o.snapshots as unknown[]) {
    const id = (s as { id?: unknown } | null)?.id;
    if (typeof id !== 'string' || !SNAPSHOT_ID.test(id))
      throw new PolicyError('POLICY_MIRROR_INVALID', `${where}: snapshot id is not sha256:<hex>`);
    ids.add(id);
  }
  return [...ids];
}

/** One GET, body cut off past `maxBytes`; transport errors reject. */
function get(
  url: URL,
  agent: HttpAgent,
  maxBytes: number,
  timeoutMs: number,
): Promise<{ status: number; body: Buffer }> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'GET', agent, headers: { accept: 'application/json' } }, (res: IncomingMessage) => {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        res.destroy();
        reject(tooLarge(url, maxBytes));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          res.destroy();
          reject(tooLarge(url, maxBytes));
        } else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end();
  });
}

function tooLarge(url: URL, maxBytes: number): PolicyError {
  return new PolicyError(
    'POLICY_MIRROR_INVALID',
    `mirror ${url.origin}: GET ${url.pathname} exceeds ${maxBytes} bytes`,
  );
}
