import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type http from 'node:http';
import {
  AirlockError,
  closeNow,
  createLimitedServer,
  listen,
  type HttpLimits,
  type RequestContext,
  type RequestGate,
} from '@airlock/core';
import { TimestampAuthority, parseJsonTimestampRequest, parseTimestampQuery } from './authority.js';
import { TsaError } from './errors.js';
import { loadOrCreateTsaMaterial, type TsaMaterial } from './material.js';

export interface StartTsaServerOptions {
  /** Where `tsa/` (chain and 0600 key) lives; ignored when `material` is given. */
  dataDir?: string;
  /** Key and chain to serve (tests build expired or untrusted chains with `createTsaMaterial`). */
  material?: TsaMaterial;
  host?: string;
  port?: number;
  /** Request body limit (default 16 KiB: a request is an imprint, a nonce and a few flags). */
  maxBodyBytes?: number;
  limits?: Partial<HttpLimits>;
  tls?: HttpsServerOptions;
  gate?: RequestGate;
  /** The TSA's clock (tests only). */
  clock?: () => Date;
}

export interface TsaServer {
  url: string;
  tsa: TimestampAuthority;
  /** `[leaf, root]` DER for trusted_root `timestampAuthorities[].certChain`. */
  chainDer: Buffer[];
  /** trusted_root `validFor.start`: the leaf's notBefore. */
  validFrom: Date;
  close(): Promise<void>;
}

export const TIMESTAMP_PATH = '/api/v1/timestamp';
export const CERTCHAIN_PATH = '/api/v1/timestamp/certchain';

interface Reply {
  status: number;
  type: string;
  body: Buffer;
}

/** Starts the sigstore/timestamp-authority compatible API: `POST /api/v1/timestamp`, `GET …/certchain`. */
export async function startTsaServer(options: StartTsaServerOptions): Promise<TsaServer> {
  if (!options.material && !options.dataDir)
    throw new TsaError('TSA_KEY_INVALID', 'startTsaServer needs a dataDir or key material');
  const material = options.material ?? (await loadOrCreateTsaMaterial(options.dataDir!));
  const tsa = new TimestampAuthority(material);
  const maxBody = options.maxBodyBytes ?? 16 * 1024;
  const clock = options.clock ?? (() => new Date());
  const server = createLimitedServer(
    (req, res, ctx) =>
      route(tsa, maxBody, clock, req, ctx)
        .catch(errorReply)
        .then((reply) => send(res, reply)),
    {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.gate ? { gate: options.gate } : {}),
      writeError: (res, status, code, message, headers) => send(res, jsonReply(status, code, message), headers),
    },
  );
  const { url } = await listen(server, options);
  return {
    url,
    tsa,
    chainDer: tsa.chainDer,
    validFrom: material.chain[0]!.notBefore,
    close: () => closeNow(server),
  };
}

async function route(
  tsa: TimestampAuthority,
  maxBody: number,
  clock: () => Date,
  req: http.IncomingMessage,
  ctx: RequestContext,
): Promise<Reply> {
  const pathname = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  if (pathname === CERTCHAIN_PATH) {
    if (method !== 'GET') return jsonReply(405, 'METHOD_NOT_ALLOWED', 'use GET');
    return { status: 200, type: 'application/pem-certificate-chain', body: Buffer.from(tsa.chainPem) };
  }
  if (pathname !== TIMESTAMP_PATH) return jsonReply(404, 'NOT_FOUND', `no route for ${method} ${pathname ?? ''}`);
  if (method !== 'POST') return jsonReply(405, 'METHOD_NOT_ALLOWED', 'use POST');
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  let request;
  if (type === 'application/json') request = parseJsonTimestampRequest(await ctx.readJson(maxBody));
  else if (type === 'application/timestamp-query') request = parseTimestampQuery(await ctx.readBody(maxBody));
  else
    throw new TsaError(
      'TSA_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/json or application/timestamp-query, not '${type || '(none)'}'`,
    );
  // 201 Created, as sigstore/timestamp-authority answers.
  return { status: 201, type: 'application/timestamp-reply', body: tsa.respond(request, clock()) };
}

function jsonReply(status: number, code: string, message: string): Reply {
  return { status, type: 'application/json', body: Buffer.from(JSON.stringify({ code, message })) };
}

const STATUS: Partial<Record<string, number>> = { TSA_UNSUPPORTED_MEDIA_TYPE: 415 };

function errorReply(err: unknown): Reply {
  if (err instanceof TsaError) return jsonReply(STATUS[err.code] ?? 400, err.code, err.message);
  const status = (err as { status?: unknown }).status;
  if (err instanceof AirlockError && typeof status === 'number') return jsonReply(status, err.code, err.message);
  return jsonReply(500, 'TSA_INTERNAL', 'internal error while creating the timestamp');
}

function send(res: http.ServerResponse, reply: Reply, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(reply.status, {
    ...headers,
    'content-type': reply.type,
    'content-length': reply.body.length,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(reply.body);
}
