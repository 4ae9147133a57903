import { toWire } from '../entry.js';
import { TlogError } from '../errors.js';
import type { TransparencyLog } from '../log.js';
import type { TileWriter } from '../tiles/writer.js';
import { parseVerifierBase64 } from '../pki.js';
import { prepareEntry } from '../types/index.js';
import { artifactKey, isObject, signerKey } from '../types/common.js';
import type { HttpResponse } from './http-util.js';

/**
 * Rekor v1 REST routes (rekor `openapi.yaml`), as plain functions of the request and the log. Each returns the
 * response to send or throws a TlogError (mapped to `{code, message}` with its HTTP status).
 */

export interface RouteRequest {
  url: URL;
  /** Captured path segments. */
  params: string[];
  readJson(): Promise<unknown>;
}

export interface RouteDeps {
  log: TransparencyLog;
  /** The tlog-tiles publisher (Rekor v2 reads and the v2 write path wait on it); absent when tiles are off. */
  tiles?: TileWriter;
}

export type RouteHandler = (req: RouteRequest, deps: RouteDeps) => Promise<HttpResponse> | HttpResponse;

const MAX_RETRIEVE_ITEMS = 100;
// Looking up by proposed content re-verifies each signature (milliseconds each): keep Rekor's limit of 10.
const MAX_RETRIEVE_PROPOSED = 10;

function badRequest(message: string): never {
  throw new TlogError('TLOG_BAD_REQUEST', message);
}

function notFound(message: string): never {
  throw new TlogError('TLOG_ENTRY_NOT_FOUND', message);
}

/** A non-negative decimal integer query parameter; `fallback` when absent. */
function intParam(url: URL, name: string, fallback?: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) {
    if (fallback === undefined) badRequest(`query parameter ${name} is required`);
    return fallback!;
  }
  if (!/^[0-9]{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    badRequest(`query parameter ${name} must be a non-negative integer`);
  return Number(raw);
}

function checkTreeId(url: URL, log: TransparencyLog): void {
  const treeId = url.searchParams.get('treeID');
  if (treeId !== null && treeId !== log.treeId)
    notFound(`unknown treeID ${treeId.slice(0, 24)} (this log's is ${log.treeId})`);
}

/** POST /api/v1/log/entries */
export const createEntry: RouteHandler = async (req, { log }) => {
  const prepared = prepareEntry(await req.readJson());
  const entry = await log.submit(prepared);
  return {
    status: 201,
    body: toWire(entry),
    headers: { Location: `/api/v1/log/entries/${entry.uuid}`, ETag: entry.uuid },
  };
};

/** GET /api/v1/log/entries?logIndex=N */
export const getEntryByIndex: RouteHandler = async (req, { log }) => {
  const index = intParam(req.url, 'logIndex');
  const entry = await log.getByIndex(index);
  if (!entry) notFound(`no entry at logIndex ${index} (tree size ${log.size})`);
  return { status: 200, body: toWire(entry!) };
};

/** GET /api/v1/log/entries/{uuid} — 64-hex UUID or 80-hex entry ID. */
export const getEntryByUuid: RouteHandler = async (req, { log }) => {
  const uuid = req.params[0] ?? '';
  if (!/^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$/.test(uuid)) badRequest('entry UUID must be 64 or 80 hex characters');
  const entry = await log.getByUuid(uuid);
  if (!entry) notFound(`no entry with UUID ${uuid}`);
  return { status: 200, body: toWire(entry!) };
};

function boundedArray(value: unknown, name: string, max = MAX_RETRIEVE_ITEMS): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) badRequest(`${name} must be an array`);
  if ((value as unknown[]).length > max) badRequest(`${name}: at most ${max} items`);
  return value as unknown[];
}

/** POST /api/v1/log/entries/retrieve — `{entryUUIDs?, logIndexes?, entries?}` → array of `{uuid: entry}`; unknown ones are skipped. */
export const retrieveEntries: RouteHandler = async (req, { log }) => {
  const query = await req.readJson();
  if (!isObject(query)) badRequest('search query must be a JSON object');
  const uuids = boundedArray(query.entryUUIDs, 'entryUUIDs');
  const indexes = boundedArray(query.logIndexes, 'logIndexes');
  const proposed = boundedArray(query.entries, 'entries', MAX_RETRIEVE_PROPOSED);
  if (uuids.length + indexes.length + proposed.length === 0)
    badRequest('give at least one of entryUUIDs, logIndexes or entries');
  const found = new Map<string, ReturnType<typeof toWire>>();
  for (const u of uuids) {
    if (typeof u !== 'string' || !/^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$/.test(u))
      badRequest('entryUUIDs must be 64 or 80 hex characters each');
    const e = await log.getByUuid(u as string);
    if (e) found.set(e.uuid, toWire(e));
  }
  for (const i of indexes) {
    if (typeof i !== 'number' || !Number.isSafeInteger(i) || i < 0)
      badRequest('logIndexes must be non-negative integers');
    const e = await log.getByIndex(i as number);
    if (e) found.set(e.uuid, toWire(e));
  }
  for (const p of proposed) {
    const e = await log.getByUuid(prepareEntry(p).leafHash.toString('hex'));
    if (e) found.set(e.uuid, toWire(e));
  }
  return { status: 200, body: [...found.values()] };
};

