import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { canonicalBytes } from '@airlock/core';
import tar from 'tar-stream';
import { OciError } from './errors.js';
import { ANNOTATIONS, MEDIA_TYPES, type Descriptor, type ImageIndex, type ImageManifest } from './media-types.js';
import { isSha256Digest } from './reference.js';

/** One entry of the image's single layer. Exactly one of `bytes` / `source` for files. */
export interface ImageFile {
  /** Path inside the image; a leading `/` is ignored. */
  path: string;
  type?: 'file' | 'directory' | 'symlink';
  bytes?: Uint8Array | string;
  /** A host file whose content is copied (its own mode and times are ignored). */
  source?: string;
  /** Permission bits; default 0644 for files, 0755 for directories, 0777 for symlinks. */
  mode?: number;
  /** Symlink target. */
  linkTarget?: string;
}

export interface BuildImageOptions {
  files: ImageFile[];
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
  /**
   * Image creation time, also every tar entry's mtime (seconds). Default: SOURCE_DATE_EPOCH when set, else
   * 1970-01-01T00:00:00Z. An ISO string, a Date or seconds since the epoch.
   */
  created?: string | Date | number;
  /** GOARCH-style name; default the host's (x64 → amd64). */
  architecture?: string;
  os?: string;
  /** `org.opencontainers.image.ref.name` of the manifest in index.json (skopeo's `oci:<dir>:<tag>`). */
  tag?: string;
  /**
   * `gzip` (default) or `none`. The uncompressed tar (the diff_id) is the same on every host; gzip bytes depend on
   * the zlib that Node bundles, so use `none` when layouts must match across Node builds.
   */
  compression?: 'gzip' | 'none';
  /** history[0].created_by. */
  createdBy?: string;
  manifestAnnotations?: Record<string, string>;
}

export interface LayerInfo {
  mediaType: string;
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar (config rootfs.diff_ids). */
  diffId: string;
}

export interface BuiltImage {
  layoutDir: string;
  tag: string;
  manifest: Descriptor;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  configSize: number;
  layers: LayerInfo[];
  created: string;
}

const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** Resolves the creation time to whole seconds: explicit value, else SOURCE_DATE_EPOCH, else 0. */
export function resolveCreated(created?: string | Date | number): { epoch: number; iso: string } {
  let epoch: number;
  if (created === undefined) {
    const sde = process.env['SOURCE_DATE_EPOCH'];
    if (sde !== undefined && sde !== '') {
      if (!/^[0-9]{1,12}$/.test(sde))
        throw new OciError(
          'OCI_INPUT_INVALID',
          `SOURCE_DATE_EPOCH must be a non-negative integer, got ${JSON.stringify(sde)}`,
        );
      epoch = Number(sde);
    } else epoch = 0;
  } else if (typeof created === 'number') {
    epoch = created;
  } else {
    const ms = (created instanceof Date ? created : new Date(created)).getTime();
    if (Number.isNaN(ms))
      throw new OciError('OCI_INPUT_INVALID', `created is not a valid time: ${JSON.stringify(String(created))}`);
    epoch = Math.floor(ms / 1000);
  }
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > 8 ** 11 - 1) {
    throw new OciError('OCI_INPUT_INVALID', `created must be whole seconds within the tar mtime range, got ${epoch}`);
  }
  return { epoch, iso: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z') };
}

interface TarEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  bytes?: Buffer;
  source?: string;
  size: number;
  linkTarget?: string;
}

function normalizePath(p: string): string {
  if (typeof p !== 'string' || p.includes('\0'))
    throw new OciError('OCI_INPUT_INVALID', `invalid image path ${JSON.stringify(p)}`);
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.includes('..'))
    throw new OciError('OCI_INPUT_INVALID', `invalid image path ${JSON.stringify(p)}: empty or contains '..'`);
  return parts.join('/');
}

