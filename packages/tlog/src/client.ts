import type { InclusionProof, LogEntry } from './entry.js';
import { TlogError } from './errors.js';

/**
 * A Rekor v1 REST client (global `fetch`): the same paths and shapes as public Rekor (`openapi.yaml`), so it works
 * against rekor.sigstore.dev as well as this package's server. Responses are validated before use.
 */

export interface LogInfo {
  rootHash: string;
  treeSize: number;
  signedTreeHead: string;
  treeID: string;
  inactiveShards: unknown[];
}

export interface ConsistencyProof {
  rootHash: string;
  hashes: string[];
}

export interface RekorClientOptions {
  baseUrl: string;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Largest response body accepted. Default 16 MiB. */
  maxResponseBytes?: number;
  fetch?: typeof fetch;
}

export interface CreatedEntry extends LogEntry {
  /** True when the log already held this entry (HTTP 409) and it was fetched instead. */
  existed: boolean;
}

// Public Rekor caps entryUUIDs / logIndexes at 10 per query.
const RETRIEVE_CHUNK = 10;

type Json = Record<string, unknown>;

function badResponse(message: string): never {
  throw new TlogError('TLOG_BAD_RESPONSE', `Rekor response: ${message}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isHexString = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]*$/i.test(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseInclusionProof(v: unknown): InclusionProof {
  if (!isObject(v)) badResponse('inclusionProof is not an object');
  const { logIndex, treeSize, rootHash, hashes, checkpoint } = v;
  if (!isCount(logIndex) || !isCount(treeSize)) badResponse('inclusionProof logIndex/treeSize are not integers');
  if (!isHexString(rootHash) || rootHash.length !== 64) badResponse('inclusionProof rootHash is not 32 hex bytes');
  if (!Array.isArray(hashes) || !hashes.every((h) => isHexString(h) && h.length === 64))
    badResponse('inclusionProof hashes are not 32-byte hex strings');
  if (typeof checkpoint !== 'string') badResponse('inclusionProof checkpoint missing');
  return { logIndex, treeSize, rootHash, hashes: hashes as string[], checkpoint };
}

/** Parses one `{ "<uuid>": {...} }` object (exactly one key, as sigstore-js insists). */
export function parseLogEntryResponse(data: unknown): LogEntry {
  if (!isObject(data)) badResponse('entry is not an object');
  const keys = Object.keys(data);
  if (keys.length !== 1) badResponse(`expected exactly one entry, got ${keys.length}`);
  const uuid = keys[0]!;
  if (!/^[0-9a-f]{64}([0-9a-f]{16})?$/i.test(uuid)) badResponse('entry UUID is not 64/80 hex characters');
  const v = data[uuid];
  if (!isObject(v)) badResponse('entry value is not an object');
  const { body, integratedTime, logID, logIndex, verification } = v;
  if (typeof body !== 'string') badResponse('entry body missing');
  if (!isCount(integratedTime)) badResponse('entry integratedTime is not an integer');
  if (!isHexString(logID) || logID.length !== 64) badResponse('entry logID is not 32 hex bytes');
  if (!isCount(logIndex)) badResponse('entry logIndex is not an integer');
  const entry: LogEntry = { uuid, body, integratedTime, logID, logIndex };
  if (verification !== undefined) {
    if (!isObject(verification)) badResponse('entry verification is not an object');
    const { signedEntryTimestamp, inclusionProof } = verification;
    if (signedEntryTimestamp !== undefined && typeof signedEntryTimestamp !== 'string')
      badResponse('signedEntryTimestamp is not a string');
    entry.verification = {
      ...(signedEntryTimestamp !== undefined ? { signedEntryTimestamp: signedEntryTimestamp as string } : {}),
      ...(inclusionProof !== undefined ? { inclusionProof: parseInclusionProof(inclusionProof) } : {}),
    };
  }
  return entry;
}

export class RekorClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: RekorClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.baseUrl);
    } catch {
      throw new TlogError('TLOG_INVALID_OPTION', `invalid Rekor base URL '${options.baseUrl}'`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new TlogError('TLOG_INVALID_OPTION', 'Rekor base URL must be http(s)');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Logs an entry. On 409 (already logged) fetches the existing entry from the `Location` header. */
  async createEntry(proposed: unknown): Promise<CreatedEntry> {
    const res = await this.request('POST', '/api/v1/log/entries', proposed, [201, 409]);
    if (res.status === 409) {
      const location = res.headers.get('location') ?? '';
      const uuid = location.split('/').pop() ?? '';
      if (!/^[0-9a-f]{64}([0-9a-f]{16})?$/i.test(uuid)) badResponse('409 without a usable Location header');
      return { ...(await this.getEntryByUuid(uuid)), existed: true };
    }
    return { ...parseLogEntryResponse(await this.json(res)), existed: false };
  }

  async getEntryByUuid(uuid: string): Promise<LogEntry> {
    if (!/^[0-9a-f]{64}([0-9a-f]{16})?$/i.test(uuid))
      throw new TlogError('TLOG_INVALID_OPTION', 'entry UUID must be 64 or 80 hex characters');
    return parseLogEntryResponse(await this.json(await this.request('GET', `/api/v1/log/entries/${uuid}`)));
  }

  async getEntryByIndex(logIndex: number): Promise<LogEntry> {
    if (!isCount(logIndex)) throw new TlogError('TLOG_INVALID_OPTION', 'logIndex must be a non-negative integer');
    return parseLogEntryResponse(
      await this.json(await this.request('GET', `/api/v1/log/entries?logIndex=${logIndex}`)),
    );
  }

  /** Entries by UUID and/or index (unknown ones are omitted by the server). Queries in chunks public Rekor accepts. */
  async retrieveEntries(query: { entryUUIDs?: string[]; logIndexes?: number[] }): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    const run = async (body: Json) => {
      const data = await this.json(await this.request('POST', '/api/v1/log/entries/retrieve', body));
      if (!Array.isArray(data)) badResponse('retrieve did not return an array');
      out.push(...data.map(parseLogEntryResponse));
    };
    const uuids = query.entryUUIDs ?? [];
    const indexes = query.logIndexes ?? [];
    for (let i = 0; i < uuids.length; i += RETRIEVE_CHUNK)
      await run({ entryUUIDs: uuids.slice(i, i + RETRIEVE_CHUNK) });
    for (let i = 0; i < indexes.length; i += RETRIEVE_CHUNK)
      await run({ logIndexes: indexes.slice(i, i + RETRIEVE_CHUNK) });
    return out;
  }

  async getLogInfo(): Promise<LogInfo> {
    const data = await this.json(await this.request('GET', '/api/v1/log'));
    if (!isObject(data)) badResponse('log info is not an object');
    const { rootHash, treeSize, signedTreeHead, treeID, inactiveShards } = data;
    if (!isHexString(rootHash) || rootHash.length !== 64) badResponse('log info rootHash is not 32 hex bytes');
    if (!isCount(treeSize)) badResponse('log info treeSize is not an integer');
    if (typeof signedTreeHead !== 'string') badResponse('log info signedTreeHead missing');
    if (typeof treeID !== 'string' || !/^[0-9]{1,20}$/.test(treeID))
      badResponse('log info treeID is not a decimal string');
    return {
      rootHash,
      treeSize,
      signedTreeHead,
      treeID,
      inactiveShards: Array.isArray(inactiveShards) ? inactiveShards : [],
    };
  }

  /** The log's public key (PEM). */
  async getPublicKey(): Promise<string> {
    const text = await this.text(await this.request('GET', '/api/v1/log/publicKey'));
    if (!text.includes('-----BEGIN PUBLIC KEY-----')) badResponse('publicKey is not a PEM public key');
    return text;
  }

  async getConsistencyProof(firstSize: number, lastSize: number): Promise<ConsistencyProof> {
    if (!isCount(firstSize) || !isCount(lastSize))
      throw new TlogError('TLOG_INVALID_OPTION', 'sizes must be non-negative integers');
    const data = await this.json(
      await this.request('GET', `/api/v1/log/proof?firstSize=${firstSize}&lastSize=${lastSize}`),
    );
    if (!isObject(data)) badResponse('consistency proof is not an object');
    const { rootHash, hashes } = data;
    if (!isHexString(rootHash) || rootHash.length !== 64) badResponse('consistency proof rootHash is not 32 hex bytes');
    if (!Array.isArray(hashes) || !hashes.every((h) => isHexString(h) && h.length === 64))
      badResponse('consistency proof hashes are not 32-byte hex strings');
    return { rootHash, hashes: hashes as string[] };
  }

  /**
   * UUIDs of entries for an artifact digest (`sha256:<hex>`) and/or a signer (PEM certificate or public key).
   * `operator` combines both criteria (default 'or').
   */
  async searchIndex(query: { hash?: string; publicKey?: string; operator?: 'and' | 'or' }): Promise<string[]> {
    const body: Json = {};
    if (query.hash !== undefined) body.hash = query.hash;
    if (query.publicKey !== undefined)
      body.publicKey = { format: 'x509', content: Buffer.from(query.publicKey, 'utf8').toString('base64') };
    if (query.operator !== undefined) body.operator = query.operator;
    const data = await this.json(await this.request('POST', '/api/v1/index/retrieve', body));
    if (!Array.isArray(data) || !data.every((u) => typeof u === 'string' && /^[0-9a-f]{64}([0-9a-f]{16})?$/i.test(u))) {
      badResponse('index search did not return an array of UUIDs');
    }
    return data as string[];
  }

  private async request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    okStatuses: number[] = [200],
  ): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        headers: { Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new TlogError('TLOG_HTTP_ERROR', `${method} ${this.baseUrl}${path} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!okStatuses.includes(res.status)) {
      let message = res.statusText;
      try {
        const text = await this.text(res);
        const parsed: unknown = JSON.parse(text);
        if (isObject(parsed) && typeof parsed.message === 'string') message = parsed.message;
      } catch {
        // keep the status text
      }
      throw new TlogError('TLOG_HTTP_ERROR', `${method} ${path}: HTTP ${res.status}: ${message.slice(0, 500)}`, {
        details: { status: res.status, message: message.slice(0, 500) },
      });
    }
    return res;
  }

  private async text(res: Response): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > this.maxResponseBytes)
      badResponse(`body of ${declared} bytes is larger than ${this.maxResponseBytes}`);
    const buf = Buffer.from(await res.arrayBuffer());
    if (buf.length > this.maxResponseBytes) badResponse(`body is larger than ${this.maxResponseBytes} bytes`);
    return buf.toString('utf8');
  }

  private async json(res: Response): Promise<unknown> {
    const text = await this.text(res);
    try {
      return JSON.parse(text);
    } catch {
      return badResponse('body is not JSON');
    }
  }
}
