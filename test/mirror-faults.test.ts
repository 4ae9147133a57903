/**
 * Issue 3 acceptance, faults, through the CLI: every hostile or wrong transfer bundle is refused by
 * `airlock mirror import` with a clear IMPORT_* code, and the store stays exactly as it was (head snapshot, every
 * file under the store, index.sqlite row counts) with `airlock mirror fsck` clean:
 *  - a flipped byte at deterministic positions in every region of the bundle (every tar header field, checksum
 *    terminators and unused bytes included, the zero padding after entries, both end-of-archive blocks,
 *    manifest.json, both Sigstore bundles at the bytes a lenient reader overlooks — base64 padding, keys, empty
 *    objects —, the SBOM, blobs already in the store and new ones), plus bytes after the end and a missing end
 *    block: hundreds of positions in-process, a few through the CLI — in the *next* bundle of the chain, so the
 *    only reason to refuse it is the flip (the intact bundle imports afterwards);
 *  - archives crafted with tar-stream around genuine signed content: an absolute path, `..` (plain and in a pax
 *    long name), a symlink, a hard link, a device, a FIFO, a directory, a duplicate, unlisted entries, an oversized
 *    blob (signed or not);
 *  - a bundle signed by another identity of the same plane, and one signed through another plane (untrusted root)
 *    with the very same SPIFFE ID — each shown to be otherwise valid by importing it into a scratch store that
 *    trusts its signer;
 *  - sequence: a replay of the same bundle, an older bundle, a gap (refused without --allow-gap, accepted with it).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { importBundle } from '@airlock/mirror';
import {
  HEADER_FIELD_OFFSETS,
  expectedFlip,
  jsonHotSpots,
  seeded,
  tarLayout,
  type Flip,
  type TarLayoutEntry,
} from './helpers/bundle-flips.js';
import {
  fsck,
  importArgs,
  runCliJson,
  startPlane,
  storeState,
  type CliPlane,
  type StoreState,
} from './helpers/upstream-e2e.js';
import {
  buildPythonFixtures,
  loadNpmFixtureSet,
  missingTool,
  packNpmFixtures,
  requirementsTxt,
  sha256Hex,
  startFixtureUpstream,
  writeFixtureProject,
  type FixtureUpstream,
} from './helpers/upstream.js';

const npmMissing = missingTool('npm', ['--version'], 'npm');
const pythonMissing = missingTool('python3', ['--version'], 'python3');

// Generic files: GEN_A in every bundle, GEN_B new in bundle 2, GEN_C/GEN_D in bundles 3/4.
const GEN_A = randomBytes(20_000);
const GEN_B = randomBytes(70_000);
const GEN_C = randomBytes(1_000);
const GEN_D = randomBytes(1_000);

let root: string;
let store: string;
let planeA: CliPlane | undefined;
let planeB: CliPlane | undefined;
let upstream: FixtureUpstream | undefined;
const bundles: Record<'b1' | 'b2' | 'b3' | 'b4' | 'otherIdentity' | 'otherPlane', string> = {
  b1: '',
  b2: '',
  b3: '',
  b4: '',
  otherIdentity: '',
  otherPlane: '',
};
let otherSubject: string;

async function sync(
  name: string,
  opts: { lists: string[]; full?: boolean; state: string; plane: CliPlane; subject?: string },
): Promise<string> {
  const out = join(root, `${name}.tar`);
  const inputs = opts.full
    ? [
        ...(npmMissing ? [] : ['--npm-lock', join(root, 'app', 'package-lock.json')]),
        ...(pythonMissing
          ? []
          : ['--requirements', join(root, 'requirements.txt'), '--pypi-index', upstream!.pypiIndex]),
      ]
    : [];
  const r = await runCliJson([
    'sync',
    ...inputs,
    ...opts.lists.flatMap((l) => ['--list', join(root, l)]),
    '--out',
    out,
    '--state',
    opts.state,
    '--data',
    opts.plane.dir,
    ...(opts.subject ? ['--subject', opts.subject] : []),
    '--json',
  ]);
  if (r.code !== 0) throw new Error(`sync ${name} failed: ${r.stdout}${r.stderr}`);
  return out;
}

/** Import through the CLI; a refusal must leave the store as it was. */
async function expectRefused(bundle: string, code: string, extra: string[] = [], plane = planeA!): Promise<string> {
  const before = storeState(store);
  const r = await runCliJson(importArgs(bundle, store, plane, extra));
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.errorCode, r.stdout).toBe(code);
  expect(storeState(store)).toEqual(before);
  return String((r.json.error as { message: string }).message);
}