/** GET /api/v1/log */
export const getLogInfo: RouteHandler = (_req, { log }) => {
  const cp = log.checkpoint();
  return {
    status: 200,
    body: {
      rootHash: cp.rootHash.toString('hex'),
      treeSize: cp.size,
      signedTreeHead: cp.note,
      treeID: log.treeId,
      inactiveShards: [],
    },
  };
};

/** GET /api/v1/log/publicKey */
export const getPublicKey: RouteHandler = (req, { log }) => {
  checkTreeId(req.url, log);
  return { status: 200, body: log.publicKeyPem, contentType: 'application/x-pem-file' };
};

/** GET /api/v1/log/proof?firstSize=&lastSize= — consistency proof `{rootHash, hashes}` (root of lastSize). */
export const getConsistencyProof: RouteHandler = async (req, { log }) => {
  checkTreeId(req.url, log);
  const first = intParam(req.url, 'firstSize', 1);
  const last = intParam(req.url, 'lastSize');
  if (first < 1) badRequest('firstSize must be at least 1');
  if (first > last) badRequest(`firstSize(${first}) must be less than or equal to lastSize(${last})`);
  if (last > log.size) badRequest(`lastSize(${last}) is larger than the tree size (${log.size})`);
  return {
    status: 200,
    body: {
      rootHash: (await log.rootAt(last)).toString('hex'),
      hashes: (await log.consistencyProof(first, last)).map((h) => h.toString('hex')),
    },
  };
};

/** POST /api/v1/index/retrieve — `{hash?, publicKey?:{format:'x509', content}, operator?}` → array of UUIDs. */
export const searchIndex: RouteHandler = async (req, { log }) => {
  const query = await req.readJson();
  if (!isObject(query)) badRequest('search query must be a JSON object');
  if (query.email !== undefined) badRequest('search by email is not supported by this log');
  const keys: string[] = [];
  if (query.hash !== undefined) {
    if (typeof query.hash !== 'string') badRequest('hash must be a string');
    const h = (query.hash as string).toLowerCase();
    const m = /^(?:(sha256|sha384|sha512):)?([0-9a-f]+)$/.exec(h);
    const expected = { sha256: 64, sha384: 96, sha512: 128 } as const;
    const alg = (m?.[1] ?? 'sha256') as keyof typeof expected;
    if (!m || m[2]!.length !== expected[alg])
      badRequest('hash must be <algorithm>:<hex digest> (sha256, sha384 or sha512)');
    keys.push(artifactKey(alg, m![2]!));
  }
  if (query.publicKey !== undefined) {
    const pk = query.publicKey;
    if (!isObject(pk)) badRequest('publicKey must be an object');
    const { format, content, url } = pk as Record<string, unknown>;
    if (format !== 'x509')
      badRequest(`publicKey.format ${JSON.stringify(format)?.slice(0, 20)} is not supported (only x509)`);
    if (url !== undefined) badRequest('publicKey.url is not supported; send publicKey.content');
    try {
      keys.push(signerKey(parseVerifierBase64(content, 'publicKey.content').fingerprint));
    } catch (err) {
      badRequest((err as Error).message);
    }
  }
  if (keys.length === 0) badRequest('give hash and/or publicKey');
  const operator = query.operator ?? 'or';
  if (operator !== 'and' && operator !== 'or') badRequest("operator must be 'and' or 'or'");
  return { status: 200, body: await log.search(keys, operator) };
};

export interface Route {
  pattern: RegExp;
  methods: Partial<Record<'GET' | 'POST', RouteHandler>>;
}

/** The route table: paths are matched exactly (anchored). */
export const ROUTES: readonly Route[] = [
  { pattern: /^\/api\/v1\/log\/entries$/, methods: { POST: createEntry, GET: getEntryByIndex } },
  { pattern: /^\/api\/v1\/log\/entries\/retrieve$/, methods: { POST: retrieveEntries } },
  { pattern: /^\/api\/v1\/log\/entries\/([^/]+)$/, methods: { GET: getEntryByUuid } },
  { pattern: /^\/api\/v1\/log$/, methods: { GET: getLogInfo } },
  { pattern: /^\/api\/v1\/log\/publicKey$/, methods: { GET: getPublicKey } },
  { pattern: /^\/api\/v1\/log\/proof$/, methods: { GET: getConsistencyProof } },
  { pattern: /^\/api\/v1\/index\/retrieve$/, methods: { POST: searchIndex } },
];
