/**
 * Issue 11 §3, SCTs carrying extensions: signing certificates with embedded RFC 6962 SCT lists (testkit's
 * SctCertificateIssuer: precertificate with the poison extension, SCTs signed by test CT-log keys over the TBS without
 * it, then the final certificate with the SCT list), bundles made by stock @sigstore/sign 4.x against a real trust
 * plane (its v1 log and TSA), and a trusted root that adds the test CA and its CT logs (`ctlogs`, with `validFor`).
 * Every case gives stock @sigstore/verify 3.1.1 and `airlock verify` (the built CLI, `--ctlog-threshold N`) the same
 * trusted root and thresholds and states both verdicts. Also sigstore-js' public v0.1 bundle, whose Fulcio leaf
 * carries a real SCT from ctfe.sigstore.dev/2022.
 */
import { execFileSync } from 'node:child_process';
import { createHash, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageSignatureBundleBuilder, RekorWitness, TSAWitness } from '@sigstore/sign';
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import {
  SctCertificateIssuer,
  createTestCtLog,
  ctlogRootEntry,
  opensslProblem,
  toolsAvailable,
  type SctLeafOptions,
  type SctSpec,
  type TestCtLog,
} from '@airlock/testkit';
import { BundleVerifier } from '@airlock/verify';
import { runCli } from './helpers/cli.js';

type Verdict = 'accept' | 'refuse';
/** trusted_root.json as JSON (the plane's type pins `ctlogs` to empty, which these roots are not). */
type RootJson = Record<string, unknown> & { certificateAuthorities: unknown[]; ctlogs?: unknown[] };
interface World {
  bundle: SerializedBundle;
  root: RootJson;
  artifact: Buffer;
  ctlogThreshold: number;
  /** Identity flags for airlock verify (the stock run checks no identity, as the verdict is about SCTs). */
  identity?: { san: string; issuer: string };
}
interface Case {
  name: string;
  make: () => Promise<World>;
  stock: Verdict;
  airlock: Verdict;
}

const ARTIFACT = Buffer.from('artifact signed under a CT-logged certificate\n');
const HOUR = 3600_000;
const SAN = 'spiffe://airlock.test/ci/sct';
const OIDC = 'https://issuer.airlock.test';

let dir: string;
let plane: RunningTrustPlane;
let issuer: SctCertificateIssuer;
let logA: TestCtLog; // in the trusted root, valid from an hour ago
let logB: TestCtLog; // in the trusted root too
let logC: TestCtLog; // not in the trusted root
let root: RootJson;
let caseNo = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sct-'));
  plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
  issuer = await SctCertificateIssuer.create();
  [logA, logB, logC] = [createTestCtLog(), createTestCtLog(), createTestCtLog()];
  const now = Date.now();
  root = structuredClone(plane.trustedRoot) as unknown as RootJson;
  root.certificateAuthorities = [...root.certificateAuthorities, issuer.rootEntry(new Date(now - 2 * HOUR))];
  root.ctlogs = [
    ctlogRootEntry(logA, { start: new Date(now - HOUR), end: new Date(now + HOUR) }),
    ctlogRootEntry(logB, { start: new Date(now - HOUR) }),
  ];
}, 120_000);

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An SCT from `log` a minute ago (inside every test log's validFor). */
const sct = (log: TestCtLog, extra: Partial<SctSpec> = {}): SctSpec => ({
  log,
  timestamp: new Date(Date.now() - 60_000),
  ...extra,
});

/** A leaf with these SCTs, then a bundle by stock sigstore-js: message signature, v1 log entry, TSA timestamp. */
async function signedWith(scts: SctSpec[], extra: Partial<SctLeafOptions> = {}): Promise<SerializedBundle> {
  const now = Date.now();
  const leaf = await issuer.issue({
    san: SAN,
    oidcIssuer: OIDC,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + 10 * 60_000),
    scts,
    ...extra,
  });
  const signer = {
    sign: async (data: Buffer) => ({
      signature: sign('sha256', data, leaf.privateKey),
      key: { $case: 'x509Certificate' as const, certificate: leaf.pem },
    }),
  };
  const witnesses = [
    // Retries: on a loaded machine a reused keep-alive connection can be reset; the transport is not under test.
    new RekorWitness({ rekorBaseURL: plane.endpoints.tlogUrl, fetchOnConflict: true, retry: 2 }),
    new TSAWitness({ tsaBaseURL: plane.endpoints.tsaUrl!, retry: 2 }),
  ];
  const bundle = await new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data: ARTIFACT });
  return bundleToJSON(bundle);
}

