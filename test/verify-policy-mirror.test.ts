/**
 * Dependency rules against a running mirror (`airlock verify artifact --mirror URL`) and exported snapshots
 * (`airlock mirror export-snapshot`): a real trust plane on loopback, a transfer bundle signed as the sync job and
 * imported into a real mirror store by the real importer, the real mirror server on an ephemeral loopback port,
 * provenance and SBOM made by the runner's builders (packages/policy/test/world.ts). Proves: the lookup API's
 * answers match schemas/mirror-snapshot-lookup.v1.schema.json; a release passes via --mirror (exit 0); a dependency
 * in no snapshot fails dependencies.snapshot naming it; a mirror that lies — serving a snapshot bundle signed by
 * another identity, or claiming that a snapshot holds a blob its signed manifest does not list — cannot make the
 * rule pass (exit 1, the claim recorded as a discrepancy); a mirror that is down → exit 3
 * (POLICY_MIRROR_UNREACHABLE); a bad --mirror URL → exit 2; oversized answers are cut off; an exported snapshot
 * is the signed bytes and passes `--snapshot DIR`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { canonicalTarHeader, importBundle, startMirrorServer, type RunningMirrorServer } from '@airlock/mirror';
import { MirrorLookupSnapshotSource, PolicyError } from '@airlock/policy';
import {
  ARTIFACT,
  attest,
  npmPackage,
  provenanceInput,
  provenanceOf,
  sbomOf,
  sha256,
  signSnapshot,
  startWorld,
  type Pkg,
  type SignedSnapshot,
  type World,
} from './helpers/policy-world.js';
import { REPO_ROOT, runCli } from './helpers/cli.js';

let w: World;
let work: string;
let file: string;
let data: string;
let policyPath: string;
let storeDir: string;
let store: MirrorStore;
let mirror: RunningMirrorServer;
/** Bundles of a build that also used a package the mirror never had. */
let strayBundles: string[];
const stray: Pkg = npmPackage('not-mirrored', '6.6.6');

interface RuleJson {
  rule: string;
  passed: boolean;
  seen: unknown;
}
interface VerdictJson {
  ok: boolean;
  result: string;
  rules: RuleJson[];
  error?: { code: string; message: string };
}

