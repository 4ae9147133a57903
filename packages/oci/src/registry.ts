import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { OciError } from './errors.js';
import { failStatus, header, httpExchange, type HttpOptions, type HttpResponse, type RequestSpec } from './http.js';
import {
  checkLayoutBlob,
  parseImageIndex,
  parseImageManifest,
  readLayoutBlob,
  resolveLayoutManifest,
} from './layout.js';
import { MANIFEST_ACCEPT, MEDIA_TYPES, type Descriptor } from './media-types.js';
import {
  assertDigest,
  assertRepository,
  assertTag,
  isSha256Digest,
  parseImageReference,
  referrersFallbackTag,
  type ImageReference,
} from './reference.js';

export interface RegistryClientOptions extends HttpOptions {
  /** Base URL of the registry, e.g. `http://127.0.0.1:5000` or `https://registry.internal`. */
  url: string;
  /** Largest manifest accepted; default 4 MiB (the limit Distribution enforces on PUT). */
  maxManifestBytes?: number;
  /**
   * What this registry's referrers API last answered, shared by the clients of one host (see ReferrersHint).
   * Without one, the fallback index is read only after the API has answered 404.
   */
  referrersHint?: ReferrersHint;
}

/**
 * Whether a registry's referrers API answered 404 the last time it was asked. When it did, listReferrers reads the
 * fallback index at the same time as the API instead of after it (one round trip less per listing). Both are still
 * read live every time, and which one is used is decided by the API's answer to this request, as without a hint.
 */
export interface ReferrersHint {
  apiAbsent: boolean;
}

export interface FetchedManifest {
  /** The exact bytes the registry returned; their sha256 is `digest`. */
  bytes: Buffer;
  digest: string;
  mediaType: string;
  etag?: string;
}

export interface PutManifestResult {
  /** The registry's `Docker-Content-Digest`, checked equal to the sha256 of what was sent. */
  digest: string;
  /** `OCI-Subject` reply header: set by registries that index referrers themselves (not Distribution 2.8.2). */
  ociSubject?: string;
}

export interface ReferrersResult {
  descriptors: Descriptor[];
  /** `api`: GET /v2/<name>/referrers/<digest>; `fallback`: the `sha256-<hex>` tag-schema index. */
  source: 'api' | 'fallback';
}

export interface PushLayoutResult {
  registry: string;
  repository: string;
  tag?: string;
  digest: string;
  mediaType: string;
  size: number;
  /** Blobs uploaded, and blobs the registry already had. */
  uploaded: number;
  skipped: number;
}

export const sha256Digest = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const MAX_PAGES = 1000;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** A promise that never rejects (a read started early whose failure matters only if its result is used). */
const settled = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

function unsettle<T>(s: Settled<T>): T {
  if (!s.ok) throw s.error;
  return s.value;
}

/**
 * A minimal OCI distribution-spec v1.1 client: exactly the calls airlock needs, every fetched byte checked against
 * its digest. Auth: none, HTTP Basic, or Distribution bearer tokens (fetched on a 401 challenge).
 */
export class RegistryClient {
  readonly baseUrl: URL;
  /** `host[:port]` as it appears in image references. */
  readonly host: string;
  private readonly http: HttpOptions;
  private readonly maxManifestBytes: number;
  private readonly referrersHint: ReferrersHint | undefined;

