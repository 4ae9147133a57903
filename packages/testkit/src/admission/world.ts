/**
 * The admission acceptance world (issue 9 §3): a real trust plane (`airlock up`), a real docker-registry on loopback
 * and six images in it, each made the way the real world makes it:
 *   - signed:        built, pushed and signed by `airlock run` (runner identity, runner builder id);
 *   - unsigned:      an OCI layout pushed with skopeo, nothing attached;
 *   - wrongIdentity: built and signed by `airlock run --subject <rogue SPIFFE id>` (a valid certificate from the
 *                    same CA, but not the runner's identity);
 *   - badProvenance: built and signed by the runner identity with `--builder-id` of an untrusted builder, so the
 *                    provenance fails a builder-id rule;
 *   - retagged:      tag `stable` first named the signed image, then was moved over an unsigned image;
 *   - fallbackOnly:  built and signed by `airlock run`, then its cosign `.sig`/`.att` manifests deleted, so its
 *                    signature and attestations exist only behind the `sha256-<hex>` referrers fallback index.
 * The CLI is spawned as a process (its path is an option), so testkit imports no product code. Every image has
 * its own commit, so every digest differs. `close()` stops the plane and the registry and removes the directory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import {
  registryProblem,
  skopeoProblem,
  startRegistry,
  type RegistryTuning,
  type RunningRegistry,
} from '../registry/docker-registry.js';
import { bwrapProblem, straceProblem, which } from '../tools/tools.js';

export interface WorldImage {
  /** `host:port/acme/<name>` (no tag). */
  repository: string;
  /** The repository path in the registry (`acme/<name>`). */
  path: string;
  tag: string;
  /** The manifest digest the tag names now. */
  digest: string;
  /** `repository:tag`. */
  reference: string;
  /** `repository@digest`. */
  pinned: string;
}

export interface AdmissionWorldImages {
  signed: WorldImage;
  unsigned: WorldImage;
  wrongIdentity: WorldImage;
  badProvenance: WorldImage;
  /** `digest` is what `stable` names now (unsigned); `signedDigest` what it named when it was signed. */
  retagged: WorldImage & { signedDigest: string };
  fallbackOnly: WorldImage;
  /** More images built and signed exactly like `signed` (for benchmarks: several distinct digests). */
  extraSigned: WorldImage[];
}

export interface AdmissionWorld {
  dir: string;
  /** `airlock up --data` directory: endpoints.json, trusted_root.json, the embedded issuer's key. */
  planeDir: string;
  trustedRootPath: string;
  trustDomain: string;
  /** The embedded identity issuer's URL (the certificates' OIDC issuer). */
  issuer: string;
  identities: { runner: string; rogue: string };
  builderIds: { runner: string; untrusted: string };
  /** The provenance's source repository URI (`git+file://…`) of every runner-built image. */
  sourceRepoUri: string;
  registry: RunningRegistry;
  images: AdmissionWorldImages;
  /** Points `tag` of `path` at a manifest already in that repository (a tag moved in the registry). */
  moveTag(path: string, tag: string, digest: string): Promise<void>;
  /** Every tag of a repository path. */
  tags(path: string): Promise<string[]>;
  close(): Promise<void>;
}

export interface AdmissionWorldOptions {
  /** The built `airlock` CLI (packages/cli/dist/bin.js). */
  cli: string;
  /** How many more runner-signed images to build (default 0). */
  extraSigned?: number;
  progress?: (message: string) => void;
  /** Registry settings (benchmarks: as an operator would run it); default: startRegistry's. */
  registry?: RegistryTuning;
}

/** Why this machine cannot build the world (each missing tool), for toolsAvailable(). */
export function admissionWorldProblems(): (string | undefined)[] {
  return [
    registryProblem(),
    skopeoProblem(),
    which('git') ? undefined : 'git is not installed',
    bwrapProblem(),
    straceProblem(),
  ];
}

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface RunImage {
  reference: string;
  digest: string;
  tags: string[];
  signature: { tag: string; manifestDigest: string };
  attestations: { tag: string; manifestDigest: string };
}

