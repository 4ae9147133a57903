/**
 * Issue 4 acceptance for the Bazel and Nix fixtures, through the CLI: `airlock sync --bazel-fetch / --nix-fetch`
 * pins the fixtures' archives from a loopback stand-in of their public hosts (github.com, an unreachable .invalid
 * host), `airlock mirror import` verifies them into a store, `airlock mirror serve` serves it, the upstream stops,
 * and `airlock run` builds the Bazel workspace (cc_binary + genrule + http_archive) and the Nix expression
 * (fixed-output fetch + consumer) with the rebuild check. Each yields artifacts, two bundles that verify with
 * stock @sigstore/verify against the trusted root and the runner identity, and provenance whose mirror
 * dependencies are in the signed snapshot.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleVerifier } from '@airlock/verify';
import { REPO_ROOT } from './helpers/cli.js';
import { toolsAvailable, which } from './helpers/netns.js';
import {
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  type CliPlane,
  type RunningMirror,
} from './helpers/upstream-e2e.js';

const FIXTURES = join(REPO_ROOT, 'fixtures', 'runner');
const BAZEL_URL = 'https://github.com/airlock-fixtures/greet/archive/refs/tags/v2.0.tar.gz';
const NIX_URL = 'https://downloads.greet.invalid/releases/greet-2.0.tar.gz';

const enabled = toolsAvailable('Bazel/Nix builds through airlock run (bwrap, strace, git, bazel, nix-build)', [
  which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
  which('strace') ? undefined : 'strace is not installed',
  which('git') ? undefined : 'git is not installed',
  which('bazel') ? undefined : 'bazel (bazel-bootstrap) is not installed',
  which('nix-build') ? undefined : 'nix-build (nix-bin) is not installed',
]);

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The fixture's upstream directory as a deterministic .tar.gz (the same bytes the runner unit tests pin). */
function archiveOf(fixture: string): Buffer {
  return execFileSync(
    'sh',
    ['-c', 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - greet-2.0 | gzip -n -9'],
    { cwd: join(FIXTURES, fixture, 'upstream'), maxBuffer: 16 << 20 },
  );
}

const gitEnv = {
  PATH: process.env.PATH,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
  GIT_AUTHOR_DATE: '2026-01-02T03:04:05Z',
  GIT_COMMITTER_DATE: '2026-01-02T03:04:05Z',
};

/** A repository holding the fixture workspace, `<name>.in` templates filled in; returns its path and commit. */
function workspaceRepo(
  fixture: string,
  parent: string,
  values: Record<string, string>,
): { repo: string; commit: string } {
  const repo = join(parent, `${fixture}-repo`);
  cpSync(join(FIXTURES, fixture, 'workspace'), repo, { recursive: true });
  for (const n of readdirSync(repo)) {
    if (!n.endsWith('.in')) continue;
    let text = readFileSync(join(repo, n), 'utf8');
    for (const [k, v] of Object.entries(values)) text = text.replaceAll(`@${k}@`, v);
    writeFileSync(join(repo, n.slice(0, -3)), text);
    renameSync(join(repo, n), join(parent, `${fixture}-${n}`));
  }
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: repo, encoding: 'utf8', env: { ...gitEnv, HOME: parent } }).trim();
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', `fixture ${fixture}`);
  return { repo, commit: git('rev-parse', 'HEAD') };
}

async function manifestOf(
  bundle: string,
): Promise<{ snapshot: { id: string }; entries: { ecosystem: string; digests: { sha256: string } }[] }> {
  const entry = (await readTar(bundle)).find((e) => e.name === 'manifest.json');
  if (!entry) throw new Error(`${bundle} has no manifest.json`);
  return JSON.parse(entry.body.toString('utf8')) as {
    snapshot: { id: string };
    entries: { ecosystem: string; digests: { sha256: string } }[];
  };
}

interface RunJson {
  ok: boolean;
  artifacts: {
    name: string;
    path: string;
    sha256: string;
    provenance: { statement: string; bundle: string; logIndex: string };
    sbom: { bundle: string; logIndex: string };
  }[];
  reproducibility: string;
  mirror?: { snapshotId?: string; dependencies: number };
  verified: boolean;
}

let root: string;
let plane: CliPlane | undefined;
let upstream: Server | undefined;
let mirror: RunningMirror | undefined;
let manifest: Awaited<ReturnType<typeof manifestOf>>;
const bazelArchive = archiveOf('bazel-ws');
const nixArchive = archiveOf('nix-fod');

