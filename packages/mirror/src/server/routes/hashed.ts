import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LookupAlgorithm } from '@airlock/cas';
import { fromBase64, fromNixBase32, toHex } from '@airlock/core';
import { sendBlob } from '../blob-response.js';
import type { MirrorContext } from '../context.js';
import { badRequest, notFound } from '../http-utils.js';

const BYTES: Record<LookupAlgorithm, number> = { sha1: 20, sha256: 32, sha512: 64 };
const HASH_ALGORITHMS = new Set(['sha1', 'sha256', 'sha512', 'md5']);
// eslint-disable-next-line no-control-regex
const PLAIN_FILENAME = /^[^/\\\u0000-\u001f\u007f]{1,255}$/;

export interface HashedRequest {
  algorithm: LookupAlgorithm;
  hex: string;
  /** Bazel `/sha256/<hex>/<filename>` form (the name only tells Bazel the archive type). */
  filename?: string;
}

/**
 * Content-addressed paths, as Nix `hashed-mirrors` and nixpkgs' fetchurl ask for them, plus Bazel's form:
 * - `/<algo>/<base16>` (Nix's builtin:fetchurl, Nix 2.x: `<mirror>/<algo>/<hash printed base16>`),
 * - `/<algo>/<nix base32>` and `/<algo>/<base64>` (nixpkgs fetchurl uses the hash as written in the expression;
 *   the aliases of nixpkgs' copy-tarballs.pl),
 * - `/<algo>/<algo>-<base64>` and `//<algo>-<base64>` (an SRI `hash = "sha256-…"`, with or without outputHashAlgo),
 * - `/sha256/<hex>/<filename>` (Bazel URLs that need a file name for the archive type).
 * Returns undefined when the path is not a hash path, `'unsupported'` for md5 (we keep no md5 digests).
 */
export function parseHashedPath(segments: string[]): HashedRequest | 'unsupported' | undefined {
  const segs = [...segments];
  while (segs[0] === '') segs.shift();
  const first = segs[0];
  if (first === undefined) return undefined;
  const sri = /^(sha1|sha256|sha512)-/.exec(first);
  if (sri) return decodeHash(sri[1] as LookupAlgorithm, segs.join('/').slice(sri[0].length));
  if (!HASH_ALGORITHMS.has(first) || segs.length < 2) return undefined;
  if (first === 'md5') return 'unsupported';
  const algorithm = first as LookupAlgorithm;
  const rest = segs.slice(1);
  if (algorithm === 'sha256' && rest.length === 2 && /^[0-9a-fA-F]{64}$/.test(rest[0]!)) {
    if (!PLAIN_FILENAME.test(rest[1]!)) throw badRequest('file name after the hash must be a plain file name');
    return { algorithm, hex: rest[0]!.toLowerCase(), filename: rest[1]! };
  }
  let hash = rest.join('/');
  for (const prefix of [`${algorithm}-`, `${algorithm}:`])
    if (hash.startsWith(prefix)) hash = hash.slice(prefix.length);
  return decodeHash(algorithm, hash);
}

function decodeHash(algorithm: LookupAlgorithm, text: string): HashedRequest {
  const bytes = BYTES[algorithm];
  if (text.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(text)) return { algorithm, hex: text.toLowerCase() };
  if (text.length === Math.ceil((bytes * 8) / 5)) {
    try {
      return { algorithm, hex: toHex(fromNixBase32(text, bytes)) };
    } catch {
      // not nix32 after all; fall through to base64
    }
  }
  if (text.length === 4 * Math.ceil(bytes / 3)) {
    try {
      const raw = fromBase64(text);
      if (raw.length === bytes) return { algorithm, hex: toHex(raw) };
    } catch {
      // fall through
    }
  }
  throw badRequest(`'${text.slice(0, 140)}' is not a ${algorithm} hash in base16, nix base32 or base64`);
}

export async function handleHashed(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  request: HashedRequest | 'unsupported',
): Promise<void> {
  if (request === 'unsupported') throw notFound('this mirror indexes sha256, sha512 and sha1 digests only');
  const blob = ctx.files.lookup(`${request.algorithm}\0${request.hex}`, () =>
    ctx.store.index.findBlobByDigest(request.algorithm, request.hex),
  );
  if (!blob) throw notFound(`no blob with ${request.algorithm} ${request.hex} in this mirror`);
  await sendBlob(ctx, req, res, blob);
}

/** Generic `GET|HEAD /blobs/sha256/<hex>`. */
export function parseBlobPath(segments: string[]): string | undefined {
  if (segments.length === 3 && segments[0] === 'blobs' && segments[1] === 'sha256') {
    const hex = segments[2]!;
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw badRequest('blob names are 64 hex characters (sha256)');
    return hex.toLowerCase();
  }
  return undefined;
}

export async function handleBlob(
  ctx: MirrorContext,
  req: IncomingMessage,
  res: ServerResponse,
  sha256: string,
): Promise<void> {
  const blob = ctx.files.lookup(`sha256\0${sha256}`, () => ctx.store.index.getVisibleBlob(sha256));
  if (!blob) throw notFound(`no blob sha256:${sha256} in this mirror`);
  await sendBlob(ctx, req, res, blob);
}