async function collectEntries(files: ImageFile[]): Promise<TarEntry[]> {
  if (!Array.isArray(files) || files.length === 0)
    throw new OciError('OCI_INPUT_INVALID', 'files must be a non-empty array');
  const explicit = new Map<string, TarEntry>();
  for (const f of files) {
    const name = normalizePath(f.path);
    if (explicit.has(name)) throw new OciError('OCI_INPUT_INVALID', `duplicate image path '${name}'`);
    const type = f.type ?? 'file';
    if (f.mode !== undefined && (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777)) {
      throw new OciError('OCI_INPUT_INVALID', `'${name}': mode must be an integer in 0..0o7777`);
    }
    if (type === 'directory') {
      if (f.bytes !== undefined || f.source !== undefined)
        throw new OciError('OCI_INPUT_INVALID', `'${name}': a directory has no content`);
      explicit.set(name, { name, type, mode: f.mode ?? 0o755, size: 0 });
    } else if (type === 'symlink') {
      if (typeof f.linkTarget !== 'string' || f.linkTarget === '')
        throw new OciError('OCI_INPUT_INVALID', `'${name}': a symlink needs linkTarget`);
      explicit.set(name, { name, type, mode: f.mode ?? 0o777, size: 0, linkTarget: f.linkTarget });
    } else if (type === 'file') {
      if ((f.bytes === undefined) === (f.source === undefined))
        throw new OciError('OCI_INPUT_INVALID', `'${name}': give exactly one of bytes or source`);
      if (f.bytes !== undefined) {
        const bytes =
          typeof f.bytes === 'string'
            ? Buffer.from(f.bytes, 'utf8')
            : Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength);
        explicit.set(name, { name, type, mode: f.mode ?? 0o644, bytes, size: bytes.byteLength });
      } else {
        let st;
        try {
          st = await stat(f.source as string);
        } catch (err) {
          throw new OciError('OCI_INPUT_INVALID', `'${name}': cannot read source ${f.source}`, { cause: err });
        }
        if (!st.isFile())
          throw new OciError('OCI_INPUT_INVALID', `'${name}': source ${f.source} is not a regular file`);
        explicit.set(name, { name, type, mode: f.mode ?? 0o644, source: f.source as string, size: st.size });
      }
    } else {
      throw new OciError('OCI_INPUT_INVALID', `'${name}': unknown type ${JSON.stringify(type)}`);
    }
  }
  // Parents that were not listed become 0755 directories, so the layer unpacks the same everywhere.
  const all = new Map(explicit);
  for (const name of explicit.keys()) {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = all.get(dir);
      if (existing === undefined) all.set(dir, { name: dir, type: 'directory', mode: 0o755, size: 0 });
      else if (existing.type !== 'directory')
        throw new OciError('OCI_INPUT_INVALID', `'${dir}' is both a ${existing.type} and a parent of '${name}'`);
    }
  }
  // Byte order of the UTF-8 names: a parent is a prefix of its children, so it always comes first.
  return [...all.values()].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

/** Passes bytes through while hashing and counting them. */
class HashTap extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.byteLength;
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/**
 * zlib writes MTIME 0 and no FNAME (what `gzip -n` does), but its OS byte is the build platform's (3 on Unix,
 * 19 on macOS). Pin it to 3 so the header never depends on the host; the OS byte is outside the CRC.
 */
class PinGzipOsByte extends Transform {
  private seen = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.seen <= 9 && this.seen + chunk.byteLength > 9) {
      chunk = Buffer.from(chunk);
      chunk[9 - this.seen] = 3;
    }
    this.seen += chunk.byteLength;
    cb(null, chunk);
  }
}

async function writeLayer(
  entries: TarEntry[],
  epoch: number,
  compression: 'gzip' | 'none',
  blobDir: string,
): Promise<LayerInfo> {
  const tmp = join(blobDir, `.layer-${process.pid}-${Date.now()}.tmp`);
  const pack = tar.pack();
  const diff = new HashTap();
  const blob = new HashTap();
  const out = await open(tmp, 'wx', 0o644);
  const sink = out.createWriteStream();
  const done =
    compression === 'gzip'
      ? pipeline(pack, diff, createGzip({ level: 9 }), new PinGzipOsByte(), blob, sink)
      : pipeline(pack, diff, blob, sink);
  const mtime = new Date(epoch * 1000);
  try {
    for (const e of entries) {
      const header = {
        name: e.type === 'directory' ? `${e.name}/` : e.name,
        type: e.type,
        mode: e.mode,
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        mtime,
        size: e.size,
        ...(e.linkTarget !== undefined ? { linkname: e.linkTarget } : {}),
      };
      await new Promise<void>((resolve, reject) => {
        const cb = (err?: Error | null) => (err ? reject(err) : resolve());
        if (e.bytes !== undefined) pack.entry(header, e.bytes, cb);
        else if (e.source !== undefined) {
          const entry = pack.entry(header, cb);
          const src = createReadStream(e.source);
          src.on('error', reject);
          src.pipe(entry);
        } else pack.entry(header, cb);
      });
    }
    pack.finalize();
    await done;
  } catch (err) {
    pack.destroy();
    await done.catch(() => undefined);
    await rm(tmp, { force: true });
    throw new OciError('OCI_INPUT_INVALID', `writing the layer failed: ${(err as Error).message}`, { cause: err });
  }
  const digest = blob.digest();
  await rename(tmp, join(blobDir, digest.slice('sha256:'.length)));
  return {
    mediaType: compression === 'gzip' ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayerTar,
    digest,
    size: blob.size,
    diffId: diff.digest(),
  };
}