/** Builds the world; on any failure everything started so far is stopped and removed. */
export async function buildAdmissionWorld(options: AdmissionWorldOptions): Promise<AdmissionWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-admission-world-'));
  // As root the runner's sandbox runs as an unprivileged host uid that must traverse the work root.
  chmodSync(dir, 0o711);
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    return await assemble(dir, options, cleanups, close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function assemble(
  dir: string,
  options: AdmissionWorldOptions,
  cleanups: (() => Promise<void>)[],
  close: () => Promise<void>,
): Promise<AdmissionWorld> {
  const progress = options.progress ?? (() => undefined);
  const planeDir = join(dir, 'plane');
  progress('starting the trust plane (airlock up)');
  const plane = await startCliProcess(options.cli, ['up', '--data', planeDir, '--json'], (o) => o.trim().endsWith('}'));
  cleanups.push(plane.stop);
  const endpoints = JSON.parse(plane.stdout()) as { trustDomain: string; identityIssuerUrl: string };
  const registry = await startRegistry(join(dir, 'registry'), options.registry ? { tuning: options.registry } : {});
  cleanups.push(registry.stop);
  const td = endpoints.trustDomain;
  const identities = { runner: `spiffe://${td}/airlock/runner`, rogue: `spiffe://${td}/ci/someone-else` };
  const builderIds = { runner: identities.runner, untrusted: 'https://ci.example/untrusted-builder' };
  const src = new SourceRepo(join(dir, 'repo'), dir);
  const runner = new Runner(options.cli, dir, planeDir, registry.host, src);
  const reg = new RegistryHttp(registry.url);

  progress('airlock run: signed image');
  const signed = await runner.build('app', 'signed');
  progress('skopeo: unsigned image');
  const layout = await writeUnsignedLayout(join(dir, 'unsigned-layout'));
  const unsigned = await pushLayout(layout, registry.host, 'acme/unsigned', 'v1', dir, reg);
  progress('airlock run: wrong identity');
  const wrongIdentity = await runner.build('rogue', 'wrong-identity', ['--subject', identities.rogue]);
  progress('airlock run: untrusted builder id');
  const badProvenance = await runner.build('badprov', 'bad-provenance', ['--builder-id', builderIds.untrusted]);
  progress('retagging acme/app:stable from the signed image over an unsigned one');
  await reg.moveTag('acme/app', 'stable', signed.image.digest);
  const moved = await pushLayout(layout, registry.host, 'acme/app', 'stable', dir, reg);
  progress('airlock run: fallback-index-only image');
  const fb = await runner.build('fallback', 'fallback-only');
  await reg.deleteManifest('acme/fallback', fb.run.signature.manifestDigest);
  await reg.deleteManifest('acme/fallback', fb.run.attestations.manifestDigest);
  const extraSigned: WorldImage[] = [];
  for (let i = 0; i < (options.extraSigned ?? 0); i++) {
    progress(`airlock run: extra signed image ${i + 1}`);
    extraSigned.push((await runner.build(`extra-${i + 1}`, `extra-${i + 1}`)).image);
  }
  return {
    dir,
    planeDir,
    trustedRootPath: join(planeDir, 'trusted_root.json'),
    trustDomain: td,
    issuer: endpoints.identityIssuerUrl,
    identities,
    builderIds,
    sourceRepoUri: src.uri,
    registry,
    images: {
      signed: signed.image,
      unsigned,
      wrongIdentity: wrongIdentity.image,
      badProvenance: badProvenance.image,
      retagged: { ...moved, signedDigest: signed.image.digest },
      fallbackOnly: fb.image,
      extraSigned,
    },
    moveTag: (path, tag, digest) => reg.moveTag(path, tag, digest),
    tags: (path) => reg.tags(path),
    close,
  };
}

function worldImage(host: string, path: string, tag: string, digest: string): WorldImage {
  const repository = `${host}/${path}`;
  return { repository, path, tag, digest, reference: `${repository}:${tag}`, pinned: `${repository}@${digest}` };
}

/** A git repository with one commit per image (a different `variant.txt` each, so every image digest differs). */
class SourceRepo {
  readonly uri: string;
  constructor(
    readonly path: string,
    private readonly home: string,
  ) {
    mkdirSync(path, { recursive: true });
    writeFileSync(
      join(path, 'build.sh'),
      [
        '#!/bin/sh',
        'set -eu',
        'mkdir -p "$AIRLOCK_OUTPUT_DIR/bin" "$AIRLOCK_OUTPUT_DIR/share"',
        'printf "#!/bin/sh\\ncat /app/share/variant.txt\\n" > "$AIRLOCK_OUTPUT_DIR/bin/hello"',
        'cp variant.txt "$AIRLOCK_OUTPUT_DIR/share/variant.txt"',
        '',
      ].join('\n'),
    );
    this.git(['init', '-q', '-b', 'main']);
    this.uri = `git+file://${path}`;
  }

  commit(variant: string): string {
    writeFileSync(join(this.path, 'variant.txt'), `airlock admission world: ${variant}\n`);
    this.git(['add', '-A']);
    this.git(['commit', '-q', '--allow-empty', '-m', variant]);
    return this.git(['rev-parse', 'HEAD']);
  }

  private git(args: string[]): string {
    const date = '2026-01-02T03:04:05Z';
    return execFileSync('git', args, {
      cwd: this.path,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: this.home,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@example.com',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@example.com',
        GIT_AUTHOR_DATE: date,
        GIT_COMMITTER_DATE: date,
      },
    }).trim();
  }
}

/** `airlock run` of one commit into `acme/<name>`, with the image output; extra CLI flags per image. */
class Runner {
  constructor(
    private readonly cli: string,
    private readonly dir: string,
    private readonly planeDir: string,
    private readonly host: string,
    private readonly src: SourceRepo,
  ) {}

