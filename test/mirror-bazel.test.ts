/**
 * Issue 3 acceptance, Bazel (4.2.3, Debian's bazel-bootstrap): a fixture workspace with an `http_archive` pinned
 * by sha256 whose URL's host does not resolve. The sync input is produced both ways the issue names: a Bazel fetch
 * list, and the text of a real `bazel query 'kind(http_archive, //external:*)' --output=build` run offline.
 * `airlock sync` → `airlock mirror import` (one store per input); the upstream is stopped; then real `bazel build`
 * succeeds inside `unshare -n`
 *   (a) through a downloader config rewriting the URL to the mirror's `/sha256/<hex>/<filename>` route, the
 *       mirror being the only thing reachable, and
 *   (b) through `airlock mirror export-bazel-cache DIR` + `--repository_cache=DIR` with downloads disabled and no
 *       network at all — and fails the same way when that cache is empty.
 * Every bazel run is `--batch` (no server survives) under one temp `--output_user_root`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBazelQueryOutput } from '@airlock/mirror-sync';
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
  bazelCommand,
  bazelDownloaderConfig,
  bazelProblem,
  rulesFromWorkspace,
  writeFixtureWorkspace,
} from './helpers/bazel.js';

const enabled = toolsAvailable('real bazel build against the mirror', [bazelProblem(), networkIsolationProblem()]);

const FIXTURES = join(REPO_ROOT, 'fixtures', 'bazel');
const UPSTREAM = 'https://upstream.airlock.invalid';
const GREET_URL = `${UPSTREAM}/airlock-fixture/greet-1.0.tar.gz`;
const MIRROR_INSIDE = 'http://127.0.0.1:18080';
const BAZEL_TIMEOUT = 240_000;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let root: string;
let planeDir: string;
let plane: RunningTrustPlane;
let up: Upstream | undefined;
let greet: Buffer;
let outputUserRoot: string;
const cleanups: (() => Promise<void>)[] = [];

const bazel = (
  workspace: string,
  command: string,
  args: string[],
  bridge?: { socketPath: string; port: number },
): ReturnType<typeof runIsolated> =>
  runIsolated(bazelCommand(outputUserRoot, command, args), {
    cwd: workspace,
    env: { HOME: join(root, 'home') },
    timeoutMs: BAZEL_TIMEOUT,
    ...(bridge ? { bridge } : {}),
  });

/** A fresh copy of the fixture workspace (a fresh output base under the shared output root). */
const workspace = (name: string): string =>
  realpathSync(writeFixtureWorkspace(join(FIXTURES, 'workspace'), join(root, name), sha256(greet)));

const EXPECTED_HELLO =
  'hello from the greet fixture archive (bazel)\nHELLO FROM THE GREET FIXTURE ARCHIVE (BAZEL)\nbuilt-by-bazel\n';