async function writeJsonBlob(
  blobDir: string,
  value: unknown,
): Promise<{ digest: string; size: number; bytes: Buffer }> {
  const bytes = canonicalBytes(value);
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(blobDir, hex), bytes, { mode: 0o644 });
  return { digest: `sha256:${hex}`, size: bytes.byteLength, bytes };
}

/**
 * Writes a one-layer OCI image layout (image-spec v1.1 image-layout.md) into `layoutDir`, which must be missing or
 * empty. Same inputs give byte-identical layouts: sorted tar entries, uid/gid 0 with no names, one fixed mtime,
 * gzip without name or time, and RFC 8785 JSON for config, manifest and index.
 */
export async function buildImageLayout(options: BuildImageOptions, layoutDir: string): Promise<BuiltImage> {
  const { epoch, iso } = resolveCreated(options.created);
  const entries = await collectEntries(options.files);
  const tag = options.tag ?? 'latest';
  const compression = options.compression ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'none')
    throw new OciError('OCI_INPUT_INVALID', `compression must be gzip or none`);
  const architecture = options.architecture ?? GOARCH[process.arch] ?? process.arch;
  const os = options.os ?? 'linux';

  await mkdir(layoutDir, { recursive: true });
  if ((await readdir(layoutDir)).length > 0)
    throw new OciError('OCI_LAYOUT_EXISTS', `layout directory ${layoutDir} is not empty`);
  const blobDir = join(layoutDir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });

  const layer = await writeLayer(entries, epoch, compression, blobDir);
  const runConfig: Record<string, unknown> = {};
  if (options.user !== undefined) runConfig.User = options.user;
  if (options.env !== undefined) runConfig.Env = options.env;
  if (options.entrypoint !== undefined) runConfig.Entrypoint = options.entrypoint;
  if (options.cmd !== undefined) runConfig.Cmd = options.cmd;
  if (options.workingDir !== undefined) runConfig.WorkingDir = options.workingDir;
  if (options.labels !== undefined) runConfig.Labels = options.labels;
  const config = await writeJsonBlob(blobDir, {
    created: iso,
    architecture,
    os,
    config: runConfig,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created: iso, created_by: options.createdBy ?? 'airlock buildImageLayout' }],
  });
  const manifestValue: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
    layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
    ...(options.manifestAnnotations ? { annotations: options.manifestAnnotations } : {}),
  };
  const manifest = await writeJsonBlob(blobDir, manifestValue);
  const manifestDescriptor: Descriptor = {
    mediaType: MEDIA_TYPES.ociManifest,
    digest: manifest.digest,
    size: manifest.size,
  };
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [{ ...manifestDescriptor, annotations: { [ANNOTATIONS.refName]: tag } }],
  };
  await writeFile(join(layoutDir, 'index.json'), canonicalBytes(index), { mode: 0o644 });
  await writeFile(join(layoutDir, 'oci-layout'), canonicalBytes({ imageLayoutVersion: '1.0.0' }), { mode: 0o644 });
  return {
    layoutDir,
    tag,
    manifest: manifestDescriptor,
    manifestDigest: manifest.digest,
    manifestSize: manifest.size,
    configDigest: config.digest,
    configSize: config.size,
    layers: [layer],
    created: iso,
  };
}

/** Path of a blob in a layout; the digest is validated first so it can never escape the directory. */
export function layoutBlobPath(layoutDir: string, digest: string): string {
  if (!isSha256Digest(digest))
    throw new OciError('OCI_LAYOUT_INVALID', `unsupported or malformed digest ${JSON.stringify(digest)}`);
  return join(layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** Reads a small blob (a manifest or config) from a layout and checks its digest and size. */
export async function readLayoutBlob(layoutDir: string, desc: Descriptor, maxBytes = 4 << 20): Promise<Buffer> {
  const path = layoutBlobPath(layoutDir, desc.digest);
  let bytes: Buffer;
  try {
    const st = await stat(path);
    if (st.size > maxBytes)
      throw new OciError('OCI_SIZE_LIMIT', `layout blob ${desc.digest} is ${st.size} bytes, limit ${maxBytes}`);
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new OciError('OCI_LAYOUT_BLOB_MISSING', `layout ${layoutDir} lacks blob ${desc.digest} (${desc.mediaType})`, {
      cause: err,
    });
  }
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== desc.digest || bytes.byteLength !== desc.size) {
    throw new OciError(
      'OCI_LAYOUT_DIGEST_MISMATCH',
      `layout blob ${desc.digest}: content hashes to ${actual} (${bytes.byteLength} bytes, descriptor says ${desc.size})`,
    );
  }
  return bytes;
}

/** Hashes a layout blob by streaming it (layers can be large); fails if missing or not matching. */
export async function checkLayoutBlob(layoutDir: string, desc: Descriptor): Promise<string> {
  const path = layoutBlobPath(layoutDir, desc.digest);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).byteLength;
    }
  } catch (err) {
    throw new OciError('OCI_LAYOUT_BLOB_MISSING', `layout ${layoutDir} lacks blob ${desc.digest} (${desc.mediaType})`, {
      cause: err,
    });
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== desc.digest || size !== desc.size) {
    throw new OciError(
      'OCI_LAYOUT_DIGEST_MISMATCH',
      `layout blob ${desc.digest}: content hashes to ${actual} (${size} bytes, descriptor says ${desc.size})`,
    );
  }
  return path;
}

