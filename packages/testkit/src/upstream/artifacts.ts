import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
export const sha512 = (b: Buffer | string): string => createHash('sha512').update(b).digest('hex');
export const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');

const execFileAsync = promisify(execFile);

/**
 * npm with a private config and cache, so the host's ~/.npmrc and cache never leak in. Asynchronous on purpose:
 * the fixture registry runs in this process, so a synchronous child would deadlock against it.
 */
export async function npm(args: string[], cwd: string, home: string): Promise<string> {
  const rc = join(home, 'npmrc');
  const grc = join(home, 'npmrc-global');
  writeFileSync(rc, '');
  writeFileSync(grc, '');
  const { stdout } = await execFileAsync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      npm_config_userconfig: rc,
      npm_config_globalconfig: grc,
      npm_config_cache: join(home, 'cache'),
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    },
  });
  return stdout;
}

export interface PackedPackage {
  name: string;
  version: string;
  filename: string;
  tarball: Buffer;
  integrity: string;
  shasum: string;
  manifest: Record<string, unknown>;
}

/** Writes a tiny package and runs the real `npm pack` on it. */
export async function npmPack(root: string, manifest: Record<string, unknown>): Promise<PackedPackage> {
  const name = String(manifest.name);
  const dir = join(root, 'src', name.replace('/', '__'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(dir, 'index.js'), `module.exports = ${JSON.stringify(name)};\n`);
  const out = join(root, 'packed');
  mkdirSync(out, { recursive: true });
  const info = JSON.parse(await npm(['pack', '--json', '--pack-destination', out], dir, root)) as {
    filename: string;
    integrity: string;
    shasum: string;
  }[];
  const filename = info[0]!.filename.replace(/^.*\//, '');
  const tarball = readFileSync(join(out, filename));
  return {
    name,
    version: String(manifest.version),
    filename,
    tarball,
    integrity: info[0]!.integrity,
    shasum: info[0]!.shasum,
    manifest,
  };
}

/** A minimal store-only zip (PKWARE APPNOTE 4.3): enough for a wheel. */
export function makeZip(files: Record<string, string>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const nameBuf = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    locals.push(local, nameBuf, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBuf);
    offset += 30 + nameBuf.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A wheel for `dist==version` plus its METADATA (served as the PEP 658 `.metadata` file). */
export function makeWheel(
  dist: string,
  version: string,
  tag = 'py3-none-any',
): { filename: string; wheel: Buffer; metadata: Buffer } {
  const metadata = `Metadata-Version: 2.1\nName: ${dist.replace(/_/g, '-')}\nVersion: ${version}\nRequires-Python: >=3.8\nSummary: fixture\n\n`;
  const info = `${dist}-${version}.dist-info`;
  const files: Record<string, string> = {
    [`${dist}/__init__.py`]: `__version__ = "${version}"\n`,
    [`${info}/METADATA`]: metadata,
    [`${info}/WHEEL`]: `Wheel-Version: 1.0\nGenerator: airlock-test\nRoot-Is-Purelib: true\nTag: ${tag}\n`,
  };
  const record =
    [
      ...Object.entries(files).map(
        ([n, c]) =>
          `${n},sha256=${Buffer.from(createHash('sha256').update(c).digest()).toString('base64url')},${Buffer.byteLength(c)}`,
      ),
      `${info}/RECORD,,`,
    ].join('\n') + '\n';
  files[`${info}/RECORD`] = record;
  return { filename: `${dist}-${version}-${tag}.whl`, wheel: makeZip(files), metadata: Buffer.from(metadata) };
}

/** A deterministic .tar.gz sdist. */
export async function makeSdist(dist: string, version: string): Promise<{ filename: string; body: Buffer }> {
  const pack = tar.pack();
  const root = `${dist}-${version}`;
  const files: Record<string, string> = {
    [`${root}/PKG-INFO`]: `Metadata-Version: 2.1\nName: ${dist}\nVersion: ${version}\n`,
    [`${root}/${dist}/__init__.py`]: `__version__ = "${version}"\n`,
  };
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date(0), mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return { filename: `${root}.tar.gz`, body: gzipSync(Buffer.concat(chunks)) };
}

/** An npm-style tarball (`package/…`, gzip) without running npm: fast, deterministic, for bundle tests. */
export async function makeNpmTarball(manifest: Record<string, unknown>): Promise<PackedPackage> {
  const pack = tar.pack();
  pack.entry(
    { name: 'package/package.json', mtime: new Date(499162500000), mode: 0o644 },
    JSON.stringify(manifest, null, 2),
  );
  pack.entry({ name: 'package/index.js', mtime: new Date(499162500000), mode: 0o644 }, 'module.exports = 1;\n');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  const tarball = gzipSync(Buffer.concat(chunks));
  const name = String(manifest.name);
  const version = String(manifest.version);
  return {
    name,
    version,
    filename: `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`,
    tarball,
    integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
    shasum: sha1(tarball),
    manifest,
  };
}