describe.skipIf(!enabled)(
  'Bazel: sync → import → serve → real bazel build (downloader config; exported repository cache) under unshare -n',
  () => {
    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'airlock-e2e-bazel-'));
      planeDir = join(root, 'plane');
      outputUserRoot = join(root, 'bazel-out');
      mkdirSync(join(root, 'home'));
      plane = await startTrustPlane({ dataDir: planeDir });
      greet = deterministicTarGz(join(FIXTURES, 'upstream'), 'greet-1.0', join(root, 'greet-1.0.tar.gz'));
      up = await startUpstream();
      up.file('/airlock-fixture/greet-1.0.tar.gz', greet, 'application/gzip');
    });

    afterAll(async () => {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
      await up?.close();
      await plane?.close();
      if (root) removeTree(root);
    });

    it('syncs the pin from a fetch list and from real `bazel query … --output=build` text, and imports each', async () => {
      const ws = workspace('ws-query');
      const q = await bazel(ws, 'query', ['kind(http_archive, //external:*)', '--output=build']);
      expect(q.code, q.stderr).toBe(0);
      // The real text parses as a whole (Bazel's own defaults included) and holds the fixture's pin.
      const all = parseBazelQueryOutput(q.stdout);
      expect(all.entries.length).toBeGreaterThan(1);
      expect(all.entries.find((e) => e.name === 'greet')).toMatchObject({
        urls: [GREET_URL],
        sha256: sha256(greet),
        stripPrefix: 'greet-1.0',
      });
      // Only this workspace's own rules are synced: the defaults point at public hosts this machine cannot reach.
      const own = rulesFromWorkspace(q.stdout, join(ws, 'WORKSPACE'));
      expect(parseBazelQueryOutput(own).entries.map((e) => e.name)).toEqual(['greet']);
      writeFileSync(join(root, 'bazel-query.txt'), own);
      writeFileSync(
        join(root, 'bazel-fetch.json'),
        JSON.stringify([{ name: 'greet', urls: [GREET_URL], sha256: sha256(greet), strip_prefix: 'greet-1.0' }]),
      );

      for (const [name, input] of [
        ['list', ['--bazel-fetch', join(root, 'bazel-fetch.json')]],
        ['query', ['--bazel-query', join(root, 'bazel-query.txt')]],
      ] as const) {
        const s = await runCli([
          'sync',
          ...input,
          '--rewrite-host',
          `${UPSTREAM}=${up!.url}`,
          '--out',
          join(root, `${name}.tar`),
          '--data',
          planeDir,
          '--json',
        ]);
        expect(s.code, s.stdout + s.stderr).toBe(0);
        expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, signed: true, entries: 1 });
        const manifest = JSON.parse(
          (await readTar(join(root, `${name}.tar`))).find((e) => e.name === 'manifest.json')!.body.toString('utf8'),
        ) as {
          entries: {
            ecosystem: string;
            name: string;
            urls: string[];
            digests: { sha256: string };
            metadata: unknown;
          }[];
        };
        expect(manifest.entries).toHaveLength(1);
        expect(manifest.entries[0]).toMatchObject({
          ecosystem: 'bazel',
          name: 'greet',
          urls: [GREET_URL],
          digests: { sha256: sha256(greet) },
          metadata: { repository: 'greet', stripPrefix: 'greet-1.0', type: 'http_archive' },
        });
        const imp = await runCli([
          'mirror',
          'import',
          join(root, `${name}.tar`),
          '--store',
          join(root, `store-${name}`),
          '--create',
          '--data',
          planeDir,
          '--sync-identity',
          `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`,
          '--sync-issuer',
          plane.endpoints.identityIssuerUrl,
          '--json',
        ]);
        expect(imp.code, imp.stdout + imp.stderr).toBe(0);
        expect(JSON.parse(imp.stdout)).toMatchObject({ ok: true, entries: 1 });
      }
      await up!.close();
      up = undefined;
    });

    it('(a) real bazel build fetches the http_archive through a downloader-config rewrite to the mirror', async () => {
      const mirror = await startCli(['mirror', 'serve', '--store', join(root, 'store-list'), '--json'], (o) =>
        o.trim().endsWith('}'),
      );
      cleanups.push(() => mirror.stop());
      const { url } = JSON.parse(mirror.stdout()) as { url: string };
      const bridge = await startUnixBridge(join(root, 'mirror.sock'), url);
      cleanups.push(() => bridge.close());
      const pins = JSON.parse(readFileSync(join(root, 'bazel-fetch.json'), 'utf8')) as {
        urls: string[];
        sha256: string;
      }[];
      const config = join(root, 'downloader.cfg');
      writeFileSync(config, bazelDownloaderConfig(pins, MIRROR_INSIDE));

      const ws = workspace('ws-downloader');
      // The default repository cache lives in the output root; nothing may be in it from the query run.
      expect(
        existsSync(join(outputUserRoot, 'cache', 'repos', 'v1', 'content_addressable', 'sha256', sha256(greet))),
      ).toBe(false);
      const r = await bazel(ws, 'build', [`--experimental_downloader_config=${config}`, '//:hello'], {
        socketPath: bridge.socketPath,
        port: 18080,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(
        `Rewritten [${GREET_URL}] as [${MIRROR_INSIDE}/sha256/${sha256(greet)}/greet-1.0.tar.gz]`,
      );
      expect(bridge.connections()).toBeGreaterThanOrEqual(1);
      expect(readFileSync(join(ws, 'bazel-bin', 'hello.txt'), 'utf8')).toBe(EXPECTED_HELLO);
    });

    it('(b) real bazel build gets it from `airlock mirror export-bazel-cache` with no mirror and no network; an empty cache fails', async () => {
      const cache = join(root, 'repocache');
      const e = await runCli(['mirror', 'export-bazel-cache', cache, '--store', join(root, 'store-query'), '--json']);
      expect(e.code, e.stdout + e.stderr).toBe(0);
      expect(JSON.parse(e.stdout)).toMatchObject({ ok: true, total: 1 });
      expect(sha256(readFileSync(join(cache, 'content_addressable', 'sha256', sha256(greet), 'file')))).toBe(
        sha256(greet),
      );

      const offline = ['--experimental_repository_disable_download', '//:hello'];
      const ws = workspace('ws-cache');
      const r = await bazel(ws, 'build', [`--repository_cache=${cache}`, ...offline]);
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(join(ws, 'bazel-bin', 'hello.txt'), 'utf8')).toBe(EXPECTED_HELLO);

      // The same build with an empty repository cache: nothing else can provide the archive.
      const empty = join(root, 'empty-repocache');
      mkdirSync(empty);
      const ws2 = workspace('ws-empty-cache');
      const f = await bazel(ws2, 'build', [`--repository_cache=${empty}`, ...offline]);
      expect(f.code, f.stderr).not.toBe(0);
      expect(f.stderr).toContain('Failed to download repo greet: download is disabled');
      expect(existsSync(join(ws2, 'bazel-bin', 'hello.txt'))).toBe(false);
    });
  },
);
