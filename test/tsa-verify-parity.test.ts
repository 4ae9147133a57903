/**
 * Issue 11 §1/§3: RFC 3161 timestamps end to end. Bundles are made by stock @sigstore/sign 4.x (FulcioSigner,
 * RekorWitness, TSAWitness) against a real trust plane with its embedded TSA, then mutated (timestamp re-issued
 * at another time or by another TSA, with or without embedded certificates, SET dropped, trusted-root TSA window
 * moved). Every case states the verdict of stock @sigstore/verify 3.1.1 and of `airlock verify` (the built CLI):
 * airlock accepts what stock accepts and refuses what it refuses. One table per category.
 */
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DSSEBundleBuilder, FulcioSigner, RekorWitness, TSAWitness } from '@sigstore/sign';
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { SigningConfig, TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { makeStatement } from '@airlock/core';
import { startTrustPlane, type RunningTrustPlane, type TrustedRootJson } from '@airlock/plane';
import { TimestampAuthority, createTsaMaterial, loadOrCreateTsaMaterial, type TsaMaterial } from '@airlock/tsa';
import { runCli } from './helpers/cli.js';

type Verdict = 'accept' | 'refuse';
interface World {
  bundle: SerializedBundle;
  root: TrustedRootJson;
  threshold?: number;
}
interface Case {
  name: string;
  make: () => Promise<World> | World;
  stock: Verdict;
  airlock: Verdict;
}

const ARTIFACT = Buffer.from('artifact timestamped by the plane TSA\n');
const SHA256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const SEC = 1000;

let dir: string;
let plane: RunningTrustPlane;
let san: string;
let issuer: string;
let planeTsa: TimestampAuthority;
let base: SerializedBundle; // DSSE v0.3, SET + inclusion proof + one RFC 3161 timestamp from the plane TSA
let untimestamped: SerializedBundle; // the same flow without the TSA witness
let leafValidity: { from: number; to: number };
let caseNo = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-tsa-parity-'));
  plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
  san = `spiffe://${plane.endpoints.trustDomain}/ci/tsa-parity`;
  issuer = plane.endpoints.identityIssuerUrl;
  planeTsa = new TimestampAuthority(await loadOrCreateTsaMaterial(join(dir, 'plane')));
  writeFileSync(join(dir, 'artifact'), ARTIFACT);
  base = await stockSign(true);
  untimestamped = await stockSign(false);
  const leaf = new NodeX509(Buffer.from(base.verificationMaterial.certificate!.rawBytes, 'base64'));
  leafValidity = { from: Date.parse(leaf.validFrom), to: Date.parse(leaf.validTo) };
}, 120_000);

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Stock sigstore-js signing against the plane (the witnesses the signing config names: log v1 and TSA). */
async function stockSign(withTsa: boolean): Promise<SerializedBundle> {
  const signer = new FulcioSigner({
    fulcioBaseURL: plane.endpoints.caUrl,
    identityProvider: { getToken: () => plane.issueToken(san) },
  });
  const witnesses = [
    new RekorWitness({ rekorBaseURL: plane.endpoints.tlogUrl, entryType: 'dsse', fetchOnConflict: true }),
    ...(withTsa ? [new TSAWitness({ tsaBaseURL: plane.endpoints.tsaUrl! })] : []),
  ];
  const statement = makeStatement(
    [{ name: 'artifact', digest: { sha256: SHA256(ARTIFACT).toString('hex') } }],
    'https://example.com/p',
    {},
  );
  const bundle = await new DSSEBundleBuilder({ signer, witnesses }).create({
    data: Buffer.from(JSON.stringify(statement)),
    type: 'application/vnd.in-toto+json',
  });
  return bundleToJSON(bundle);
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The signature bytes the timestamp must cover (sigstore-js: sha256 of the DSSE signature). */
function signatureOf(b: SerializedBundle): Buffer {
  return Buffer.from(b.dsseEnvelope!.signatures[0]!.sig, 'base64');
}

/** A fresh RFC 3161 token over the bundle's signature from `tsa` at `at`, replacing the bundle's timestamps. */
function restamp(b: SerializedBundle, tsa: TimestampAuthority, at: Date, certReq = false): SerializedBundle {
  const out = clone(b);
  const token = tsa.respond(
    { hashAlgorithmOid: '2.16.840.1.101.3.4.2.1', hashedMessage: SHA256(signatureOf(b)), certReq },
    at,
  );
  out.verificationMaterial.timestampVerificationData = {
    rfc3161Timestamps: [{ signedTimestamp: token.toString('base64') }],
  };
  return out;
}

function dropSet(b: SerializedBundle): SerializedBundle {
  const out = clone(b);
  delete (out.verificationMaterial.tlogEntries[0] as { inclusionPromise?: unknown }).inclusionPromise;
  return out;
}

/** A time inside the signing certificate's validity, in whole seconds (GeneralizedTime has no fraction here). */
function midCert(): Date {
  return new Date(Math.floor((leafValidity.from + leafValidity.to) / 2 / SEC) * SEC);
}

/** The plane's trusted root with its TSA entries replaced. */
function rootWithTsas(...tsas: Array<{ chain: Buffer[]; start: Date; end?: Date }>): TrustedRootJson {
  const root = clone(plane.trustedRoot);
  root.timestampAuthorities = tsas.map((t) => ({
    subject: { organization: 'airlock', commonName: 'test tsa' },
    uri: 'http://127.0.0.1:9',
    certChain: { certificates: t.chain.map((der) => ({ rawBytes: der.toString('base64') })) },
    validFor: { start: t.start.toISOString(), ...(t.end ? { end: t.end.toISOString() } : {}) },
  }));
  return root;
}

const chainOf = (m: TsaMaterial): Buffer[] => m.chain.map((c) => Buffer.from(c.rawData));

function stockVerdict(w: World): Verdict {
  try {
    const trust = toTrustMaterial(TrustedRoot.fromJSON(w.root));
    new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: w.threshold ?? 1 }).verify(
      toSignedEntity(bundleFromJSON(w.bundle), ARTIFACT),
      { subjectAlternativeName: `^${san.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, extensions: { issuer } },
    );
    return 'accept';
  } catch {
    return 'refuse';
  }
}

async function airlockVerdict(w: World): Promise<{ verdict: Verdict; out: string }> {
  const n = ++caseNo;
  writeFileSync(join(dir, `b${n}.json`), JSON.stringify(w.bundle));
  writeFileSync(join(dir, `r${n}.json`), JSON.stringify(w.root));
  const r = await runCli([
    'verify',
    join(dir, 'artifact'),
    '--bundle',
    join(dir, `b${n}.json`),
    '--trusted-root',
    join(dir, `r${n}.json`),
    '--certificate-identity',
    san,
    '--certificate-oidc-issuer',
    issuer,
    ...(w.threshold !== undefined ? ['--timestamp-threshold', String(w.threshold)] : []),
    '--json',
  ]);
  if (r.code !== 0 && r.code !== 1) throw new Error(`airlock verify exited ${r.code}: ${r.stdout}${r.stderr}`);
  return { verdict: r.code === 0 ? 'accept' : 'refuse', out: r.stdout };
}

function runTable(cases: Case[]): void {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const w = await c.make();
    expect(stockVerdict(w), 'stock @sigstore/verify 3.1.1').toBe(c.stock);
    const a = await airlockVerdict(w);
    expect(a.verdict, `airlock verify: ${a.out}`).toBe(c.airlock);
    if (a.verdict === 'refuse') expect(JSON.parse(a.out).error.code).toMatch(/^VERIFY_/);
  });
}

describe('RFC 3161 timestamps with and without embedded certificates', () => {
  runTable([
    {
      name: 'stock-signed: TSA token (no certificates) + SET',
      make: () => ({ bundle: base, root: plane.trustedRoot }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'token re-issued with the TSA certificate embedded (certReq)',
      make: () => ({ bundle: restamp(base, planeTsa, midCert(), true), root: plane.trustedRoot }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'TSA token only (SET dropped, inclusion proof kept)',
      make: () => ({ bundle: dropSet(base), root: plane.trustedRoot }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'neither TSA token nor SET',
      make: () => ({ bundle: dropSet(untimestamped), root: plane.trustedRoot }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'token signature altered (last byte flipped)',
      make: () => {
        const b = clone(base);
        const t = Buffer.from(
          b.verificationMaterial.timestampVerificationData!.rfc3161Timestamps[0]!.signedTimestamp,
          'base64',
        );
        t[t.length - 1] ^= 0x01;
        b.verificationMaterial.timestampVerificationData!.rfc3161Timestamps[0]!.signedTimestamp = t.toString('base64');
        return { bundle: b, root: plane.trustedRoot };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'token over another signature (imprint of the untimestamped bundle)',
      make: () => {
        const b = clone(base);
        b.verificationMaterial.timestampVerificationData = clone(
          restamp(untimestamped, planeTsa, midCert()).verificationMaterial.timestampVerificationData,
        );
        return { bundle: b, root: plane.trustedRoot };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('timestamp thresholds (TSA tokens + v1 integrated time)', () => {
  runTable([
    {
      name: 'TSA + SET, threshold 2',
      make: () => ({ bundle: base, root: plane.trustedRoot, threshold: 2 }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'SET only (--no-timestamp bundle), threshold 1',
      make: () => ({ bundle: untimestamped, root: plane.trustedRoot }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'SET only, threshold 2',
      make: () => ({ bundle: untimestamped, root: plane.trustedRoot, threshold: 2 }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'TSA only, threshold 2',
      make: () => ({ bundle: dropSet(base), root: plane.trustedRoot, threshold: 2 }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'the same token twice, threshold 3 (duplicates do not count)',
      make: () => {
        const b = clone(base);
        const tv = b.verificationMaterial.timestampVerificationData!;
        tv.rfc3161Timestamps = [tv.rfc3161Timestamps[0]!, tv.rfc3161Timestamps[0]!];
        return { bundle: b, root: plane.trustedRoot, threshold: 3 };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('expired or untrusted TSA chains', () => {
  const now = Date.now();
  runTable([
    {
      name: 'token from a TSA the trusted root does not list',
      make: async () => ({
        bundle: restamp(base, new TimestampAuthority(await createTsaMaterial()), midCert()),
        root: plane.trustedRoot,
      }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'untrusted TSA that embeds its own certificate',
      make: async () => ({
        bundle: restamp(base, new TimestampAuthority(await createTsaMaterial()), midCert(), true),
        root: plane.trustedRoot,
      }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'second TSA listed in the trusted root (control)',
      make: async () => {
        const m = await createTsaMaterial();
        return {
          bundle: restamp(base, new TimestampAuthority(m), midCert()),
          root: rootWithTsas({ chain: chainOf(m), start: new Date(now - 3600 * SEC) }),
        };
      },
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'listed TSA whose certificate expired before the signing time',
      make: async () => {
        const m = await createTsaMaterial({
          notBefore: new Date(now - 7200 * SEC),
          notAfter: new Date(now - 3600 * SEC),
        });
        return {
          bundle: restamp(base, new TimestampAuthority(m), midCert()),
          root: rootWithTsas({ chain: chainOf(m), start: new Date(now - 7200 * SEC) }),
        };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'listed TSA whose certificate is not yet valid at the signing time',
      make: async () => {
        const m = await createTsaMaterial({ notBefore: new Date(now + 3600 * SEC) });
        return {
          bundle: restamp(base, new TimestampAuthority(m), midCert()),
          root: rootWithTsas({ chain: chainOf(m), start: new Date(now - 3600 * SEC) }),
        };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'plane TSA listed with another TSA root as anchor (chain does not verify)',
      make: async () => {
        const other = await createTsaMaterial();
        return {
          bundle: base,
          root: rootWithTsas({ chain: [planeTsa.chainDer[0]!, chainOf(other)[1]!], start: new Date(now - 3600 * SEC) }),
        };
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('timestamps outside the signing certificate validity', () => {
  runTable([
    {
      name: 'token inside the certificate validity',
      make: () => ({ bundle: restamp(base, planeTsa, midCert()), root: plane.trustedRoot }),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'token 60 s after the certificate expired',
      make: () => ({ bundle: restamp(base, planeTsa, new Date(leafValidity.to + 60 * SEC)), root: plane.trustedRoot }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'token 60 s before the certificate was valid',
      make: () => ({
        bundle: restamp(base, planeTsa, new Date(leafValidity.from - 60 * SEC)),
        root: plane.trustedRoot,
      }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'late token with the SET dropped (no in-validity time left)',
      make: () => ({
        bundle: dropSet(restamp(base, planeTsa, new Date(leafValidity.to + 60 * SEC))),
        root: plane.trustedRoot,
      }),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('TSA validity windows (validFor) with inclusive ends', () => {
  const world = (start: (t: number) => number, end?: (t: number) => number): World => {
    const t = midCert().getTime();
    return {
      bundle: restamp(base, planeTsa, new Date(t)),
      root: rootWithTsas({
        chain: planeTsa.chainDer,
        start: new Date(start(t)),
        ...(end ? { end: new Date(end(t)) } : {}),
      }),
    };
  };
  runTable([
    { name: 'start == genTime (inclusive start)', make: () => world((t) => t), stock: 'accept', airlock: 'accept' },
    { name: 'start == genTime + 1 ms', make: () => world((t) => t + 1), stock: 'refuse', airlock: 'refuse' },
    {
      name: 'end == genTime (inclusive end)',
      make: () =>
        world(
          (t) => t - 3600 * SEC,
          (t) => t,
        ),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'end == genTime - 1 ms',
      make: () =>
        world(
          (t) => t - 3600 * SEC,
          (t) => t - 1,
        ),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('plane signing config and default timestamping', () => {
  it('signing_config.json (v0.2) parses as a stock SigningConfig and its TSA URL works with stock TSAWitness', async () => {
    const json = JSON.parse(readFileSync(plane.endpoints.signingConfig!, 'utf8')) as Record<string, unknown>;
    const cfg = SigningConfig.fromJSON(json);
    expect(cfg.mediaType).toBe('application/vnd.dev.sigstore.signingconfig.v0.2+json');
    expect(cfg.caUrls.map((s) => s.url)).toEqual([plane.endpoints.caUrl]);
    expect(cfg.rekorTlogUrls.map((s) => [s.url, s.majorApiVersion])).toEqual([
      [plane.endpoints.tlogUrl, 1],
      [plane.endpoints.tlogUrl, 2],
    ]);
    expect(cfg.tsaUrls.map((s) => s.url)).toEqual([`${plane.endpoints.tsaUrl}/api/v1/timestamp`]);
    expect(cfg.oidcUrls.map((s) => s.url)).toEqual([issuer]);
    const stamped = await new TSAWitness({ tsaBaseURL: cfg.tsaUrls[0]!.url }).testify({
      $case: 'dsseEnvelope',
      dsseEnvelope: {
        payload: Buffer.from(base.dsseEnvelope!.payload, 'base64'),
        payloadType: base.dsseEnvelope!.payloadType,
        signatures: [{ sig: signatureOf(base), keyid: '' }],
      },
    });
    const b = clone(base);
    b.verificationMaterial.timestampVerificationData = {
      rfc3161Timestamps: [
        { signedTimestamp: Buffer.from(stamped.rfc3161Timestamps[0]!.signedTimestamp).toString('base64') },
      ],
    };
    expect(stockVerdict({ bundle: b, root: plane.trustedRoot })).toBe('accept');
  });

  it('lists the TSA in trusted_root.json timestampAuthorities with validFor and the leaf-first chain', () => {
    const tsas = plane.trustedRoot.timestampAuthorities;
    expect(tsas).toHaveLength(1);
    expect(tsas[0]!.uri).toBe(plane.endpoints.tsaUrl);
    expect(Date.parse(tsas[0]!.validFor.start)).not.toBeNaN();
    expect(tsas[0]!.certChain.certificates.map((c) => c.rawBytes)).toEqual(
      planeTsa.chainDer.map((d) => d.toString('base64')),
    );
  });

  it('`airlock sign --data` timestamps by default, `--no-timestamp` does not; `airlock verify` reports the TSA time', async () => {
    const data = join(dir, 'plane');
    const signed = await runCli([
      'sign',
      join(dir, 'artifact'),
      '--data',
      data,
      '--bundle',
      join(dir, 'cli.sig.json'),
      '--json',
    ]);
    expect(signed.code, signed.stdout + signed.stderr).toBe(0);
    const bundle = JSON.parse(readFileSync(join(dir, 'cli.sig.json'), 'utf8')) as SerializedBundle;
    expect(bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps).toHaveLength(1);
    const plain = await runCli([
      'sign',
      join(dir, 'artifact'),
      '--data',
      data,
      '--no-timestamp',
      '--bundle',
      join(dir, 'cli.plain.json'),
      '--json',
    ]);
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    const plainBundle = JSON.parse(readFileSync(join(dir, 'cli.plain.json'), 'utf8')) as SerializedBundle;
    expect(plainBundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps ?? []).toHaveLength(0);

    const cliSubject = `spiffe://${plane.endpoints.trustDomain}/airlock/cli`;
    const verify = (b: string, threshold: string) =>
      runCli([
        'verify',
        join(dir, 'artifact'),
        '--bundle',
        b,
        '--data',
        data,
        '--certificate-identity',
        cliSubject,
        '--certificate-oidc-issuer',
        issuer,
        '--timestamp-threshold',
        threshold,
        '--json',
      ]);
    const v = await verify(join(dir, 'cli.sig.json'), '2');
    expect(v.code, v.stdout).toBe(0);
    const sources = (JSON.parse(v.stdout) as { timestamps: Array<{ source: string }> }).timestamps.map((t) => t.source);
    expect(sources.sort()).toEqual(['timestamp-authority', 'transparency-log']);
    const refused = await verify(join(dir, 'cli.plain.json'), '2');
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).error.code).toBe('VERIFY_TIMESTAMP');
    const usage = await verify(join(dir, 'cli.plain.json'), 'many');
    expect(usage.code).toBe(2);
  });
});
