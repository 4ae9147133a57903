/**
 * Hostile transfer bundles: every archive trick is refused with a clear error and the store stays exactly as it
 * was (no head, no blob, nothing staged). Uses the importer in-process; a real signed bundle is made with the
 * sync job and a trust plane for the cases that need a valid signature to get past.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { importBundle, type ImportErrorCode } from '@airlock/mirror';
import { syncToBundle } from '@airlock/mirror-sync';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner } from '@airlock/sign';

interface TarEntry {
  name: string;
  body?: Buffer;
  type?: tar.Header['type'];
  linkname?: string;
  size?: number;
}

async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.body ?? Buffer.alloc(0));
    else pack.entry({ name: e.name, type, linkname: e.linkname ?? '', mode: 0o644, mtime: new Date(0), size: 0 });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function readTar(buf: Buffer): Promise<TarEntry[]> {
  const extract = tar.extract();
  Readable.from([buf]).pipe(extract);
  const out: TarEntry[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
    out.push({ name: entry.header.name, body: Buffer.concat(chunks) });
  }
  return out;
}

let root: string;
let plane: RunningTrustPlane;
let files: Server;
let goodBundle: Buffer;
let policy: { subject: string; issuer: string };
const BLOB = Buffer.from('x'.repeat(4096));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-hygiene-'));
  plane = await startTrustPlane({ dataDir: join(root, 'plane') });
  const subject = `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`;
  policy = { subject, issuer: plane.endpoints.identityIssuerUrl };
  files = createServer((_req, res) => res.end(BLOB));
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(files.address() as AddressInfo).port}/blob.bin`;
  writeFileSync(
    join(root, 'list.json'),
    JSON.stringify([{ url, sha256: createHash('sha256').update(BLOB).digest('hex') }]),
  );
  const signer = new AirlockSigner({
    fulcioUrl: plane.endpoints.caUrl,
    rekorUrl: plane.endpoints.tlogUrl,
    identity: () => plane.issueToken(subject),
  });
  await syncToBundle({
    inputs: [{ path: join(root, 'list.json'), kind: 'generic' }],
    out: join(root, 'good.tar'),
    signer,
    quiet: true,
    progress: 'none',
  });
  goodBundle = readFileSync(join(root, 'good.tar'));
});

afterAll(async () => {
  await new Promise((r) => files?.close(r));
  await plane?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

let n = 0;
async function expectRefused(
  bundle: Buffer,
  code: ImportErrorCode,
  opts: { maxBlobBytes?: number; maxManifestBytes?: number } = {},
): Promise<string> {
  const storeDir = join(root, `store-${n++}`);
  const store = await MirrorStore.open(storeDir);
  let message = '';
  try {
    await expect(
      importBundle(Readable.from([bundle]), {
        store,
        trustedRoot: plane.trustedRoot,
        syncIdentity: policy,
        ...opts,
      }).catch((e: Error) => {
        message = e.message;
        throw e;
      }),
    ).rejects.toMatchObject({ code });
    expect(store.head()).toBeUndefined();
  } finally {
    await store.close();
  }
  // Nothing published, nothing left staged.
  const blobs = join(storeDir, 'blobs');
  const count = (d: string): number =>
    existsSync(d) ? readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0;
  expect(count(blobs)).toBe(0);
  return message;
}

describe('bundle archive hygiene', () => {
  it('a good bundle imports (control)', async () => {
    const store = await MirrorStore.open(join(root, 'store-good'));
    try {
      const r = await importBundle(Readable.from([goodBundle]), {
        store,
        trustedRoot: plane.trustedRoot,
        syncIdentity: policy,
      });
      expect(r.blobs).toBe(1);
      expect(store.head()?.sequence).toBe(1);
    } finally {
      await store.close();
    }
  });

  const manifest = { name: 'manifest.json', body: Buffer.from('{}') };
  it.each([
    ['an absolute path', [manifest, { name: '/etc/passwd', body: Buffer.from('x') }]],
    ['a .. traversal', [manifest, { name: 'blobs/sha256/../../../etc/passwd', body: Buffer.from('x') }]],
    ['a symlink', [manifest, { name: 'blobs/sha256/' + 'a'.repeat(64), type: 'symlink', linkname: '/etc/shadow' }]],
    [
      'a hard link',
      [manifest, { name: 'attestations/manifest.sigstore.json', type: 'link', linkname: 'manifest.json' }],
    ],
    ['a character device', [manifest, { name: 'dev-null', type: 'character-device' }]],
    ['a directory', [manifest, { name: 'blobs/', type: 'directory' }]],
    ['a FIFO', [manifest, { name: 'fifo', type: 'fifo' }]],
    ['a duplicate name', [manifest, manifest]],
    ['a backslash name', [manifest, { name: 'blobs\\sha256\\x', body: Buffer.from('x') }]],
  ] as Array<[string, TarEntry[]]>)('refuses %s', async (_what, entries) => {
    const msg = await expectRefused(await makeTar(entries), 'IMPORT_ARCHIVE_UNSAFE');
    expect(msg.length).toBeGreaterThan(10);
  });

  it('refuses entries before the manifest and names it', async () => {
    const msg = await expectRefused(
      await makeTar([{ name: 'blobs/sha256/' + 'b'.repeat(64), body: Buffer.from('x') }, manifest]),
      'IMPORT_UNEXPECTED_ENTRY',
    );
    expect(msg).toContain('manifest.json');
  });

  it('refuses an unsigned bundle', async () => {
    const entries = (await readTar(goodBundle)).filter((e) => !e.name.startsWith('attestations/'));
    await expectRefused(await makeTar(entries), 'IMPORT_SIGNATURE_INVALID');
  });

  it('refuses a file the manifest does not name, even inside a validly signed bundle', async () => {
    const entries = await readTar(goodBundle);
    entries.push({
      name: 'blobs/sha256/' + createHash('sha256').update('smuggled').digest('hex'),
      body: Buffer.from('smuggled'),
    });
    await expectRefused(await makeTar(entries), 'IMPORT_UNEXPECTED_ENTRY');
    const extra = await readTar(goodBundle);
    extra.push({ name: 'README.txt', body: Buffer.from('hello') });
    await expectRefused(await makeTar(extra), 'IMPORT_UNEXPECTED_ENTRY');
  });

  it('refuses a blob whose bytes do not match its name', async () => {
    const entries = await readTar(goodBundle);
    const blob = entries.find((e) => e.name.startsWith('blobs/'))!;
    blob.body = Buffer.from(blob.body!);
    blob.body[0] = blob.body[0]! ^ 1;
    await expectRefused(await makeTar(entries), 'IMPORT_BLOB_MISMATCH');
  });

  it('refuses a bundle missing a listed blob', async () => {
    const entries = (await readTar(goodBundle)).filter((e) => !e.name.startsWith('blobs/'));
    await expectRefused(await makeTar(entries), 'IMPORT_BLOB_MISSING');
  });

  it('refuses entries over the size limits', async () => {
    await expectRefused(goodBundle, 'IMPORT_TOO_LARGE', { maxBlobBytes: 1024 });
    await expectRefused(goodBundle, 'IMPORT_TOO_LARGE', { maxManifestBytes: 100 });
  });

  it('refuses a truncated archive', async () => {
    await expectRefused(goodBundle.subarray(0, Math.floor(goodBundle.length / 2) + 7), 'IMPORT_ARCHIVE_UNSAFE');
  });

  it('refuses a manifest edited after signing (statement digest no longer matches)', async () => {
    const entries = await readTar(goodBundle);
    const m = entries.find((e) => e.name === 'manifest.json')!;
    m.body = Buffer.from(m.body!.toString('utf8').replace('"sequence":1', '"sequence":2'));
    await expectRefused(await makeTar(entries), 'IMPORT_SIGNATURE_INVALID');
  });
});
