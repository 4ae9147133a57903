/**
 * Issue 3 acceptance, Nix: a fixture upstream serves a deterministic tarball and a plain file; the sync input is
 * produced both ways the issue names (a Nix fetch list, and `nix show-derivation -r` JSON of the real .drv made
 * by nix-instantiate); `airlock sync` → `airlock mirror import` → `airlock mirror serve`; the upstream is stopped;
 * then real `nix-build` with `hashed-mirrors` pointing at the mirror builds the fixed-output derivations (and a
 * consumer of them) with an empty chroot store, inside `unshare -n` where the mirror is the only thing reachable.
 * A file the mirror lacks fails the build even with its upstream up: nothing fetches it silently.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toNixBase32, toSri } from '@airlock/core';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { readTar, startUpstream, type Upstream } from '@airlock/testkit';
import { REPO_ROOT, runCli, startCli } from './helpers/cli.js';
import {
  deterministicTarGz,
  networkIsolationProblem,
  removeTree,
  runIsolated,
  startUnixBridge,
  toolsAvailable,
} from './helpers/netns.js';
import {
  makeNixSandbox,
  nixBuildCommand,
  nixInstantiate,
  nixProblem,
  nixShowDerivationRecursive,
  storeFile,
} from './helpers/nix.js';

const enabled = toolsAvailable('real nix-build against the mirror', [nixProblem(), networkIsolationProblem()]);

const FIXTURES = join(REPO_ROOT, 'fixtures', 'nix');
/** What the derivations name as upstream: unresolvable anywhere; the sync job reaches it through --rewrite-host. */
const UPSTREAM = 'https://upstream.airlock.invalid';
const GREET_URL = `${UPSTREAM}/airlock-fixture/greet-1.0.tar.gz`;
const NOTES_URL = `${UPSTREAM}/airlock-fixture/notes.txt`;
/** The mirror as the isolated build sees it: the bridge's port inside the namespace. */
const MIRROR_INSIDE = 'http://127.0.0.1:18080/';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let root: string;
let planeDir: string;
let plane: RunningTrustPlane;
let up: Upstream | undefined;
let greet: Buffer;
let notes: Buffer;
let consumerArgs: Record<string, string>;
let drvJson: Record<string, { outputs: { out: { path: string } }; env: Record<string, string> }>;
let consumerDrv: string;
const cleanups: (() => Promise<void>)[] = [];

const importBundle = (bundle: string, store: string): ReturnType<typeof runCli> =>
  runCli([
    'mirror',
    'import',
    bundle,
    '--store',
    store,
    '--create',
    '--data',
    planeDir,
    '--sync-identity',
    `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`,
    '--sync-issuer',
    plane.endpoints.identityIssuerUrl,
    '--json',
  ]);

/** `airlock mirror serve` on the host, reachable from the namespace only through a UNIX-socket bridge. */
async function serveMirror(
  store: string,
  name: string,
): Promise<{ url: string; socketPath: string; connections: () => number }> {
  const mirror = await startCli(['mirror', 'serve', '--store', store, '--json'], (o) => o.trim().endsWith('}'));
  cleanups.push(() => mirror.stop());
  const { url } = JSON.parse(mirror.stdout()) as { url: string };
  const bridge = await startUnixBridge(join(root, `${name}.sock`), url);
  cleanups.push(() => bridge.close());
  return { url, socketPath: bridge.socketPath, connections: bridge.connections };
}