/** A transfer bundle: manifest.json, its Sigstore bundle, then blobs/sha256/<hex>, as canonical ustar entries. */
function transferTar(snap: SignedSnapshot, packages: readonly Pkg[]): Buffer {
  const entries: [string, Buffer][] = [
    ['manifest.json', snap.manifestBytes],
    ['attestations/manifest.sigstore.json', Buffer.from(JSON.stringify(snap.bundle))],
    ...packages.map((p): [string, Buffer] => [`blobs/sha256/${p.entry.digests.sha256}`, p.bytes]),
  ];
  const parts: Buffer[] = [];
  for (const [name, body] of entries)
    parts.push(canonicalTarHeader(name, body.length)!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function policyText(): string {
  return `apiVersion: airlock.dev/policy/v1
name: acme-app release
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`;
}

async function signedBuild(name: string, packages: readonly Pkg[]): Promise<string[]> {
  const input = provenanceInput(w, { finishedOn: new Date().toISOString(), packages });
  const prov = await attest(w, w.signers.runner, provenanceOf(input), 'p');
  const sbom = await attest(w, w.signers.runner, sbomOf(input), 's');
  const paths = [join(work, `${name}.provenance.sigstore.json`), join(work, `${name}.sbom.sigstore.json`)];
  writeFileSync(paths[0]!, JSON.stringify(prov.bundle));
  writeFileSync(paths[1]!, JSON.stringify(sbom.bundle));
  return paths;
}

async function verifyJson(args: string[]): Promise<{ code: number | null; v: VerdictJson; stderr: string }> {
  const r = await runCli(['verify', 'artifact', file, '--data', data, '--policy', policyPath, '--json', ...args]);
  return { code: r.code, v: JSON.parse(r.stdout) as VerdictJson, stderr: r.stderr };
}

/** ajv 8 as the schemas package has it (the repository root resolves eslint's ajv 6). */
type Validator = ((d: unknown) => boolean) & { errors?: unknown };
const { Ajv } = createRequire(join(REPO_ROOT, 'schemas', 'package.json'))('ajv') as {
  Ajv: new (o: object) => { compile(s: object): Validator };
};

const rule = (v: VerdictJson, name: string): RuleJson | undefined => v.rules.find((r) => r.rule === name);

/** A real HTTP server on loopback whose handler is the test's (the lying mirror). */
async function serve(
  handler: Parameters<typeof createServer>[1],
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as unknown };
}

beforeAll(async () => {
  w = await startWorld(4);
  work = join(w.dir, 'work');
  mkdirSync(work);
  data = join(w.dir, 'plane');
  file = join(work, 'app.tgz');
  writeFileSync(file, ARTIFACT);
  const [prov, sbom] = await signedBuild('app.tgz', w.packages);
  writeFileSync(`${file}.provenance.sigstore.json`, readFileSync(prov!));
  writeFileSync(`${file}.sbom.sigstore.json`, readFileSync(sbom!));
  strayBundles = await signedBuild('stray', [...w.packages, stray]);
  policyPath = join(work, 'release.policy.yaml');
  writeFileSync(policyPath, policyText());
  storeDir = join(work, 'store');
  const tarPath = join(work, 'transfer.tar');
  writeFileSync(tarPath, transferTar(w.snapshot, w.packages));
  store = await MirrorStore.open(storeDir);
  await importBundle(tarPath, {
    store,
    trustedRoot: w.plane.trustedRoot,
    syncIdentity: { subject: w.ids.sync, issuer: w.issuer },
  });
  mirror = await startMirrorServer({ store, host: '127.0.0.1', port: 0 });
}, 120_000);

afterAll(async () => {
  await mirror?.close();
  await store?.close();
  await w?.close();
});

describe('the mirror snapshot lookup API', () => {
  it('answers which snapshots list a blob, and each snapshot with its sync bundle, per the schema', async () => {
    const schema = JSON.parse(
      readFileSync(join(REPO_ROOT, 'schemas', 'mirror-snapshot-lookup.v1.schema.json'), 'utf8'),
    ) as object;
    const validate = new Ajv({ strict: true, allErrors: true }).compile(schema);
    const pkg = w.packages[1]!;
    const id = w.snapshot.manifest.snapshot.id;
    const hit = await getJson(`${mirror.url}/-/airlock/blobs/${pkg.entry.digests.sha256}/snapshots`);
    expect(hit.status).toBe(200);
    expect(validate(hit.body), JSON.stringify(validate.errors)).toBe(true);
    expect((hit.body as { snapshots: unknown[] }).snapshots).toEqual([{ id, sequence: 1 }]);
    const miss = await getJson(`${mirror.url}/-/airlock/blobs/${stray.entry.digests.sha256}/snapshots`);
    expect(miss.status).toBe(200);
    expect(validate(miss.body)).toBe(true);
    expect((miss.body as { snapshots: unknown[] }).snapshots).toEqual([]);
    const snap = await getJson(`${mirror.url}/-/airlock/snapshots/${id}`);
    expect(snap.status).toBe(200);
    expect(validate(snap.body), JSON.stringify(validate.errors)).toBe(true);
    const doc = snap.body as { manifest: unknown; bundle: unknown };
    // The bundle as imported, and a manifest whose canonical form is the signed manifest.json.
    expect(doc.bundle).toEqual(JSON.parse(JSON.stringify(w.snapshot.bundle)));
    expect(doc.manifest).toEqual(JSON.parse(w.snapshot.manifestBytes.toString('utf8')));
    expect((await getJson(`${mirror.url}/-/airlock/snapshots/sha256:${'0'.repeat(64)}`)).status).toBe(404);
    expect((await getJson(`${mirror.url}/-/airlock/snapshots/not-an-id`)).status).toBe(404);
  });
});

describe('airlock verify artifact --mirror URL', () => {
  it('passes with the dependencies found through a running mirror (exit 0)', async () => {
    const j = await verifyJson(['--mirror', mirror.url]);
    expect(j.code, j.stderr).toBe(0);
    expect(j.v.result).toBe('PASS');
    expect(rule(j.v, 'dependencies.snapshot')).toMatchObject({
      passed: true,
      seen: { dependencies: 4, snapshots: [w.snapshot.manifest.snapshot.id] },
    });
  });

  it('a dependency in no snapshot → exit 1, dependencies.snapshot naming it', async () => {
    const j = await verifyJson(['--mirror', mirror.url, '--bundle', strayBundles[0]!, '--bundle', strayBundles[1]!]);
    expect(j.code, j.stderr).toBe(1);
    const r = rule(j.v, 'dependencies.snapshot')!;
    expect(r.passed).toBe(false);
    expect(r.seen).toEqual({ missing: [stray.purl], wrongSigner: [] });
  });

  it('a mirror that serves a snapshot bundle signed by another identity → the rule fails (wrong signer)', async () => {
    // Same manifest (same id), re-signed by a valid identity of the same trust plane that is not the sync job.
    const rogue = await signSnapshot(w.signers.rogue, w.packages, 1, null);
    expect(rogue.manifest.snapshot.id).toBe(w.snapshot.manifest.snapshot.id);
    const liar = await serve((req, res) => {
      void (async () => {
        const upstream = await fetch(`${mirror.url}${req.url}`);
        const body = (await upstream.json()) as Record<string, unknown>;
        if (req.url!.startsWith('/-/airlock/snapshots/')) body.bundle = JSON.parse(JSON.stringify(rogue.bundle));
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      })();
    });
    try {
      const j = await verifyJson(['--mirror', liar.url]);
      expect(j.code, j.stderr).toBe(1);
      const r = rule(j.v, 'dependencies.snapshot')!;
      expect(r.passed).toBe(false);
      expect(JSON.stringify(r.seen)).toContain(w.ids.rogue);
      expect((r.seen as { missing: string[] }).missing).toEqual([]);
    } finally {
      await liar.close();
    }
  });

  it('a mirror that claims a snapshot holds a blob its signed manifest does not list → the rule fails', async () => {
    const id = w.snapshot.manifest.snapshot.id;
    const liar = await serve((req, res) => {
      void (async () => {
        const m = /^\/-\/airlock\/blobs\/([0-9a-f]{64})\/snapshots$/.exec(req.url!);
        if (m) {
          const claim = {
            mediaType: 'application/vnd.airlock.mirror.blob-snapshots.v1+json',
            sha256: m[1],
            snapshots: [{ id, sequence: 1 }],
          };
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(claim));
          return;
        }
        const upstream = await fetch(`${mirror.url}${req.url}`);
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
      })();
    });
    try {
      const j = await verifyJson(['--mirror', liar.url, '--bundle', strayBundles[0]!, '--bundle', strayBundles[1]!]);
      expect(j.code, j.stderr).toBe(1);
      expect(rule(j.v, 'dependencies.snapshot')).toMatchObject({
        passed: false,
        seen: { missing: [stray.purl], wrongSigner: [] },
      });
      // The source itself records what it could not confirm.
      const source = new MirrorLookupSnapshotSource(liar.url, { verifiers: [w.verifier] });
      try {
        expect(await source.lookup({ sha256: stray.entry.digests.sha256 })).toEqual([]);
        expect(source.discrepancies).toEqual([
          { sha256: stray.entry.digests.sha256, snapshotId: id, reason: 'its signed manifest does not list the blob' },
        ]);
        expect(await source.lookup({ sha256: w.packages[0]!.entry.digests.sha256 })).toHaveLength(1);
      } finally {
        source.close();
      }
    } finally {
      await liar.close();
    }
  });

  it('a snapshot whose sync signature does not verify, or another snapshot than the one named, counts for nothing', async () => {
    const id = w.snapshot.manifest.snapshot.id;
    const other = await signSnapshot(w.signers.sync, w.packages.slice(0, 2), 2, id);
    let mode: 'tampered' | 'swapped' = 'tampered';
    const liar = await serve((req, res) => {
      void (async () => {
        const upstream = await fetch(`${mirror.url}${req.url}`);
        const body = (await upstream.json()) as { bundle?: { dsseEnvelope: { signatures: { sig: string }[] } } };
        if (req.url!.startsWith('/-/airlock/snapshots/')) {
          if (mode === 'tampered') {
            const sig = Buffer.from(body.bundle!.dsseEnvelope.signatures[0]!.sig, 'base64');
            sig[sig.length - 5]! ^= 1;
            body.bundle!.dsseEnvelope.signatures[0]!.sig = sig.toString('base64');
          } else Object.assign(body, { manifest: other.manifest, bundle: JSON.parse(JSON.stringify(other.bundle)) });
        }
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      })();
    });
    const sha = w.packages[0]!.entry.digests.sha256;
    try {
      for (const m of ['tampered', 'swapped'] as const) {
        mode = m;
        const source = new MirrorLookupSnapshotSource(liar.url, { verifiers: [w.verifier] });
        try {
          expect(await source.lookup({ sha256: sha })).toEqual([]);
          expect(source.discrepancies).toHaveLength(1);
          expect(source.discrepancies[0]!.reason).toMatch(
            m === 'tampered' ? /^its sync signature does not verify/ : /^the mirror served snapshot sha256:/,
          );
        } finally {
          source.close();
        }
      }
    } finally {
      await liar.close();
    }
  });

  it('a mirror that is down → exit 3, POLICY_MIRROR_UNREACHABLE', async () => {
    const gone = await serve((_req, res) => res.end());
    await gone.close();
    const j = await verifyJson(['--mirror', gone.url]);
    expect(j.code).toBe(3);
    expect(j.v.error?.code).toBe('POLICY_MIRROR_UNREACHABLE');
    expect(j.v.error?.message).toContain(gone.url);
  });

  it('a --mirror that is not an http(s) URL → exit 2', async () => {
    const j = await verifyJson(['--mirror', 'file:///srv/mirror']);
    expect(j.code).toBe(2);
    expect(j.v.error?.code).toBe('POLICY_MIRROR_URL_INVALID');
  });

  it('an answer larger than the bound is cut off (POLICY_MIRROR_INVALID), not buffered', async () => {
    const big = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      for (let i = 0; i < 64; i++) res.write(chunk);
      res.end('{}');
    });
    const source = new MirrorLookupSnapshotSource(big.url, { verifiers: [w.verifier], maxLookupBytes: 1024 * 1024 });
    try {
      const err = await source.lookup({ sha256: w.packages[0]!.entry.digests.sha256 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PolicyError);
      expect((err as PolicyError).code).toBe('POLICY_MIRROR_INVALID');
      expect((err as Error).message).toContain('exceeds 1048576 bytes');
    } finally {
      source.close();
      await big.close();
    }
  });
});

describe('airlock mirror export-snapshot', () => {
  it('writes the signed manifest bytes and the sync bundle; `verify --snapshot DIR` passes with them', async () => {
    const out = join(work, 'exported');
    const r = await runCli(['mirror', 'export-snapshot', out, '--store', storeDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { ok: boolean; id: string; sequence: number; manifestSha256: string };
    expect(j).toMatchObject({ ok: true, id: w.snapshot.manifest.snapshot.id, sequence: 1 });
    expect(readFileSync(join(out, 'manifest.json'))).toEqual(w.snapshot.manifestBytes);
    expect(j.manifestSha256).toBe(sha256(w.snapshot.manifestBytes));
    const v = await verifyJson(['--snapshot', out]);
    expect(v.code, v.stderr).toBe(0);
    expect(rule(v.v, 'dependencies.snapshot')?.passed).toBe(true);
    const missing = await runCli(['mirror', 'export-snapshot', out, '--store', storeDir, '--snapshot', '7', '--json']);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toContain('no snapshot 7');
  });
});