export function parseDescriptor(value: unknown, where: string): Descriptor {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: descriptor is not an object`);
  if (typeof v.mediaType !== 'string' || v.mediaType === '')
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: descriptor has no mediaType`);
  if (!isSha256Digest(v.digest))
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: descriptor digest must be sha256:<64 hex>`);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: descriptor size invalid`);
  if (v.annotations !== undefined) {
    const a = v.annotations as Record<string, unknown>;
    if (
      typeof a !== 'object' ||
      a === null ||
      Array.isArray(a) ||
      !Object.values(a).every((x) => typeof x === 'string')
    ) {
      throw new OciError('OCI_INVALID_MANIFEST', `${where}: annotations must map strings to strings`);
    }
  }
  if (v.artifactType !== undefined && typeof v.artifactType !== 'string')
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: artifactType must be a string`);
  return v as unknown as Descriptor;
}

/** Parses a schema-2 manifest or index whose `mediaType`, when present, is one of `mediaTypes`. */
function parseSchema2(bytes: Uint8Array, where: string, kind: string, mediaTypes: string[]): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: not JSON`, { cause: err });
  }
  if (typeof v !== 'object' || v === null || (v as Record<string, unknown>).schemaVersion !== 2)
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: schemaVersion must be 2`);
  const o = v as Record<string, unknown>;
  if (o.mediaType !== undefined && !mediaTypes.includes(o.mediaType as string))
    throw new OciError('OCI_INVALID_MANIFEST', `${where}: not an ${kind} (mediaType ${String(o.mediaType)})`);
  return o;
}

/** Structural check of an image manifest (OCI or Docker v2 schema 2). */
export function parseImageManifest(bytes: Uint8Array, where: string): ImageManifest {
  const v = parseSchema2(bytes, where, 'image manifest', [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
  parseDescriptor(v.config, `${where} config`);
  if (!Array.isArray(v.layers)) throw new OciError('OCI_INVALID_MANIFEST', `${where}: layers must be an array`);
  v.layers.forEach((l, i) => parseDescriptor(l, `${where} layers[${i}]`));
  if (v.subject !== undefined) parseDescriptor(v.subject, `${where} subject`);
  return v as unknown as ImageManifest;
}

/** Structural check of an image index (OCI or Docker manifest list). */
export function parseImageIndex(bytes: Uint8Array, where: string): ImageIndex {
  const v = parseSchema2(bytes, where, 'image index', [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
  if (!Array.isArray(v.manifests)) throw new OciError('OCI_INVALID_MANIFEST', `${where}: manifests must be an array`);
  v.manifests.forEach((m, i) => parseDescriptor(m, `${where} manifests[${i}]`));
  return v as unknown as ImageIndex;
}

/** The manifest descriptor of `tag` in a layout's index.json (or its only manifest when no tag is given). */
export async function resolveLayoutManifest(layoutDir: string, tag?: string): Promise<Descriptor> {
  let layoutFile: unknown;
  try {
    layoutFile = JSON.parse(await readFile(join(layoutDir, 'oci-layout'), 'utf8'));
  } catch (err) {
    throw new OciError(
      'OCI_LAYOUT_INVALID',
      `${layoutDir} is not an OCI image layout (oci-layout missing or not JSON)`,
      { cause: err },
    );
  }
  if ((layoutFile as { imageLayoutVersion?: unknown })?.imageLayoutVersion !== '1.0.0') {
    throw new OciError('OCI_LAYOUT_INVALID', `${layoutDir}: unsupported imageLayoutVersion`);
  }
  let indexBytes: Buffer;
  try {
    indexBytes = await readFile(join(layoutDir, 'index.json'));
  } catch (err) {
    throw new OciError('OCI_LAYOUT_INVALID', `${layoutDir}: index.json missing`, { cause: err });
  }
  const index = parseImageIndex(indexBytes, `${layoutDir}/index.json`);
  const matches =
    tag === undefined ? index.manifests : index.manifests.filter((m) => m.annotations?.[ANNOTATIONS.refName] === tag);
  if (matches.length !== 1) {
    throw new OciError(
      'OCI_LAYOUT_INVALID',
      `${layoutDir}/index.json has ${matches.length} manifests${tag === undefined ? '' : ` tagged '${tag}'`}; expected exactly one`,
    );
  }
  return matches[0] as Descriptor;
}