  constructor(options: RegistryClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (err) {
      throw new OciError('OCI_INPUT_INVALID', `registry url ${JSON.stringify(options.url)} is not a URL`, {
        cause: err,
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new OciError('OCI_INPUT_INVALID', `registry url must be http or https, got ${url.protocol}`);
    if (url.pathname !== '/' || url.search !== '' || url.username !== '') {
      throw new OciError(
        'OCI_INPUT_INVALID',
        'registry url must be scheme://host[:port] only (put credentials in auth)',
      );
    }
    this.baseUrl = url;
    this.host = url.host;
    this.http = {
      ca: options.ca,
      auth: options.auth,
      timeoutMs: options.timeoutMs,
      userAgent: options.userAgent,
      signal: options.signal,
      tokens: options.tokens ?? new Map(),
      ...(options.agent !== undefined ? { agent: options.agent } : {}),
    };
    this.maxManifestBytes = options.maxManifestBytes ?? 4 << 20;
    this.referrersHint = options.referrersHint;
  }

  private url(path: string): URL {
    return new URL(path, this.baseUrl);
  }

  private exchange(spec: Omit<RequestSpec, 'url'> & { url: URL | string }): Promise<HttpResponse> {
    return httpExchange({ ...spec, url: typeof spec.url === 'string' ? this.url(spec.url) : spec.url }, this.http);
  }

  /** GET /v2/: the registry is up and (with Basic auth) accepts our credentials. */
  async ping(): Promise<void> {
    const res = await this.exchange({ method: 'GET', url: '/v2/' });
    if (res.status !== 200) failStatus(res, `GET ${this.host}/v2/`);
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    assertRepository(repo);
    assertDigest(digest);
    const res = await this.exchange({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return failStatus(res, `HEAD blob ${repo}@${digest}`);
  }

  /**
   * Monolithic upload (distribution-spec "POST then PUT"): POST /blobs/uploads/ for a session, then PUT the whole
   * body to its Location with `?digest=`. `content` is bytes, or a file path whose size is known up front.
   */
  async uploadBlob(repo: string, digest: string, content: Buffer | { path: string; size: number }): Promise<void> {
    assertRepository(repo);
    assertDigest(digest);
    const what = `upload ${repo}@${digest}`;
    const start = await this.exchange({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` });
    if (start.status !== 202) failStatus(start, `${what} (POST)`);
    const location = header(start, 'location');
    if (!location) throw new OciError('OCI_HTTP', `${what}: POST answered 202 without a Location`);
    const target = new URL(location, this.baseUrl);
    if (target.origin !== this.baseUrl.origin)
      throw new OciError('OCI_HTTP', `${what}: upload Location points at another origin (${target.origin})`);
    target.searchParams.set('digest', digest);
    const isBuffer = Buffer.isBuffer(content);
    const size = isBuffer ? content.byteLength : content.size;
    const res = await this.exchange({
      method: 'PUT',
      url: target,
      headers: { 'Content-Type': 'application/octet-stream', ...(isBuffer ? {} : { 'Content-Length': String(size) }) },
      body: isBuffer ? content : () => createReadStream(content.path),
    });
    if (res.status !== 201) failStatus(res, `${what} (PUT)`);
    const reported = header(res, 'docker-content-digest');
    if (reported !== undefined && reported !== digest) {
      throw new OciError('OCI_PUSH_DIGEST_MISMATCH', `${what}: registry stored ${reported}`);
    }
  }

  /** Uploads `bytes` unless the registry has them already; returns their descriptor digest and size. */
  async pushBlob(repo: string, bytes: Buffer): Promise<{ digest: string; size: number; uploaded: boolean }> {
    const digest = sha256Digest(bytes);
    if (await this.blobExists(repo, digest)) return { digest, size: bytes.byteLength, uploaded: false };
    await this.uploadBlob(repo, digest, bytes);
    return { digest, size: bytes.byteLength, uploaded: true };
  }

  /** GET a blob into memory and check it hashes to `digest` (and has `expectedSize` when given). */
  async getBlob(
    repo: string,
    digest: string,
    options: { maxBytes?: number; expectedSize?: number } = {},
  ): Promise<Buffer> {
    assertRepository(repo);
    assertDigest(digest);
    const maxBytes =
      options.expectedSize !== undefined
        ? Math.min(options.expectedSize, options.maxBytes ?? Infinity)
        : (options.maxBytes ?? 16 << 20);
    const res = await this.exchange({ method: 'GET', url: `/v2/${repo}/blobs/${digest}`, maxBytes });
    if (res.status !== 200) failStatus(res, `GET blob ${repo}@${digest}`);
    const actual = sha256Digest(res.body);
    if (actual !== digest) {
      throw new OciError(
        'OCI_DIGEST_MISMATCH',
        `blob ${repo}@${digest}: the registry returned bytes hashing to ${actual}`,
        { details: { expected: digest, actual } },
      );
    }
    if (options.expectedSize !== undefined && res.body.byteLength !== options.expectedSize) {
      throw new OciError(
        'OCI_DIGEST_MISMATCH',
        `blob ${repo}@${digest}: ${res.body.byteLength} bytes, descriptor says ${options.expectedSize}`,
      );
    }
    return res.body;
  }

  /**
   * PUT a manifest by tag or by digest with its media type as Content-Type. The registry's Docker-Content-Digest
   * must equal the sha256 of the bytes sent (a registry that rewrote them would break every signature).
   */
  async putManifest(
    repo: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
    options: { ifMatch?: string } = {},
  ): Promise<PutManifestResult> {
    assertRepository(repo);
    const local = sha256Digest(bytes);
    if (reference.startsWith('sha256:')) {
      assertDigest(reference, 'manifest reference');
      if (reference !== local)
        throw new OciError('OCI_INPUT_INVALID', `manifest PUT by digest ${reference}, but the bytes hash to ${local}`);
    } else assertTag(reference);
    if (bytes.byteLength > this.maxManifestBytes)
      throw new OciError('OCI_SIZE_LIMIT', `manifest is ${bytes.byteLength} bytes, limit ${this.maxManifestBytes}`);
    const what = `PUT manifest ${repo}:${reference}`;
    const headers: Record<string, string> = { 'Content-Type': mediaType };
    if (options.ifMatch !== undefined) headers['If-Match'] = options.ifMatch;
    const res = await this.exchange({ method: 'PUT', url: `/v2/${repo}/manifests/${reference}`, headers, body: bytes });
    if (res.status !== 201) failStatus(res, what);
    const reported = header(res, 'docker-content-digest');
    if (reported === undefined) {
      // Not every registry sends it; then the manifest must at least be retrievable under our digest.
      if ((await this.manifestDigest(repo, local)) !== local)
        throw new OciError(
          'OCI_PUSH_DIGEST_MISMATCH',
          `${what}: no Docker-Content-Digest and ${local} is not retrievable`,
        );
    } else if (reported !== local) {
      throw new OciError(
        'OCI_PUSH_DIGEST_MISMATCH',
        `${what}: registry reports ${reported}, local manifest is ${local}`,
        { details: { local, reported } },
      );
    }
    const subject = header(res, 'oci-subject');
    return subject === undefined ? { digest: local } : { digest: local, ociSubject: subject };
  }

  /**
   * GET a manifest by tag or digest. The returned digest is the sha256 of the returned bytes; it must equal the
   * requested digest, and the registry's Docker-Content-Digest when it sends one.
   */
  async getManifest(repo: string, reference: string, accept: string = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const m = await this.tryGetManifest(repo, reference, accept);
    if (m === undefined) throw new OciError('OCI_NOT_FOUND', `manifest ${repo}:${reference} not found`);
    return m;
  }

  /** Like getManifest, but undefined for 404. */
  async tryGetManifest(
    repo: string,
    reference: string,
    accept: string = MANIFEST_ACCEPT,
  ): Promise<FetchedManifest | undefined> {
    assertRepository(repo);
    const byDigest = reference.startsWith('sha256:');
    if (byDigest) assertDigest(reference, 'manifest reference');
    else assertTag(reference);
    const what = `manifest ${repo}${byDigest ? '@' : ':'}${reference}`;
    const res = await this.exchange({
      method: 'GET',
      url: `/v2/${repo}/manifests/${reference}`,
      headers: { Accept: accept },
      maxBytes: this.maxManifestBytes,
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) failStatus(res, `GET ${what}`);
    const digest = sha256Digest(res.body);
    if (byDigest && digest !== reference) {
      throw new OciError('OCI_DIGEST_MISMATCH', `${what}: the registry returned bytes hashing to ${digest}`, {
        details: { expected: reference, actual: digest },
      });
    }
    const reported = header(res, 'docker-content-digest');
    if (reported !== undefined && isSha256Digest(reported) && reported !== digest) {
      throw new OciError(
        'OCI_DIGEST_MISMATCH',
        `${what}: Docker-Content-Digest is ${reported}, the bytes hash to ${digest}`,
        { details: { expected: reported, actual: digest } },
      );
    }
    const contentType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    let bodyType: unknown;
    try {
      bodyType = (JSON.parse(res.body.toString('utf8')) as { mediaType?: unknown }).mediaType;
    } catch (err) {
      throw new OciError('OCI_INVALID_MANIFEST', `${what}: not JSON`, { cause: err });
    }
    if (typeof bodyType === 'string' && contentType !== '' && bodyType !== contentType) {
      throw new OciError('OCI_INVALID_MANIFEST', `${what}: Content-Type ${contentType} but mediaType ${bodyType}`);
    }
    const mediaType = typeof bodyType === 'string' ? bodyType : contentType;
    const etag = header(res, 'etag');
    return etag === undefined ? { bytes: res.body, digest, mediaType } : { bytes: res.body, digest, mediaType, etag };
  }

  /** HEAD a manifest: its Docker-Content-Digest, or undefined when absent. */
  async manifestDigest(repo: string, reference: string): Promise<string | undefined> {
    assertRepository(repo);
    const res = await this.exchange({
      method: 'HEAD',
      url: `/v2/${repo}/manifests/${reference}`,
      headers: { Accept: MANIFEST_ACCEPT },
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) failStatus(res, `HEAD manifest ${repo}:${reference}`);
    return header(res, 'docker-content-digest');
  }

  async deleteManifest(repo: string, digest: string): Promise<void> {
    assertRepository(repo);
    assertDigest(digest);
    const res = await this.exchange({ method: 'DELETE', url: `/v2/${repo}/manifests/${digest}` });
    if (res.status !== 202) failStatus(res, `DELETE manifest ${repo}@${digest}`);
  }

  /** Every tag of `repo` (following `Link: rel="next"` pages); [] when the repository does not exist. */
  async listTags(repo: string): Promise<string[]> {
    assertRepository(repo);
    const tags: string[] = [];
    let next: URL | undefined = this.url(`/v2/${repo}/tags/list`);
    for (let page = 0; next !== undefined; page++) {
      if (page >= MAX_PAGES) throw new OciError('OCI_HTTP', `tags/list for ${repo}: more than ${MAX_PAGES} pages`);
      const res = await this.exchange({ method: 'GET', url: next });
      if (res.status === 404) return tags;
      if (res.status !== 200) failStatus(res, `GET tags/list ${repo}`);
      const body = parseJson(res.body, `tags/list ${repo}`) as { tags?: unknown };
      if (body.tags !== null && body.tags !== undefined) {
        if (!Array.isArray(body.tags) || !body.tags.every((t) => typeof t === 'string'))
          throw new OciError('OCI_HTTP', `tags/list ${repo}: tags is not a string array`);
        tags.push(...(body.tags as string[]));
      }
      next = this.nextLink(res);
    }
    return tags;
  }

  private nextLink(res: HttpResponse): URL | undefined {
    const link = header(res, 'link');
    const m = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    if (!m) return undefined;
    const url = new URL(m[1] as string, res.url);
    if (url.origin !== this.baseUrl.origin)
      throw new OciError('OCI_HTTP', `pagination Link points at another origin (${url.origin})`);
    return url;
  }

  /**
   * Referrers of `digest` (distribution-spec v1.1): the referrers API, or, when it answers 404 (Distribution 2.8.2
   * has no such route), the `sha256-<hex>` tag-schema index. Filtered by artifactType when given.
   */
  async listReferrers(repo: string, digest: string, options: { artifactType?: string } = {}): Promise<ReferrersResult> {
    assertRepository(repo);
    assertDigest(digest, 'subject digest');
    const filter = (ds: Descriptor[]) =>
      options.artifactType === undefined ? ds : ds.filter((d) => d.artifactType === options.artifactType);
    const first = this.url(`/v2/${repo}/referrers/${digest}`);
    if (options.artifactType !== undefined) first.searchParams.set('artifactType', options.artifactType);
    const descriptors: Descriptor[] = [];
    const hint = this.referrersHint;
    // The API was absent last time: read the fallback index now too; used only if the API answers 404 again.
    const early = hint?.apiAbsent ? settled(this.readFallbackIndex(repo, digest)) : undefined;
    let next: URL | undefined = first;
    for (let page = 0; next !== undefined; page++) {
      if (page >= MAX_PAGES)
        throw new OciError('OCI_HTTP', `referrers of ${repo}@${digest}: more than ${MAX_PAGES} pages`);
      const res = await this.exchange({
        method: 'GET',
        url: next,
        headers: { Accept: MEDIA_TYPES.ociIndex },
        maxBytes: this.maxManifestBytes,
      });
      if (res.status === 404 && page === 0) {
        if (hint) hint.apiAbsent = true;
        const index = early ? await unsettle(await early) : await this.readFallbackIndex(repo, digest);
        return { descriptors: filter(index), source: 'fallback' };
      }
      if (hint && page === 0) hint.apiAbsent = false;
      if (res.status !== 200) failStatus(res, `GET referrers ${repo}@${digest}`);
      descriptors.push(...parseImageIndex(res.body, `referrers of ${repo}@${digest}`).manifests);
      next = this.nextLink(res);
    }
    return { descriptors: filter(descriptors), source: 'api' };
  }

  /** The manifests listed in the tag-schema fallback index (empty when the tag does not exist). */
  async readFallbackIndex(repo: string, digest: string): Promise<Descriptor[]> {
    const fetched = await this.tryGetManifest(repo, referrersFallbackTag(digest));
    if (fetched === undefined) return [];
    return parseImageIndex(fetched.bytes, `referrers fallback index ${repo}:${referrersFallbackTag(digest)}`).manifests;
  }

  /** Resolves `ref` (string or parsed) against this client: a registry part, if any, must be this registry. */
  resolveReference(ref: string | ImageReference): ImageReference {
    const parsed = typeof ref === 'string' ? parseImageReference(ref) : ref;
    if (parsed.registry !== undefined && parsed.registry !== this.host) {
      throw new OciError(
        'OCI_INVALID_REFERENCE',
        `reference names registry ${parsed.registry}, but this client talks to ${this.host}`,
      );
    }
    assertRepository(parsed.repository);
    return parsed;
  }

  /**
   * Pushes the image tagged `layoutTag` (or the only one) in an OCI layout to `ref`, preserving its digest: blobs
   * first (skipping those the registry has), child manifests by digest, then the top manifest by tag (or digest).
   * Every blob is checked on disk before the first request, so a broken layout pushes nothing.
   */
  async pushLayout(
    layoutDir: string,
    ref: string | ImageReference,
    options: { layoutTag?: string } = {},
  ): Promise<PushLayoutResult> {
    const target = this.resolveReference(ref);
    const top = await resolveLayoutManifest(layoutDir, options.layoutTag);
    if (target.digest !== undefined && target.digest !== top.digest) {
      throw new OciError(
        'OCI_INPUT_INVALID',
        `reference pins ${target.digest}, but the layout's manifest is ${top.digest}`,
      );
    }
    const blobs = new Map<string, { desc: Descriptor; path: string }>();
    const manifests: { desc: Descriptor; bytes: Buffer }[] = []; // children before parents
    const visit = async (desc: Descriptor, depth: number): Promise<void> => {
      if (depth > 4) throw new OciError('OCI_LAYOUT_INVALID', `${layoutDir}: index nesting deeper than 4`);
      const bytes = await readLayoutBlob(layoutDir, desc, this.maxManifestBytes);
      if (desc.mediaType === MEDIA_TYPES.ociIndex || desc.mediaType === MEDIA_TYPES.dockerManifestList) {
        for (const child of parseImageIndex(bytes, `${layoutDir} ${desc.digest}`).manifests)
          await visit(child, depth + 1);
      } else if (desc.mediaType === MEDIA_TYPES.ociManifest || desc.mediaType === MEDIA_TYPES.dockerManifest) {
        const m = parseImageManifest(bytes, `${layoutDir} ${desc.digest}`);
        for (const b of [m.config, ...m.layers]) {
          if (!blobs.has(b.digest)) blobs.set(b.digest, { desc: b, path: await checkLayoutBlob(layoutDir, b) });
        }
      } else
        throw new OciError('OCI_LAYOUT_INVALID', `${layoutDir}: unsupported manifest media type ${desc.mediaType}`);
      if (!manifests.some((x) => x.desc.digest === desc.digest)) manifests.push({ desc, bytes });
    };
    await visit(top, 0);

    let uploaded = 0;
    let skipped = 0;
    for (const { desc, path } of blobs.values()) {
      if (await this.blobExists(target.repository, desc.digest)) {
        skipped++;
        continue;
      }
      const st = await stat(path);
      await this.uploadBlob(target.repository, desc.digest, { path, size: st.size });
      uploaded++;
    }
    let result: PutManifestResult | undefined;
    for (const { desc, bytes } of manifests) {
      const isTop = desc.digest === top.digest;
      const reference = isTop ? (target.tag ?? desc.digest) : desc.digest;
      result = await this.putManifest(target.repository, reference, bytes, desc.mediaType);
      // putManifest already compared Docker-Content-Digest with the bytes; the bytes came from the descriptor.
      if (result.digest !== desc.digest)
        throw new OciError('OCI_PUSH_DIGEST_MISMATCH', `pushed ${result.digest}, layout says ${desc.digest}`);
    }
    const out: PushLayoutResult = {
      registry: this.host,
      repository: target.repository,
      digest: (result as PutManifestResult).digest,
      mediaType: top.mediaType,
      size: top.size,
      uploaded,
      skipped,
    };
    if (target.tag !== undefined) out.tag = target.tag;
    return out;
  }
}

export function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new OciError('OCI_INVALID_MANIFEST', `${what}: not JSON`, { cause: err });
  }
}