describe.skipIf(!enabled)('Nix: sync → import → serve → real nix-build via hashed-mirrors under unshare -n', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-e2e-nix-'));
    planeDir = join(root, 'plane');
    plane = await startTrustPlane({ dataDir: planeDir });
    greet = deterministicTarGz(join(FIXTURES, 'upstream'), 'greet-1.0', join(root, 'greet-1.0.tar.gz'));
    notes = readFileSync(join(FIXTURES, 'upstream', 'notes.txt'));
    up = await startUpstream();
    up.file('/airlock-fixture/greet-1.0.tar.gz', greet);
    up.file('/airlock-fixture/notes.txt', notes);
    consumerArgs = {
      greetUrl: GREET_URL,
      greetSha256: sha256(greet),
      notesUrl: NOTES_URL,
      notesHash: toSri('sha256', sha256(notes)),
    };

    // The real .drv graph, evaluated offline into a scratch store (not the build stores, which start empty).
    const evalNix = makeNixSandbox(join(root, 'eval'));
    consumerDrv = nixInstantiate(evalNix, join(FIXTURES, 'consumer.nix'), consumerArgs);
    const text = nixShowDerivationRecursive(evalNix, consumerDrv);
    writeFileSync(join(root, 'show-derivation.json'), text);
    drvJson = JSON.parse(text) as typeof drvJson;
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await up?.close();
    await plane?.close();
    if (root) removeTree(root);
  });

  it('syncs the fetch list and the show-derivation JSON into signed bundles and imports each into a store', async () => {
    // The .drv graph: two flat fixed-output fetches (builtin:fetchurl) and the consumer, which is not one.
    const fods = Object.values(drvJson).filter((d) => d.env.builder === 'builtin:fetchurl');
    expect(Object.keys(drvJson)).toHaveLength(3);
    expect(fods.map((d) => d.env.url).sort()).toEqual([GREET_URL, NOTES_URL]);

    // The fetch list pins the same files in other hash encodings: nix-base32 and SRI.
    writeFileSync(
      join(root, 'nix-fetch.json'),
      JSON.stringify([
        { url: GREET_URL, hash: `sha256:${toNixBase32(fromHex(sha256(greet)))}` },
        { url: NOTES_URL, hash: toSri('sha256', sha256(notes)), name: 'notes.txt' },
      ]),
    );
    const rewrite = ['--rewrite-host', `${UPSTREAM}=${up!.url}`];
    for (const [name, input] of [
      ['list', ['--nix-fetch', join(root, 'nix-fetch.json')]],
      ['drv', ['--nix-drv', join(root, 'show-derivation.json')]],
    ] as const) {
      const s = await runCli([
        'sync',
        ...input,
        ...rewrite,
        '--out',
        join(root, `${name}.tar`),
        '--data',
        planeDir,
        '--json',
      ]);
      expect(s.code, s.stdout + s.stderr).toBe(0);
      expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, signed: true, entries: 2 });
      const manifest = JSON.parse(
        (await readTar(join(root, `${name}.tar`))).find((e) => e.name === 'manifest.json')!.body.toString('utf8'),
      ) as {
        entries: { ecosystem: string; name: string; urls: string[]; digests: { sha256: string } }[];
      };
      // The manifest records the upstream URLs (rewriting is transport), the ecosystem and the pinned digests.
      expect(manifest.entries.map((e) => [e.ecosystem, e.name, e.urls, e.digests.sha256]).sort()).toEqual([
        ['nix', 'greet-1.0.tar.gz', [GREET_URL], sha256(greet)],
        ['nix', 'notes.txt', [NOTES_URL], sha256(notes)],
      ]);
      const imp = await importBundle(join(root, `${name}.tar`), join(root, `store-${name}`));
      expect(imp.code, imp.stdout + imp.stderr).toBe(0);
      expect(JSON.parse(imp.stdout)).toMatchObject({ ok: true, entries: 2 });
    }
    expect(up!.hits('/airlock-fixture/greet-1.0.tar.gz')).toBeGreaterThanOrEqual(2);
    // From here on there is no upstream: only the mirror has the files.
    await up!.close();
    up = undefined;
  });

  for (const name of ['list', 'drv'] as const) {
    it(`real nix-build fetches the fixed-output derivations from the mirror (${name === 'list' ? 'fetch list' : 'show-derivation -r'} input), empty store, unshare -n`, async () => {
      const mirror = await serveMirror(join(root, `store-${name}`), `mirror-${name}`);
      const nix = makeNixSandbox(join(root, `build-${name}`));
      expect(existsSync(nix.store)).toBe(false);
      const r = await runIsolated(nixBuildCommand(nix, join(FIXTURES, 'consumer.nix'), consumerArgs, MIRROR_INSIDE), {
        cwd: root,
        env: nix.env,
        bridge: { socketPath: mirror.socketPath, port: 18080 },
        timeoutMs: 120_000,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      // Same expression, same arguments: the very derivation whose JSON was synced, now built.
      const consumerOut = drvJson[consumerDrv]!.outputs.out.path;
      expect(r.stdout.trim()).toBe(consumerOut);
      expect(mirror.connections()).toBeGreaterThanOrEqual(2);
      for (const [url, bytes] of [
        [GREET_URL, greet],
        [NOTES_URL, notes],
      ] as const) {
        const fod = Object.values(drvJson).find((d) => d.env.url === url)!;
        const file = readFileSync(storeFile(nix, fod.outputs.out.path));
        expect(sha256(file)).toBe(sha256(bytes));
      }
      const out = readFileSync(storeFile(nix, consumerOut), 'utf8');
      expect(out).toContain(
        `greet archive: ${Object.values(drvJson).find((d) => d.env.url === GREET_URL)!.outputs.out.path}`,
      );
      expect(out).toContain('notes: second line');
    });
  }

  it('fails when the mirror lacks the file, without fetching it upstream (upstream up, mirror asked, 404)', async () => {
    const missing = Buffer.from('a file that was never synced\n');
    const live = await startUpstream();
    cleanups.push(() => live.close());
    live.file('/airlock-fixture/missing.txt', missing);
    const mirror = await serveMirror(join(root, 'store-list'), 'mirror-missing');
    const nix = makeNixSandbox(join(root, 'build-missing'));
    const args = { url: `${live.url}/airlock-fixture/missing.txt`, sha256: sha256(missing) };
    const r = await runIsolated(
      nixBuildCommand(nix, join(FIXTURES, 'fetch.nix'), args, MIRROR_INSIDE, ['--option', 'download-attempts', '1']),
      {
        cwd: root,
        env: nix.env,
        bridge: { socketPath: mirror.socketPath, port: 18080 },
        timeoutMs: 120_000,
      },
    );
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    // Nix asked the mirror first (a 404 there is silent), then the URL, which is unreachable from the namespace.
    expect(mirror.connections()).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toContain(`unable to download '${args.url}'`);
    // The mirror answers 404 (never a fetch upstream), and neither it nor Nix reached the live upstream.
    expect((await fetch(`${mirror.url}/sha256/${sha256(missing)}`)).status).toBe(404);
    expect(live.totalHits()).toBe(0);
    expect(r.stdout.trim()).toBe('');
  });
});