const world = async (scts: SctSpec[], ctlogThreshold: number, extra: Partial<SctLeafOptions> = {}) => ({
  bundle: await signedWith(scts, extra),
  root,
  artifact: ARTIFACT,
  ctlogThreshold,
  identity: { san: SAN, issuer: OIDC },
});

function stockVerdict(w: World): { verdict: Verdict; why: string } {
  try {
    const trust = toTrustMaterial(TrustedRoot.fromJSON(w.root));
    new Verifier(trust, { ctlogThreshold: w.ctlogThreshold, tlogThreshold: 1, timestampThreshold: 1 }).verify(
      toSignedEntity(bundleFromJSON(w.bundle), w.artifact),
    );
    return { verdict: 'accept', why: '' };
  } catch (err) {
    return { verdict: 'refuse', why: (err as Error).message };
  }
}

async function airlockVerdict(w: World): Promise<{ verdict: Verdict; out: string }> {
  const n = ++caseNo;
  const [b, r, a] = ['bundle', 'root', 'artifact'].map((k) => join(dir, `${k}${n}`)) as [string, string, string];
  writeFileSync(b, JSON.stringify(w.bundle));
  writeFileSync(r, JSON.stringify(w.root));
  writeFileSync(a, w.artifact);
  const who = w.identity
    ? ['--certificate-identity', w.identity.san, '--certificate-oidc-issuer', w.identity.issuer]
    : ['--certificate-identity-regexp', '.*', '--certificate-oidc-issuer-regexp', '.*'];
  const res = await runCli([
    'verify',
    a,
    '--bundle',
    b,
    '--trusted-root',
    r,
    ...who,
    '--ctlog-threshold',
    String(w.ctlogThreshold),
    '--json',
  ]);
  if (res.code !== 0 && res.code !== 1)
    throw new Error(`airlock verify exited ${res.code}: ${res.stdout}${res.stderr}`);
  return { verdict: res.code === 0 ? 'accept' : 'refuse', out: res.stdout };
}

function runTable(cases: Case[]): void {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const w = await c.make();
    const s = stockVerdict(w);
    expect(s.verdict, `stock @sigstore/verify 3.1.1: ${s.why}`).toBe(c.stock);
    const a = await airlockVerdict(w);
    expect(a.verdict, `airlock verify: ${a.out}`).toBe(c.airlock);
    // Every refusal in these tables is about the SCTs (the accepted twins show the rest of the bundle verifies).
    if (s.verdict === 'refuse') expect(s.why).toMatch(SCT_REASON);
    if (a.verdict === 'refuse') {
      const error = JSON.parse(a.out).error as { code: string; message: string };
      expect(error.code).toMatch(/^VERIFY_(CERTIFICATE|BUNDLE_MALFORMED)$/);
      expect(error.message).toMatch(SCT_REASON);
    }
  });
}

/** SCT verification failed / expected N SCTs / duplicate SCT / a malformed list (read past its end). */
const SCT_REASON = /SCT|past end of buffer/;
const EXT = Buffer.from('0001020304 future SCT extension bytes');
const truncate = (list: Buffer): Buffer => list.subarray(0, list.length - 7);
const lengthLies = (list: Buffer): Buffer => {
  const out = Buffer.from(list);
  out.writeUInt16BE(out.readUInt16BE(0) + 5, 0); // the list claims more bytes than it has
  return out;
};

const opensslAvailable = toolsAvailable('SCT list decoded by openssl x509 -text', [opensslProblem()]);

