import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncToBundle, type PypiManifestEntry, type SyncError, type SyncOptions } from '../src/index.js';
import { loopbackFetch, makeSdist, makeWheel, sha256, startUpstream, type Upstream } from '@airlock/testkit';

let up: Upstream;
let dir: string;
let mode: 'json' | 'html' = 'json';
let metadataBody: Buffer;
const wheel = makeWheel('fixture_pkg', '1.0.0');
const cpWheel = makeWheel('fixture_pkg', '1.0.0', 'cp311-cp311-manylinux_2_17_x86_64');
const oldWheel = makeWheel('fixture_pkg', '0.9.0');
let sdist: { filename: string; body: Buffer };

function page(): { json: string; html: string } {
  const files = [
    { filename: wheel.filename, body: wheel.wheel, meta: wheel.metadata, yanked: false as const },
    { filename: sdist.filename, body: sdist.body, meta: undefined, yanked: 'broken build' },
    { filename: cpWheel.filename, body: cpWheel.wheel, meta: cpWheel.metadata, yanked: false as const },
    { filename: oldWheel.filename, body: oldWheel.wheel, meta: oldWheel.metadata, yanked: false as const },
  ];
  const json = {
    meta: { 'api-version': '1.1' },
    name: 'fixture-pkg',
    versions: ['0.9.0', '1.0.0'],
    files: files.map((f) => ({
      filename: f.filename,
      url: `../../files/${f.filename}`,
      hashes: { sha256: sha256(f.body) },
      'requires-python': '>=3.8',
      ...(f.meta ? { 'core-metadata': { sha256: sha256(f.meta) } } : {}),
      yanked: f.yanked,
      size: f.body.length,
    })),
  };
  const anchors = files.map(
    (f) =>
      `    <a href="../../files/${f.filename}#sha256=${sha256(f.body)}" data-requires-python="&gt;=3.8"` +
      (f.meta
        ? ` data-core-metadata="sha256=${sha256(f.meta)}" data-dist-info-metadata="sha256=${sha256(f.meta)}"`
        : '') +
      (f.yanked ? ` data-yanked="${f.yanked}"` : '') +
      `>${f.filename}</a><br />`,
  );
  const html = `<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.1">\n    <title>Links for fixture-pkg</title>\n  </head>\n  <body>\n    <h1>Links for fixture-pkg</h1>\n${anchors.join('\n')}\n  </body>\n</html>\n`;
  return { json: JSON.stringify(json), html };
}