  async build(name: string, variant: string, extra: string[] = []): Promise<{ image: WorldImage; run: RunImage }> {
    const commit = this.src.commit(variant);
    const path = `acme/${name}`;
    const spec = join(this.dir, `${name}.spec.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        source: { repo: this.src.path, commit, ref: 'refs/heads/main' },
        builder: { type: 'command', argv: ['sh', 'build.sh'] },
        outputs: ['bin/hello', 'share/variant.txt'],
        reproducible: true,
        image: {
          type: 'oci',
          repository: `${this.host}/${path}`,
          executable: ['bin/hello'],
          entrypoint: ['/app/bin/hello'],
        },
      }),
    );
    const args = ['run', '--spec', spec, '--out', join(this.dir, `out-${name}`), '--data', this.planeDir];
    args.push('--registry-plain-http', '--work-root', join(this.dir, 'work'), '--json', ...extra);
    const r = await runCliProcess(this.cli, args);
    let json: { ok?: boolean; image?: RunImage };
    try {
      json = JSON.parse(r.stdout) as typeof json;
    } catch {
      throw new Error(`airlock run (${name}) printed no JSON (exit ${r.code}): ${r.stderr.slice(-2000)}`);
    }
    if (r.code !== 0 || !json.ok || !json.image)
      throw new Error(
        `airlock run (${name}) failed (exit ${r.code}): ${r.stdout.slice(-2000)} ${r.stderr.slice(-2000)}`,
      );
    const run = json.image;
    return { image: worldImage(this.host, path, run.tags[0]!, run.digest), run };
  }
}

/** The few registry calls the world needs (plain HTTP, anonymous), without @airlock/oci. */
class RegistryHttp {
  constructor(private readonly url: string) {}

  async manifest(path: string, ref: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
    const res = await fetch(`${this.url}/v2/${path}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (res.status !== 200) throw new Error(`GET manifest ${path}:${ref}: HTTP ${res.status}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    return { bytes, mediaType: res.headers.get('content-type') ?? '', digest: sha256(bytes) };
  }

  async moveTag(path: string, tag: string, digest: string): Promise<void> {
    const m = await this.manifest(path, digest);
    const res = await fetch(`${this.url}/v2/${path}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'Content-Type': m.mediaType },
      body: m.bytes,
    });
    if (res.status !== 201) throw new Error(`PUT manifest ${path}:${tag}: HTTP ${res.status} ${await res.text()}`);
  }

  /** Deleting a manifest by digest also removes every tag that names it (CNCF Distribution). */
  async deleteManifest(path: string, digest: string): Promise<void> {
    const res = await fetch(`${this.url}/v2/${path}/manifests/${digest}`, { method: 'DELETE' });
    if (res.status !== 202) throw new Error(`DELETE manifest ${path}@${digest}: HTTP ${res.status}`);
  }

  async tags(path: string): Promise<string[]> {
    const res = await fetch(`${this.url}/v2/${path}/tags/list`);
    if (res.status !== 200) throw new Error(`GET tags ${path}: HTTP ${res.status}`);
    return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
  }
}

/** A minimal OCI image layout (one layer with one file), as a build tool outside airlock would leave it. */
async function writeUnsignedLayout(dir: string): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): { digest: string; size: number } => {
    const digest = sha256(b);
    writeFileSync(join(blobs, digest.slice(7)), b);
    return { digest, size: b.length };
  };
  const layer = put(await tarOf('app/hello.txt', 'built outside airlock, never signed\n'));
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/cat', '/app/hello.txt'] },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  );
  const manifest = put(manifestBytes);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'v1' },
        },
      ],
    }),
  );
  return dir;
}

function tarOf(name: string, content: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
    pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
    pack.finalize();
  });
}

/** `skopeo copy oci:<layout>:v1 docker://<host>/<path>:<tag>`; returns the pushed image. */
async function pushLayout(
  layout: string,
  host: string,
  path: string,
  tag: string,
  home: string,
  reg: RegistryHttp,
): Promise<WorldImage> {
  // HOME in the world dir: skopeo reads no auth file or registries.conf of the user running the tests.
  const r = await runProcess(
    'skopeo',
    ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${host}/${path}:${tag}`],
    { PATH: process.env.PATH, HOME: home },
  );
  if (r.code !== 0) throw new Error(`skopeo copy to ${path}:${tag} failed: ${r.stderr}`);
  return worldImage(host, path, tag, (await reg.manifest(path, tag)).digest);
}

interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const runCliProcess = (cli: string, args: string[]): Promise<ProcessResult> =>
  runProcess(process.execPath, [cli, ...args]);

/** A long-running CLI command, ready once `ready(stdout)`; stop() sends SIGTERM, then SIGKILL after 5 s. */
export async function startCliProcess(
  cli: string,
  args: string[],
  ready: (stdout: string) => boolean,
  timeoutMs = 30_000,
): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(t);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`'airlock ${args.join(' ')}' not ready after ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    const check = (): void => {
      if (!ready(out)) return;
      clearTimeout(timer);
      child.removeListener('exit', early);
      resolve();
    };
    const early = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`'airlock ${args.join(' ')}' exited early (${code})\nstdout: ${out}\nstderr: ${err}`));
    };
    child.stdout!.on('data', check);
    child.once('exit', early);
  });
  return { child, stdout: () => out, stderr: () => err, stop };
}