describe('the test issuer writes the real RFC 6962 format', () => {
  it.skipIf(!opensslAvailable)('openssl x509 -text decodes its SCT list: log ids, timestamps, extensions', async () => {
    const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    const leaf = await issuer.issue({
      san: SAN,
      oidcIssuer: OIDC,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 60_000),
      scts: [sct(logA, { extensions: Buffer.from('abc') }), sct(logB, { timestamp: at })],
    });
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: leaf.pem }).toString();
    const colons = (b: Buffer): string =>
      b
        .toString('hex')
        .toUpperCase()
        .replace(/(..)(?!$)/g, '$1:');
    const flat = text.replace(/\s+/g, ' ');
    expect(flat).toContain('CT Precertificate SCTs');
    expect(flat).toContain(`Log ID : ${colons(logA.logId).slice(0, 47)}`);
    expect(flat).toContain('Extensions: 61:62:63');
    expect(flat).toContain(`Log ID : ${colons(logB.logId).slice(0, 47)}`);
    expect(flat).toContain('Timestamp : Jan 2 03:04:05.678 2026 GMT');
    expect(flat).toContain('Extensions: none');
    expect(flat).not.toContain('1.3.6.1.4.1.11129.2.4.3'); // no poison in the final certificate
  });

  it.skipIf(!opensslAvailable)(
    'its PEM is readable by openssl at every DER length (no empty line at 64-char ends)',
    async () => {
      // 48 SAN lengths walk the DER length through every residue mod 48 (base64 a multiple of 64 chars).
      const unreadable: number[] = [];
      for (let n = 0; n < 48; n++) {
        const leaf = await issuer.issue({
          san: `${SAN}/${'a'.repeat(n)}`,
          oidcIssuer: OIDC,
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 60_000),
          scts: [sct(logA)],
        });
        try {
          execFileSync('openssl', ['x509', '-noout'], { input: leaf.pem, stdio: ['pipe', 'pipe', 'pipe'] });
        } catch {
          unreadable.push(n);
        }
      }
      expect(unreadable).toEqual([]);
    },
  );
});