describe.skipIf(!enabled)(
  'airlock run e2e: Bazel and Nix fixtures against a mirror filled by sync + import (CLI)',
  () => {
    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'airlock-bazel-nix-e2e-'));
      // The Bazel/Nix sandboxes run as an unprivileged host uid when the runner is root: the work root must be traversable.
      chmodSync(root, 0o711);
      mkdirSync(join(root, 'work'), { mode: 0o711 });
      plane = await startPlane(join(root, 'plane'));
      const files = new Map([
        [`/gh${new URL(BAZEL_URL).pathname}`, bazelArchive],
        [`/nix${new URL(NIX_URL).pathname}`, nixArchive],
      ]);
      upstream = createServer((req, res) => {
        const body = files.get(req.url ?? '');
        if (!body) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-length': body.length }).end(body);
      });
      await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
      writeFileSync(
        join(root, 'bazel-fetch.json'),
        JSON.stringify([{ name: 'greet', urls: [BAZEL_URL], sha256: sha256(bazelArchive), strip_prefix: 'greet-2.0' }]),
      );
      writeFileSync(
        join(root, 'nix-fetch.json'),
        JSON.stringify([{ url: NIX_URL, hash: `sha256:${sha256(nixArchive)}` }]),
      );
      const bundle = join(root, 'b1.tar');
      const s = await runCliJson([
        'sync',
        '--bazel-fetch',
        join(root, 'bazel-fetch.json'),
        '--nix-fetch',
        join(root, 'nix-fetch.json'),
        '--rewrite-host',
        `https://github.com=${base}/gh`,
        '--rewrite-host',
        `https://downloads.greet.invalid=${base}/nix`,
        '--out',
        bundle,
        '--data',
        plane.dir,
        '--json',
      ]);
      expect(s.code, s.stdout + s.stderr).toBe(0);
      const imp = await runCliJson(importArgs(bundle, join(root, 'store'), plane));
      expect(imp.code, imp.stdout + imp.stderr).toBe(0);
      manifest = await manifestOf(bundle);
      expect(manifest.entries.map((e) => e.ecosystem).sort()).toEqual(['bazel', 'nix']);
      mirror = await startMirror(join(root, 'store'));
      await new Promise((r) => upstream!.close(r));
      upstream = undefined;
    }, 180_000);

    afterAll(async () => {
      await mirror?.stop();
      if (upstream) await new Promise((r) => upstream!.close(r));
      await plane?.stop();
      if (root) rmSync(root, { recursive: true, force: true });
    });

    async function build(name: string, spec: Record<string, unknown>): Promise<RunJson> {
      const specPath = join(root, `${name}.json`);
      writeFileSync(specPath, JSON.stringify({ ...spec, reproducible: true, timeoutSeconds: 600 }));
      const r = await runCliJson([
        'run',
        '--spec',
        specPath,
        '--out',
        join(root, `out-${name}`),
        '--data',
        plane!.dir,
        '--mirror',
        mirror!.url,
        '--work-root',
        join(root, 'work'),
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const result = r.json as unknown as RunJson;
      expect(result).toMatchObject({
        ok: true,
        reproducibility: 'reproduced',
        verified: true,
        mirror: { snapshotId: manifest.snapshot.id },
      });
      expect(result.mirror!.dependencies).toBeGreaterThanOrEqual(1);
      const verifier = new BundleVerifier(JSON.parse(readFileSync(join(plane!.dir, 'trusted_root.json'), 'utf8')));
      const policy = {
        issuer: plane!.endpoints.identityIssuerUrl,
        subject: `spiffe://${plane!.endpoints.trustDomain}/airlock/runner`,
      };
      const inSnapshot = new Set(manifest.entries.map((e) => e.digests.sha256));
      for (const a of result.artifacts) {
        const bytes = readFileSync(a.path);
        expect(sha256(bytes)).toBe(a.sha256);
        const prov = verifier.verify(JSON.parse(readFileSync(a.provenance.bundle, 'utf8')), {
          artifact: bytes,
          policy,
          expectedPredicateType: 'https://slsa.dev/provenance/v1',
        });
        verifier.verify(JSON.parse(readFileSync(a.sbom.bundle, 'utf8')), {
          artifact: bytes,
          policy,
          expectedPredicateType: 'https://cyclonedx.org/bom',
        });
        expect(prov.statement!.subject).toEqual([{ name: a.name, digest: { sha256: a.sha256 } }]);
        const deps = (
          prov.statement!.predicate as {
            buildDefinition: {
              resolvedDependencies: {
                name?: string;
                digest: Record<string, string>;
                annotations?: { role?: string };
              }[];
            };
          }
        ).buildDefinition.resolvedDependencies;
        const fromMirror = deps.filter((d) => d.annotations?.role === 'mirror-blob');
        expect(fromMirror.length).toBeGreaterThanOrEqual(1);
        for (const d of fromMirror) expect(inSnapshot.has(d.digest.sha256!), `${d.name} in snapshot`).toBe(true);
        for (const idx of [a.provenance.logIndex, a.sbom.logIndex])
          expect((await fetch(`${plane!.endpoints.tlogUrl}/api/v1/log/entries?logIndex=${idx}`)).status).toBe(200);
      }
      return result;
    }

    it('builds the Bazel workspace (cc_binary + genrule + http_archive from the mirror) reproducibly, signed and verified', async () => {
      const fx = workspaceRepo('bazel-ws', root, { GREET_SHA256: sha256(bazelArchive) });
      const result = await build('bazel', {
        source: { repo: fx.repo, commit: fx.commit },
        builder: { type: 'bazel', targets: ['//:hello', '//:bundle'] },
        outputs: ['hello', 'bundle.tar'],
      });
      expect(result.artifacts.map((a) => a.name).sort()).toEqual(['bundle.tar', 'hello']);
      const hello = result.artifacts.find((a) => a.name === 'hello')!;
      expect(execFileSync(hello.path, { encoding: 'utf8' }).length).toBeGreaterThan(0);
    }, 600_000);

    it('builds the Nix expression (fixed-output fetch from the mirror + consumer) reproducibly, signed and verified', async () => {
      const fx = workspaceRepo('nix-fod', root, { GREET_SHA256: sha256(nixArchive) });
      const result = await build('nix', {
        source: { repo: fx.repo, commit: fx.commit },
        builder: { type: 'nix', file: 'default.nix', attribute: 'greet' },
        outputs: ['bin/greet', 'share'],
      });
      expect(result.artifacts.map((a) => a.name)).toContain('bin/greet');
    }, 300_000);
  },
);
