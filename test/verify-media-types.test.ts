/**
 * Issue 11 §3, bundle media types: `application/vnd.dev.sigstore.bundle+json;version=0.1` (inclusion promise enough,
 * x509CertificateChain), `;version=0.2` (inclusion proof required), `;version=0.3` (old spelling) and
 * `application/vnd.dev.sigstore.bundle.v0.3+json` (inclusion proof required, `certificate` instead of a chain),
 * unknown media types, and one version's media type on another version's shape. Bundles made by stock
 * @sigstore/sign 4.x against a real trust plane (v1 log: SET + inclusion proof; TSA) and rewritten to each media
 * type and shape, and sigstore-js' public v0.1/v0.2/v0.3 bundles (fixtures/sigstore-js/media-types/README.md).
 * Every case states the verdict of stock @sigstore/verify 3.1.1 and of airlock's BundleVerifier (what
 * `airlock verify`, the policy verifier and admission run) with the same trusted root and thresholds.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DSSEBundleBuilder,
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  TSAWitness,
  type Witness,
} from '@sigstore/sign';
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { makeStatement } from '@airlock/core';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { BundleVerifier } from '@airlock/verify';

type Verdict = 'accept' | 'refuse';
interface World {
  bundle: SerializedBundle;
  root: unknown;
  artifact: Buffer;
  ctlogThreshold: number;
}
interface Case {
  name: string;
  make: () => World;
  stock: Verdict;
  airlock: Verdict;
}

const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
const V02 = 'application/vnd.dev.sigstore.bundle+json;version=0.2';
const V03_OLD = 'application/vnd.dev.sigstore.bundle+json;version=0.3';
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const ARTIFACT = Buffer.from('artifact for the media-type table\n');

let dir: string;
let plane: RunningTrustPlane;
let signedV02: SerializedBundle; // stock's message-signature bundle: v0.2, x509CertificateChain, SET + proof, TSA
let message: SerializedBundle; // the same as v0.3: certificate instead of the chain
let dsse: SerializedBundle; // stock's DSSE bundle: v0.3, certificate, SET + proof, TSA

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-media-types-'));
  plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
  const san = `spiffe://${plane.endpoints.trustDomain}/ci/media-types`;
  const signer = new FulcioSigner({
    fulcioBaseURL: plane.endpoints.caUrl,
    identityProvider: { getToken: () => plane.issueToken(san) },
  });
  const witnesses = (entryType?: 'dsse'): Witness[] => [
    new RekorWitness({
      rekorBaseURL: plane.endpoints.tlogUrl,
      fetchOnConflict: true,
      ...(entryType ? { entryType } : {}),
    }),
    new TSAWitness({ tsaBaseURL: plane.endpoints.tsaUrl! }),
  ];
  signedV02 = bundleToJSON(
    await new MessageSignatureBundleBuilder({ signer, witnesses: witnesses() }).create({ data: ARTIFACT }),
  );
  message = as(signedV02, V03, toCertificate);
  const statement = makeStatement(
    [{ name: 'artifact', digest: { sha256: createHash('sha256').update(ARTIFACT).digest('hex') } }],
    'https://example.com/p',
    {},
  );
  dsse = bundleToJSON(
    await new DSSEBundleBuilder({ signer, witnesses: witnesses('dsse') }).create({
      data: Buffer.from(JSON.stringify(statement)),
      type: 'application/vnd.in-toto+json',
    }),
  );
}, 120_000);

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function stockVerdict(w: World): { verdict: Verdict; why: string } {
  try {
    const trust = toTrustMaterial(TrustedRoot.fromJSON(w.root));
    const entity = toSignedEntity(bundleFromJSON(w.bundle), w.bundle.dsseEnvelope ? undefined : w.artifact);
    new Verifier(trust, { ctlogThreshold: w.ctlogThreshold, tlogThreshold: 1, timestampThreshold: 1 }).verify(entity);
    return { verdict: 'accept', why: '' };
  } catch (err) {
    return { verdict: 'refuse', why: (err as Error).message };
  }
}

function airlockVerdict(w: World): { verdict: Verdict; why: string } {
  try {
    new BundleVerifier(w.root, { ctlogThreshold: w.ctlogThreshold }).verify(w.bundle, {
      allowAnyIdentity: true,
      ...(w.bundle.dsseEnvelope
        ? { expectedPayloadType: w.bundle.dsseEnvelope.payloadType }
        : { artifact: w.artifact }),
    });
    return { verdict: 'accept', why: '' };
  } catch (err) {
    return { verdict: 'refuse', why: `${(err as { code?: string }).code}: ${(err as Error).message}` };
  }
}

function runTable(cases: Case[]): void {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const w = c.make();
    const s = stockVerdict(w);
    expect(s.verdict, `stock @sigstore/verify 3.1.1: ${s.why}`).toBe(c.stock);
    const a = airlockVerdict(w);
    expect(a.verdict, `airlock: ${a.why}`).toBe(c.airlock);
    if (a.verdict === 'refuse') expect(a.why).toMatch(/^VERIFY_/);
  });
}

/** Shape rewrites of a plane bundle (each returns a copy). */
const as = (b: SerializedBundle, mediaType: string | undefined, ...edits: Array<(c: SerializedBundle) => void>) => {
  const c = structuredClone(b);
  if (mediaType === undefined) delete (c as { mediaType?: string }).mediaType;
  else c.mediaType = mediaType;
  for (const e of edits) e(c);
  return c;
};
/** `certificate` → `x509CertificateChain` (leaf, then the plane CA chain when `withCa`). */
const toChain =
  (withCa = false) =>
  (c: SerializedBundle): void => {
    const vm = c.verificationMaterial as Record<string, unknown> & { certificate?: { rawBytes: string } };
    const leaf = vm.certificate!;
    delete vm.certificate;
    const ca = withCa
      ? plane.trustedRoot.certificateAuthorities[0]!.certChain.certificates.map((x) => ({ rawBytes: x.rawBytes }))
      : [];
    vm.x509CertificateChain = { certificates: [leaf, ...ca] };
  };