describe('SCTs with and without extensions (RFC 6962 §3.2: the signature covers the extensions)', () => {
  runTable([
    {
      name: 'one SCT, empty extensions, threshold 1',
      make: () => world([sct(logA)], 1),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'one SCT with non-empty extensions (signed), threshold 1',
      make: () => world([sct(logA, { extensions: EXT })], 1),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'SCT extensions flipped after signing, threshold 1',
      make: () => world([sct(logA, { extensions: EXT, flipExtensionsAfterSigning: true })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT extensions flipped after signing, threshold 0 (an SCT present must still verify)',
      make: () => world([sct(logA, { extensions: EXT, flipExtensionsAfterSigning: true })], 0),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT with extensions, two SCTs from two trusted logs, threshold 2',
      make: () => world([sct(logA, { extensions: EXT }), sct(logB)], 2),
      stock: 'accept',
      airlock: 'accept',
    },
  ]);
});

describe('SCT logs, log ids and validity windows', () => {
  runTable([
    {
      name: 'SCT from a log not in the trusted root, threshold 0',
      make: () => world([sct(logC)], 0),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT timestamp before the log key validFor.start (2 h ago)',
      make: () => world([sct(logA, { timestamp: new Date(Date.now() - 2 * HOUR) })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT timestamp after the log key validFor.end (2 h ahead)',
      make: () => world([sct(logA, { timestamp: new Date(Date.now() + 2 * HOUR) })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT timestamp before validFor.start of log B (open end), threshold 0',
      make: () => world([sct(logB, { timestamp: new Date(Date.now() - 2 * HOUR) })], 0),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: "wrong log id: signed by log A, naming trusted log B's id",
      make: () => world([sct(logA, { logIdOverride: logB.logId })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'wrong log id: signed by log A, naming an unknown id',
      make: () => world([sct(logA, { logIdOverride: createHash('sha256').update('no such log').digest() })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT signed by untrusted log C under trusted log A id',
      make: () => world([sct(logC, { logIdOverride: logA.logId })], 0),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('SCT counts against the ctlog threshold', () => {
  runTable([
    {
      name: 'two SCTs, one bad (extensions flipped), threshold 1',
      make: () => world([sct(logA), sct(logB, { extensions: EXT, flipExtensionsAfterSigning: true })], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'two SCTs, one from an untrusted log, threshold 1',
      make: () => world([sct(logA), sct(logC)], 1),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'no SCT extension, threshold 1',
      make: () => world([], 1, { withoutSctExtension: true }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'no SCT extension, threshold 0',
      make: () => world([], 0, { withoutSctExtension: true }),
      stock: 'accept',
      airlock: 'accept',
    },
    { name: 'empty SCT list, threshold 1', make: () => world([], 1), stock: 'refuse', airlock: 'refuse' },
    { name: 'empty SCT list, threshold 0', make: () => world([], 0), stock: 'accept', airlock: 'accept' },
    { name: 'one good SCT, threshold 2', make: () => world([sct(logA)], 2), stock: 'refuse', airlock: 'refuse' },
    {
      name: 'the same log twice (duplicate SCT), threshold 2',
      make: () => world([sct(logA), sct(logA, { extensions: EXT })], 2),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('malformed SCT lists', () => {
  runTable([
    {
      name: 'truncated SCT list (last 7 bytes cut), threshold 0',
      make: () => world([sct(logA)], 0, { tamperList: truncate }),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'SCT list length longer than its bytes, threshold 0',
      make: () => world([sct(logA)], 0, { tamperList: lengthLies }),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe("sigstore-js' public v0.1 bundle (Fulcio leaf with a real SCT from ctfe.sigstore.dev/2022)", () => {
  const fixtures = join(import.meta.dirname, '..', 'fixtures', 'sigstore-js', 'media-types');
  const publicRoot = (): RootJson => JSON.parse(readFileSync(join(fixtures, 'trusted_root.json'), 'utf8'));
  const publicWorld = (r: RootJson, ctlogThreshold: number): Promise<World> =>
    Promise.resolve({
      bundle: JSON.parse(readFileSync(join(fixtures, 'v01-hashedrekord.sigstore.json'), 'utf8')),
      root: r,
      artifact: readFileSync(join(fixtures, 'artifact.txt')),
      ctlogThreshold,
    });
  runTable([
    { name: 'as published, threshold 1', make: () => publicWorld(publicRoot(), 1), stock: 'accept', airlock: 'accept' },
    {
      name: 'CT log removed from the trusted root, threshold 0 (its SCT cannot verify)',
      make: () => publicWorld({ ...publicRoot(), ctlogs: [] } as RootJson, 0),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'CT log validFor starting after the SCT, threshold 1',
      make: () => {
        const r = publicRoot();
        (r.ctlogs![0] as { publicKey: { validFor: { start: string } } }).publicKey.validFor.start =
          '2023-01-01T00:00:00.000Z';
        return publicWorld(r, 1);
      },
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe('airlock verify --ctlog-threshold is operator input', () => {
  it('is a constructor option of the verifier only; a negative or fractional one is refused', () => {
    for (const bad of [-1, 1.5, Number.NaN])
      expect(() => new BundleVerifier(root, { ctlogThreshold: bad })).toThrow(/ctlog threshold must be/);
  });

  it('refuses a negative or non-numeric threshold as a usage error (exit 2)', async () => {
    for (const bad of ['one', '1.5', '=1']) {
      const r = await runCli([
        'verify',
        'x',
        '--bundle',
        'b',
        '--trusted-root',
        'r',
        '--certificate-identity',
        SAN,
        '--certificate-oidc-issuer',
        OIDC,
        '--ctlog-threshold',
        bad,
        '--json',
      ]);
      expect(r.code, r.stdout).toBe(2);
      expect(JSON.parse(r.stdout).error.message).toContain(
        `--ctlog-threshold must be a non-negative integer, not '${bad}'`,
      );
    }
  });
});