async function expectFsckClean(): Promise<void> {
  const f = await fsck(store);
  expect(f.code, JSON.stringify(f.report)).toBe(0);
  expect(f.report).toMatchObject({ clean: true, corrupt: [], missing: [] });
}

/** A store that trusts `plane` and accepts anything in sequence (--allow-gap): proves a refused bundle is otherwise valid. */
async function importIntoScratch(bundle: string, plane: CliPlane, identity = plane.syncIdentity): Promise<void> {
  const scratch = mkdtempSync(join(root, 'scratch-'));
  const r = await runCliJson([
    'mirror',
    'import',
    bundle,
    '--store',
    scratch,
    '--create',
    '--data',
    plane.dir,
    '--sync-identity',
    identity,
    '--sync-issuer',
    plane.endpoints.identityIssuerUrl,
    '--allow-gap',
    '--json',
  ]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  rmSync(scratch, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------------
// tar layout and crafting

interface CraftEntry {
  name: string;
  body?: Buffer;
  type?: tar.Header['type'];
  linkname?: string;
}

async function readEntries(path: string): Promise<CraftEntry[]> {
  const extract = tar.extract();
  Readable.from([readFileSync(path)]).pipe(extract);
  const out: CraftEntry[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
    out.push({ name: entry.header.name, body: Buffer.concat(chunks) });
  }
  return out;
}

async function writeTar(path: string, entries: CraftEntry[]): Promise<string> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.body ?? Buffer.alloc(0));
    else
      pack.entry({
        name: e.name,
        type,
        linkname: e.linkname ?? '',
        mode: 0o644,
        mtime: new Date(0),
        size: 0,
        devmajor: 1,
        devminor: 3,
      });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  writeFileSync(path, Buffer.concat(chunks));
  return path;
}

// ---------------------------------------------------------------------------------------------------------------

describe('mirror e2e faults: refused imports leave the store unchanged (CLI)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-mirror-faults-'));
    store = join(root, 'store');
    // Two planes with the same (default) trust domain: the same SPIFFE ID can be certified by either.
    [planeA, planeB] = await Promise.all([startPlane(join(root, 'plane-a')), startPlane(join(root, 'plane-b'))]);
    otherSubject = `spiffe://${planeA.endpoints.trustDomain}/someone/else`;
    expect(planeB.syncIdentity).toBe(planeA.syncIdentity);

    const set = loadNpmFixtureSet();
    const [packed, dists] = await Promise.all([
      npmMissing ? [] : packNpmFixtures(root, set.packages),
      pythonMissing ? [] : buildPythonFixtures(root),
    ]);
    upstream = await startFixtureUpstream({
      npm: packed,
      pypi: dists,
      files: { a: GEN_A, b: GEN_B, c: GEN_C, d: GEN_D },
    });
    if (!npmMissing) await writeFixtureProject(join(root, 'app'), root, upstream.npmRegistry, set.project);
    if (!pythonMissing) writeFileSync(join(root, 'requirements.txt'), requirementsTxt(dists));
    const list = (name: string, files: [string, Buffer][]): void =>
      writeFileSync(
        join(root, name),
        JSON.stringify(files.map(([f, b]) => ({ url: upstream!.fileUrl(f), sha256: sha256Hex(b) }))),
      );
    list('list-a.json', [['a', GEN_A]]);
    list('list-b.json', [['b', GEN_B]]);
    list('list-c.json', [['c', GEN_C]]);
    list('list-d.json', [['d', GEN_D]]);

    const state = join(root, 'state.json');
    bundles.b1 = await sync('b1', { full: true, lists: ['list-a.json'], state, plane: planeA });
    copyFileSync(state, join(root, 'state-after-b1-x.json'));
    copyFileSync(state, join(root, 'state-after-b1-y.json'));
    // Bundle 2 repeats bundle 1's artifacts (blobs the store already has) and adds GEN_B (a new blob).
    bundles.b2 = await sync('b2', { full: true, lists: ['list-a.json', 'list-b.json'], state, plane: planeA });
    bundles.b3 = await sync('b3', { lists: ['list-c.json'], state, plane: planeA });
    bundles.b4 = await sync('b4', { lists: ['list-d.json'], state, plane: planeA });
    // The same place in the chain as bundle 2 (sequence 2 after bundle 1), signed by someone else.
    [bundles.otherIdentity, bundles.otherPlane] = await Promise.all([
      sync('other-identity', {
        lists: ['list-b.json'],
        state: join(root, 'state-after-b1-x.json'),
        plane: planeA,
        subject: otherSubject,
      }),
      sync('other-plane', { lists: ['list-b.json'], state: join(root, 'state-after-b1-y.json'), plane: planeB }),
    ]);
    await upstream.close();
    upstream = undefined;
  }, 180_000);

  afterAll(async () => {
    await upstream?.close();
    await Promise.all([planeA?.stop(), planeB?.stop()]);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('imports bundle 1 (control); the store is fsck-clean', async () => {
    const r = await runCliJson(importArgs(bundles.b1, store, planeA!));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ok: true, snapshot: { sequence: 1 } });
    await expectFsckClean();
  });

  it('a flipped byte anywhere in bundle 2 (headers, padding, end blocks, manifest, signatures, SBOM, old and new blobs) is refused', async () => {
    const bytes = readFileSync(bundles.b2);
    const layout = tarLayout(bytes);
    const { entries } = layout;
    const entry = (name: string): TarLayoutEntry => {
      const e = entries.find((x) => x.name === name);
      if (!e) throw new Error(`no ${name} in bundle 2: ${entries.map((x) => x.name).join(', ')}`);
      return e;
    };
    const manifest = entry('manifest.json');
    const mBundle = entry('attestations/manifest.sigstore.json');
    const sbom = entry('attestations/sbom.cdx.json');
    const sBundle = entry('attestations/sbom.sigstore.json');
    const newBlob = entry(`blobs/sha256/${sha256Hex(GEN_B)}`);
    const oldBlob = entry(`blobs/sha256/${sha256Hex(GEN_A)}`);
    const blobs = entries.filter((e) => e.name.startsWith('blobs/'));
    expect(blobs.length).toBeGreaterThan(3);
    const firstBlob = blobs[0]!;
    const lastBlob = blobs.at(-1)!;
    expect(entries.filter((e) => e.paddingLength > 0).length).toBeGreaterThan(3);

    // Every region of the archive is sampled, deterministically.
    const pick = seeded(20240611);
    const positions = new Set<number>();
    const add = (...ps: number[]): void => ps.forEach((p) => positions.add(p));
    for (const e of entries) {
      // every header field (checksum terminators and unused bytes included) of the headers that precede and
      // follow the signature check; a sample of every other header
      const full = [manifest, mBundle, sbom, sBundle, firstBlob, lastBlob].includes(e);
      add(...(full ? HEADER_FIELD_OFFSETS : [pick(512), pick(512), 148 + pick(8)]).map((o) => e.header + o));
      if (e.paddingLength > 0)
        add(...(full ? [e.padding, e.padding + e.paddingLength - 1] : []), e.padding + pick(e.paddingLength));
      if (e.size > 0) add(e.data + pick(e.size));
    }
    add(manifest.data, manifest.data + Math.floor(manifest.size / 2), manifest.data + manifest.size - 1);
    add(...jsonHotSpots(bytes, mBundle), ...jsonHotSpots(bytes, sBundle));
    add(sbom.data, sbom.data + Math.floor(sbom.size / 2), sbom.data + sbom.size - 1);
    add(
      newBlob.data,
      newBlob.data + newBlob.size - 1,
      oldBlob.data + Math.floor(oldBlob.size / 2),
      lastBlob.data,
      lastBlob.data + lastBlob.size - 1,
    );
    add(
      layout.end,
      layout.end + 1,
      layout.end + 511,
      layout.end + 512,
      bytes.length - 1,
      layout.end + pick(1024),
      layout.end + pick(1024),
    );
    const flips: Flip[] = [...positions].sort((a, b) => a - b).map((pos) => ({ pos, ...expectedFlip(layout, pos) }));
    for (const code of ['IMPORT_ARCHIVE_NONCANONICAL', 'IMPORT_SIGNATURE_INVALID', 'IMPORT_BLOB_MISMATCH'])
      expect(flips.filter((f) => f.code === code).length).toBeGreaterThan(20);

    const before = storeState(store);
    const trustedRoot = JSON.parse(readFileSync(join(planeA!.dir, 'trusted_root.json'), 'utf8')) as unknown;
    const syncIdentity = { subject: planeA!.syncIdentity, issuer: planeA!.endpoints.identityIssuerUrl };
    // In-process, so hundreds of positions stay cheap (the next test shows the same through the CLI). No fsync
    // for these imports: each is refused, nothing it stages survives, and syncing would only slow every one.
    const s = await MirrorStore.open(store, { fs: { fsync: false } });
    const importBytes = async (t: Buffer): Promise<string> => {
      try {
        await importBundle(Readable.from([t]), { store: s, trustedRoot, syncIdentity });
        return 'ACCEPTED';
      } catch (err) {
        return (err as { code?: string }).code ?? String(err);
      }
    };
    const results: { what: string; pos: number; code: string }[] = [];
    const changed: string[] = [];
    let extra: typeof results;
    try {
      for (const f of flips) {
        const t = Buffer.from(bytes);
        t[f.pos] = t[f.pos]! ^ 0x01;
        results.push({ what: f.what, pos: f.pos, code: await importBytes(t) });
        if (!isDeepStrictEqual(storeState(store), before)) changed.push(f.what);
      }
      // Not flips, but the same fail-closed rule: a byte after the end blocks, an end block missing.
      extra = [
        { what: 'a trailing zero byte', pos: -1, code: await importBytes(Buffer.concat([bytes, Buffer.alloc(1)])) },
        { what: 'a third end block', pos: -1, code: await importBytes(Buffer.concat([bytes, Buffer.alloc(512)])) },
        { what: 'the last end block missing', pos: -1, code: await importBytes(bytes.subarray(0, bytes.length - 512)) },
      ];
    } finally {
      await s.close();
    }
    // One assertion over all positions, so a failure shows every outcome at once.
    expect([...results, ...extra]).toEqual([
      ...flips.map((f) => ({ what: f.what, pos: f.pos, code: f.code })),
      { what: 'a trailing zero byte', pos: -1, code: 'IMPORT_ARCHIVE_NONCANONICAL' },
      { what: 'a third end block', pos: -1, code: 'IMPORT_ARCHIVE_NONCANONICAL' },
      { what: 'the last end block missing', pos: -1, code: 'IMPORT_ARCHIVE_UNSAFE' },
    ]);
    expect(changed).toEqual([]);
    expect(storeState(store)).toEqual(before);
    await expectFsckClean();
  }, 240_000);

  it('a flipped byte is refused through the CLI too: header checksum terminator, padding, end block, base64 padding', async () => {
    const bytes = readFileSync(bundles.b2);
    const layout = tarLayout(bytes);
    const manifest = layout.entries.find((e) => e.name === 'manifest.json')!;
    const mBundle = layout.entries.find((e) => e.name === 'attestations/manifest.sigstore.json')!;
    const padded = layout.entries.find((e) => e.paddingLength > 0)!;
    const json = bytes.subarray(mBundle.data, mBundle.data + mBundle.size).toString('latin1');
    const pad = json.indexOf('=');
    expect(pad).toBeGreaterThan(0);
    const cases: [number, string][] = [
      [manifest.header + 155, 'IMPORT_ARCHIVE_NONCANONICAL'],
      [padded.padding + padded.paddingLength - 1, 'IMPORT_ARCHIVE_NONCANONICAL'],
      [bytes.length - 1, 'IMPORT_ARCHIVE_NONCANONICAL'],
      [mBundle.data + pad - 1, 'IMPORT_SIGNATURE_INVALID'],
      [mBundle.data + pad, 'IMPORT_SIGNATURE_INVALID'],
    ];
    const flipped = join(root, 'flipped.tar');
    for (const [pos, code] of cases) {
      const t = Buffer.from(bytes);
      t[pos] = t[pos]! ^ 0x01;
      writeFileSync(flipped, t);
      const message = await expectRefused(flipped, code);
      if (code === 'IMPORT_ARCHIVE_NONCANONICAL') expect(message).toMatch(/offset \d+/);
    }
    await expectFsckClean();
  }, 120_000);

  describe('crafted archives are refused by hygiene checks around genuine signed content', () => {
    let genuine: CraftEntry[];
    let firstBlob: number;
    beforeAll(async () => {
      genuine = await readEntries(bundles.b2);
      firstBlob = genuine.findIndex((e) => e.name.startsWith('blobs/'));
      // Control: re-packed unchanged, bundle 2 is valid (imported where a gap is allowed).
      await importIntoScratch(await writeTar(join(root, 'repacked.tar'), genuine), planeA!);
    });
    /** The genuine entries with `inject` put before the first blob (after the signatures were read). */
    const withEntry = (inject: CraftEntry[], at: 'before-blobs' | 'end' = 'before-blobs'): CraftEntry[] =>
      at === 'end' ? [...genuine, ...inject] : [...genuine.slice(0, firstBlob), ...inject, ...genuine.slice(firstBlob)];
    const replacingFirstBlob = (e: Omit<CraftEntry, 'name'>): CraftEntry[] =>
      genuine.map((g, i) => (i === firstBlob ? { name: g.name, ...e } : g));

    const cases: [string, () => CraftEntry[], string][] = [
      [
        'an absolute path',
        () => genuine.map((g, i) => (i === firstBlob ? { ...g, name: `/tmp/airlock-escape-abs` } : g)),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      [
        'a .. traversal',
        () => withEntry([{ name: 'blobs/sha256/../../../../tmp/airlock-escape-dotdot', body: Buffer.from('x') }]),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      [
        'a .. traversal in a long (pax) name',
        () => withEntry([{ name: `blobs/${'../'.repeat(40)}tmp/airlock-escape-pax`, body: Buffer.from('x') }]),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      [
        'a symlink in place of a blob',
        () => replacingFirstBlob({ type: 'symlink', linkname: '/etc/passwd' }),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      [
        'a hard link in place of a blob',
        () => replacingFirstBlob({ type: 'link', linkname: 'manifest.json' }),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      [
        'a character device',
        () => withEntry([{ name: 'dev-null', type: 'character-device' }]),
        'IMPORT_ARCHIVE_UNSAFE',
      ],
      ['a FIFO', () => withEntry([{ name: 'fifo', type: 'fifo' }]), 'IMPORT_ARCHIVE_UNSAFE'],
      ['a directory entry', () => withEntry([{ name: 'blobs/sha256/', type: 'directory' }]), 'IMPORT_ARCHIVE_UNSAFE'],
      ['a duplicate blob', () => withEntry([genuine[firstBlob]!]), 'IMPORT_ARCHIVE_UNSAFE'],
      [
        'a blob the manifest does not list',
        () => withEntry([{ name: `blobs/sha256/${sha256Hex('smuggled')}`, body: Buffer.from('smuggled') }], 'end'),
        'IMPORT_UNEXPECTED_ENTRY',
      ],
      [
        'a file outside the bundle layout',
        () => withEntry([{ name: 'README.txt', body: Buffer.from('hello') }]),
        'IMPORT_UNEXPECTED_ENTRY',
      ],
    ];
    it.each(cases)('%s', async (_what, make, code) => {
      const path = await writeTar(join(root, 'crafted.tar'), make());
      const message = await expectRefused(path, code);
      expect(message.length).toBeGreaterThan(15);
      for (const escape of ['abs', 'dotdot', 'pax']) expect(existsSync(`/tmp/airlock-escape-${escape}`)).toBe(false);
    });

    it('a blob over --max-blob-bytes: refused from its header, signed or not', async () => {
      const largest = Math.max(...genuine.filter((g) => g.name.startsWith('blobs/')).map((g) => g.body!.length));
      await expectRefused(bundles.b2, 'IMPORT_TOO_LARGE', ['--max-blob-bytes', String(largest - 1)]);
      // Unsigned: the size limit is an archive check, it does not wait for (or depend on) the signatures.
      const unsigned = await writeTar(join(root, 'unsigned-big.tar'), [
        { name: 'manifest.json', body: Buffer.from('{}') },
        { name: `blobs/sha256/${sha256Hex(GEN_B)}`, body: GEN_B },
      ]);
      await expectRefused(unsigned, 'IMPORT_TOO_LARGE', ['--max-blob-bytes', '65536']);
      // A limit that is not a number is a usage error, not "no limit".
      const r = await runCliJson(importArgs(bundles.b2, store, planeA!, ['--max-blob-bytes', 'lots']));
      expect(r.code).toBe(2);
      expect(r.errorCode).toBe('USAGE');
    });

    it('leaves fsck clean', expectFsckClean);
  });

  it('refuses a bundle signed by another identity of the same plane (otherwise valid)', async () => {
    const message = await expectRefused(bundles.otherIdentity, 'IMPORT_SIGNATURE_INVALID');
    expect(message).toContain('someone/else');
    await importIntoScratch(bundles.otherIdentity, planeA!, otherSubject);
  });

  it('refuses a bundle certified by another plane for the same SPIFFE ID: its root is not trusted', async () => {
    // Even with the policy naming the other plane's issuer, the chain does not lead to the trusted root.
    await expectRefused(bundles.otherPlane, 'IMPORT_SIGNATURE_INVALID');
    const policyForB = ['--sync-issuer', planeB!.endpoints.identityIssuerUrl];
    const before = storeState(store);
    const r = await runCliJson([
      'mirror',
      'import',
      bundles.otherPlane,
      '--store',
      store,
      '--data',
      planeA!.dir,
      '--sync-identity',
      planeA!.syncIdentity,
      ...policyForB,
      '--json',
    ]);
    expect(r.code).toBe(1);
    expect(r.errorCode).toBe('IMPORT_SIGNATURE_INVALID');
    expect(storeState(store)).toEqual(before);
    // Trusting plane B, the same bundle is fine.
    await importIntoScratch(bundles.otherPlane, planeB!);
    await expectFsckClean();
  });

  it('sequence: bundle 2 imports; replays and older bundles are refused; a gap needs --allow-gap', async () => {
    const two = await runCliJson(importArgs(bundles.b2, store, planeA!));
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(two.json).toMatchObject({ ok: true, snapshot: { sequence: 2 }, newBlobs: 1 });
    const afterTwo: StoreState = storeState(store);
    expect(afterTwo.head?.sequence).toBe(2);

    expect(await expectRefused(bundles.b2, 'IMPORT_SEQUENCE')).toMatch(/replay|already|sequence/i); // the same bundle again
    await expectRefused(bundles.b1, 'IMPORT_SEQUENCE'); // an older one
    await expectRefused(bundles.b1, 'IMPORT_SEQUENCE', ['--allow-gap']); // --allow-gap never allows going back
    await expectRefused(bundles.b4, 'IMPORT_SEQUENCE'); // skips bundle 3
    const four = await runCliJson(importArgs(bundles.b4, store, planeA!, ['--allow-gap']));
    expect(four.code, four.stdout + four.stderr).toBe(0);
    expect(four.json).toMatchObject({ ok: true, snapshot: { sequence: 4 } });
    await expectRefused(bundles.b3, 'IMPORT_SEQUENCE', ['--allow-gap']); // bundle 3 now comes too late
    await expectRefused(bundles.b4, 'IMPORT_SEQUENCE'); // and bundle 4 cannot come twice
    await expectFsckClean();
    const f = await fsck(store);
    expect(f.report.checked).toBe(afterTwo.files.filter((x) => x.startsWith('blobs/')).length + 1);
  }, 60_000);
});