/** `x509CertificateChain` → `certificate` (its leaf). */
const toCertificate = (c: SerializedBundle): void => {
  const vm = c.verificationMaterial as Record<string, unknown> & {
    x509CertificateChain?: { certificates: Array<{ rawBytes: string }> };
  };
  vm.certificate = vm.x509CertificateChain!.certificates[0];
  delete vm.x509CertificateChain;
};
const noProof = (c: SerializedBundle): void => {
  delete (c.verificationMaterial.tlogEntries[0] as { inclusionProof?: unknown }).inclusionProof;
};
const noPromise = (c: SerializedBundle): void => {
  delete (c.verificationMaterial.tlogEntries[0] as { inclusionPromise?: unknown }).inclusionPromise;
};
const planeWorld = (bundle: SerializedBundle): World => ({
  bundle,
  root: plane.trustedRoot,
  artifact: ARTIFACT,
  ctlogThreshold: 0,
});

describe('plane bundles (stock sigstore-js) under each media type and its shape rules', () => {
  runTable([
    {
      name: 'v0.3 (new spelling) as signed: certificate, SET + proof',
      make: () => planeWorld(message),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.3 DSSE as stock signs it',
      make: () => {
        expect(dsse.mediaType).toBe(V03);
        return planeWorld(dsse);
      },
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.3 old spelling, same shape',
      make: () => planeWorld(as(message, V03_OLD)),
      stock: 'accept',
      airlock: 'accept',
    },
    { name: 'v0.3 old spelling, DSSE', make: () => planeWorld(as(dsse, V03_OLD)), stock: 'accept', airlock: 'accept' },
    {
      name: 'v0.2: chain (leaf) + SET + proof',
      make: () => planeWorld(as(message, V02, toChain())),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.2: chain (leaf + CA) + proof only',
      make: () => planeWorld(as(message, V02, toChain(true), noPromise)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.2: chain, promise only (proof required)',
      make: () => planeWorld(as(message, V02, toChain(), noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.1: chain, promise only',
      make: () => planeWorld(as(message, V01, toChain(), noProof)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.1: chain (leaf + CA), promise only, DSSE',
      make: () => planeWorld(as(dsse, V01, toChain(true), noProof)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.1: chain, promise + proof',
      make: () => planeWorld(as(message, V01, toChain())),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.1: chain, proof only (promise required)',
      make: () => planeWorld(as(message, V01, toChain(), noPromise)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3: promise only (proof required)',
      make: () => planeWorld(as(message, V03, noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3: proof only (no SET; TSA gives the time)',
      make: () => planeWorld(as(message, V03, noPromise)),
      stock: 'accept',
      airlock: 'accept',
    },
  ]);
});

describe('one version’s media type on another version’s shape', () => {
  runTable([
    {
      name: 'v0.3 media type on a v0.1 shape (chain, promise only)',
      make: () => planeWorld(as(message, V03, toChain(), noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3 media type with a chain (and proof)',
      make: () => planeWorld(as(message, V03, toChain())),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3 old spelling with a chain (and proof)',
      make: () => planeWorld(as(message, V03_OLD, toChain())),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.1 media type on a v0.3 shape (certificate, SET + proof)',
      make: () => planeWorld(as(message, V01)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.1 media type on a v0.3 shape without SET',
      make: () => planeWorld(as(message, V01, noPromise)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.2 media type on a v0.3 shape (certificate, SET + proof)',
      make: () => planeWorld(as(message, V02)),
      stock: 'accept',
      airlock: 'accept',
    },
  ]);
});

describe('unknown media types', () => {
  runTable([
    { name: 'no mediaType', make: () => planeWorld(as(message, undefined)), stock: 'refuse', airlock: 'refuse' },
    { name: 'empty mediaType', make: () => planeWorld(as(message, '')), stock: 'refuse', airlock: 'refuse' },
    {
      name: 'application/json',
      make: () => planeWorld(as(message, 'application/json')),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'bundle+json without a version',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.bundle+json')),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'upper-case spelling',
      make: () => planeWorld(as(message, V03.toUpperCase())),
      stock: 'refuse',
      airlock: 'refuse',
    },
    { name: 'leading space', make: () => planeWorld(as(message, ` ${V03}`)), stock: 'refuse', airlock: 'refuse' },
    {
      name: 'trusted-root media type',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.trustedroot.v0.2+json')),
      stock: 'refuse',
      airlock: 'refuse',
    },
    // The media type is not signed and selects only which shape rules apply; an unknown later version gets the
    // strictest (v0.3) rules in stock, so accepting it lets nothing through that v0.3 refuses.
    {
      name: 'future v0.4 (new spelling): v0.3 rules',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.bundle.v0.4+json')),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'future version=0.4 (old spelling): v0.3 rules',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.bundle+json;version=0.4')),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'future v0.4 with a chain (v0.3 rules refuse it)',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.bundle.v0.4+json', toChain())),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'future v0.4 without proof (v0.3 rules refuse it)',
      make: () => planeWorld(as(message, 'application/vnd.dev.sigstore.bundle.v0.4+json', noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});

describe("sigstore-js' public bundles of each version (public-good trusted root, SCT threshold 1)", () => {
  const fixtures = join(import.meta.dirname, '..', 'fixtures', 'sigstore-js', 'media-types');
  const read = (f: string): SerializedBundle => JSON.parse(readFileSync(join(fixtures, f), 'utf8'));
  const publicWorld = (bundle: SerializedBundle): World => ({
    bundle,
    root: JSON.parse(readFileSync(join(fixtures, 'trusted_root.json'), 'utf8')),
    artifact: readFileSync(join(fixtures, 'artifact.txt')),
    ctlogThreshold: 1,
  });
  const v01 = (): SerializedBundle => read('v01-hashedrekord.sigstore.json');
  const v02 = (): SerializedBundle => read('v02-hashedrekord.sigstore.json');
  const v03old = (): SerializedBundle => read('v03-legacy-hashedrekord.sigstore.json');
  const v03 = (): SerializedBundle => read('v03-dsse.sigstore.json');
  runTable([
    { name: 'v0.1 message signature as published', make: () => publicWorld(v01()), stock: 'accept', airlock: 'accept' },
    {
      name: 'v0.1 DSSE (intoto 0.0.2 entry) as published',
      make: () => publicWorld(read('v01-dsse-intoto.sigstore.json')),
      stock: 'accept',
      airlock: 'accept',
    },
    { name: 'v0.2 as published', make: () => publicWorld(v02()), stock: 'accept', airlock: 'accept' },
    { name: 'v0.3 old spelling as published', make: () => publicWorld(v03old()), stock: 'accept', airlock: 'accept' },
    {
      name: 'v0.3 new spelling (DSSE) as published',
      make: () => publicWorld(v03()),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.1 relabelled v0.2 (no inclusion proof)',
      make: () => publicWorld(as(v01(), V02)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.1 relabelled v0.3 (chain, no proof)',
      make: () => publicWorld(as(v01(), V03)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.2 relabelled v0.1 (promise + proof, chain)',
      make: () => publicWorld(as(v02(), V01)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.2 relabelled v0.3 (chain)',
      make: () => publicWorld(as(v02(), V03)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.2 without its inclusion proof',
      make: () => publicWorld(as(v02(), V02, noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3 old spelling relabelled new spelling',
      make: () => publicWorld(as(v03old(), V03)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.3 new spelling relabelled old spelling',
      make: () => publicWorld(as(v03(), V03_OLD)),
      stock: 'accept',
      airlock: 'accept',
    },
    {
      name: 'v0.3 without its inclusion proof',
      make: () => publicWorld(as(v03(), V03, noProof)),
      stock: 'refuse',
      airlock: 'refuse',
    },
    {
      name: 'v0.3 relabelled with an unknown media type',
      make: () => publicWorld(as(v03(), 'application/vnd.dev.sigstore.bundle')),
      stock: 'refuse',
      airlock: 'refuse',
    },
  ]);
});