beforeAll(async () => {
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-pypi-'));
  sdist = await makeSdist('fixture_pkg', '1.0.0');
  metadataBody = wheel.metadata;
  up.route('/simple/fixture-pkg/', (req, res) => {
    const p = page();
    res.setHeader('vary', 'Accept');
    if (mode === 'json' && (req.headers.accept ?? '').includes('application/vnd.pypi.simple.v1+json')) {
      res.setHeader('content-type', 'application/vnd.pypi.simple.v1+json');
      res.end(p.json);
    } else {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(p.html);
    }
  });
  for (const f of [wheel, cpWheel, oldWheel]) {
    up.file(`/files/${f.filename}`, f.wheel);
    up.route(`/files/${f.filename}.metadata`, (_req, res) => void res.end(f === wheel ? metadataBody : f.metadata));
  }
  up.file(`/files/${sdist.filename}`, sdist.body);
});
afterAll(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

function requirements(extraHash = ''): string {
  const p = join(dir, `requirements-${Math.random().toString(16).slice(2)}.txt`);
  writeFileSync(
    p,
    `# pinned\nFixture_Pkg==1.0.0 ; python_version >= "3.8" \\\n    --hash=sha256:${sha256(wheel.wheel)} \\\n    --hash=sha256:${sha256(sdist.body)}${extraHash}\n`,
  );
  return p;
}

const opts = (path: string, out: string): SyncOptions => ({
  inputs: [{ path }],
  out: join(dir, out),
  pypiIndex: `${up.url}/simple/`,
  quiet: true,
  createdAt: '2026-11-28T15:00:00Z',
  fetch: loopbackFetch,
});

describe('PyPI requirements against a PEP 691/503 fixture index', () => {
  it('mirrors every pinned file of the version with requires-python, yanked and PEP 658 metadata (JSON)', async () => {
    mode = 'json';
    up.resetCounters();
    const notPublished = 'f'.repeat(64);
    const r = await syncToBundle(opts(requirements(` \\\n    --hash=sha256:${notPublished}`), 'pypi-json.tar'));
    const entries = r.manifest.entries as PypiManifestEntry[];
    expect(entries.map((e) => e.filename)).toEqual([wheel.filename, sdist.filename]);
    const [whl, sd] = entries;
    expect(whl).toMatchObject({
      ecosystem: 'pypi',
      name: 'fixture-pkg',
      version: '1.0.0',
      urls: [`${up.url}/files/${wheel.filename}`],
      purl: `pkg:pypi/fixture-pkg@1.0.0?file_name=${wheel.filename}`,
      digests: { sha256: sha256(wheel.wheel) },
      metadata: {
        project: 'Fixture_Pkg',
        requiresPython: '>=3.8',
        yanked: false,
        packagetype: 'bdist_wheel',
        coreMetadata: { sha256: sha256(wheel.metadata), size: wheel.metadata.length },
      },
    });
    expect(sd!.metadata).toEqual({
      project: 'Fixture_Pkg',
      requiresPython: '>=3.8',
      yanked: 'broken build',
      packagetype: 'sdist',
      coreMetadata: null,
    });
    // the core metadata file is a blob of its own
    expect(r.manifest.blobs.map((b) => b.sha256).sort()).toEqual(
      [sha256(wheel.wheel), sha256(sdist.body), sha256(wheel.metadata)].sort(),
    );
    expect(up.hits(`/files/${cpWheel.filename}`)).toBe(0); // not pinned → not fetched
    expect(up.hits(`/files/${oldWheel.filename}`)).toBe(0);
    expect(r.notes.join('\n')).toContain(notPublished);
    expect(r.notes.join('\n')).toMatch(/yanked upstream \(broken build\)/);
  });

  it('falls back to PEP 503 HTML and gets the same entries', async () => {
    mode = 'json';
    const fromJson = await syncToBundle(opts(requirements(), 'a.tar'));
    mode = 'html';
    const fromHtml = await syncToBundle(opts(requirements(), 'b.tar'));
    mode = 'json';
    expect(fromHtml.manifest.entries).toEqual(fromJson.manifest.entries);
    expect(fromHtml.snapshotId).toBe(fromJson.snapshotId);
  });

  it('fails when the core metadata does not match its advertised hash', async () => {
    metadataBody = Buffer.from('Metadata-Version: 2.1\nName: evil\n');
    try {
      const err = (await syncToBundle(opts(requirements(), 'c.tar')).catch((e: unknown) => e)) as SyncError;
      expect(err.code).toBe('SYNC_ENTRIES_FAILED');
      const f = err.details!.failures as { code: string; message: string }[];
      expect(f[0]!.code).toBe('SYNC_HASH_MISMATCH');
      expect(f[0]!.message).toMatch(/core metadata/);
    } finally {
      metadataBody = wheel.metadata;
    }
  });

  it('fails a requirement none of whose pins the index offers', async () => {
    const p = join(dir, 'req-missing.txt');
    writeFileSync(p, `fixture-pkg==1.0.0 --hash=sha256:${'e'.repeat(64)}\n`);
    const err = (await syncToBundle(opts(p, 'd.tar')).catch((e: unknown) => e)) as SyncError;
    const f = err.details!.failures as { entry: string; code: string }[];
    expect(f.map((x) => `${x.entry} ${x.code}`)).toEqual(['pypi fixture-pkg==1.0.0 SYNC_UPSTREAM_INVALID']);
  });
});
