/**
 * MemoCertificate (packages/verify/src/memo-certificate.ts): BundleVerifier hands @sigstore/verify certificates whose
 * DER re-encodings, public keys and issuer-signature checks are computed once per object — the trusted root's CA and
 * TSA certificates once per BundleVerifier, a bundle's leaf once per verification. These tests hold it to:
 *  - the same bytes and answers as stock @sigstore/core (encodeDer vs ASN1Obj.toDER on real certificates, timestamp
 *    tokens and long-form lengths; equals/verify/publicKey/clone vs stock X509Certificate);
 *  - nothing about one bundle served to the next: ONE BundleVerifier, reused, refuses every sampled bit flip of the
 *    leaf certificate and of the TSA token after accepting the original (and still accepts it afterwards);
 *  - nothing about one trusted root served for another: a verifier of plane B refuses plane A's bundle after
 *    verifying B's, and plane A's verifier accepts it.
 */
import { X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASN1Obj, crypto as sigstoreCrypto, X509Certificate } from '@sigstore/core';
import type { SerializedBundle } from '@sigstore/bundle';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner } from '@airlock/sign';
import { BundleVerifier, MemoCertificate, encodeDer, stockToDer, type IdentityPolicy } from '@airlock/verify';

const ARTIFACT = Buffer.from('memoised certificates, verified every time\n');

interface Plane {
  plane: RunningTrustPlane;
  dir: string;
  policy: IdentityPolicy;
  bundle: SerializedBundle;
}

let a: Plane;
let b: Plane;

async function signedPlane(name: string): Promise<Plane> {
  const dir = mkdtempSync(join(tmpdir(), `airlock-memo-${name}-`));
  const plane = await startTrustPlane({ dataDir: dir });
  const subject = `spiffe://${plane.endpoints.trustDomain}/memo`;
  const signer = new AirlockSigner({
    fulcioUrl: plane.endpoints.caUrl,
    rekorUrl: plane.endpoints.tlogUrl,
    tsaUrl: plane.endpoints.tsaUrl!,
    identity: () => plane.issueToken(subject),
  });
  const bundle = await signer.signBlob(ARTIFACT);
  return { plane, dir, policy: { subject, issuer: plane.endpoints.identityIssuerUrl }, bundle };
}

beforeAll(async () => {
  a = await signedPlane('a');
  b = await signedPlane('b');
}, 120_000);

afterAll(async () => {
  for (const p of [a, b]) {
    await p?.plane.close();
    if (p) rmSync(p.dir, { recursive: true, force: true });
  }
});

const b64 = (s: string): Buffer<ArrayBuffer> => Buffer.from(s, 'base64');
const leafDer = (bundle: SerializedBundle): Buffer<ArrayBuffer> => {
  const m = bundle.verificationMaterial as { certificate?: { rawBytes: string } };
  return b64(m.certificate!.rawBytes);
};
const tsaToken = (bundle: SerializedBundle): Buffer<ArrayBuffer> =>
  b64(bundle.verificationMaterial.timestampVerificationData!.rfc3161Timestamps[0]!.signedTimestamp);
const rootCertificates = (root: unknown): Buffer<ArrayBuffer>[] => {
  const r = root as {
    certificateAuthorities: { certChain: { certificates: { rawBytes: string }[] } }[];
    timestampAuthorities: { certChain: { certificates: { rawBytes: string }[] } }[];
  };
  return [...r.certificateAuthorities, ...r.timestampAuthorities].flatMap((ca) =>
    ca.certChain.certificates.map((c) => b64(c.rawBytes)),
  );
};

function outcome(v: BundleVerifier, bundle: unknown, policy: IdentityPolicy): string {
  try {
    v.verify(bundle, { artifact: ARTIFACT, policy });
    return 'ok';
  } catch (e) {
    return `refused: ${(e as { code?: string }).code ?? (e as Error).message}`;
  }
}

/** ~`n` single-bit flips spread over a base64 field of the bundle, each as a new bundle. */
function flips(bundle: SerializedBundle, get: (x: SerializedBundle) => Buffer, n: number): SerializedBundle[] {
  const bytes = get(bundle);
  const out: SerializedBundle[] = [];
  for (let k = 0; k < n; k++) {
    const pos = Math.floor((k * bytes.length) / n);
    const mutated = JSON.parse(JSON.stringify(bundle)) as SerializedBundle;
    const flipped = Buffer.from(bytes);
    flipped[pos] = flipped[pos]! ^ (1 << (pos % 8));
    const b = flipped.toString('base64');
    if (get === leafDer)
      (mutated.verificationMaterial as { certificate: { rawBytes: string } }).certificate.rawBytes = b;
    else mutated.verificationMaterial.timestampVerificationData!.rfc3161Timestamps[0]!.signedTimestamp = b;
    out.push(mutated);
  }
  return out;
}

describe('encodeDer', () => {
  it('is byte for byte ASN1Obj.toDER on real certificates, a timestamp token and long-form lengths', () => {
    const ders: Buffer<ArrayBuffer>[] = [
      ...rootCertificates(a.plane.trustedRoot),
      leafDer(a.bundle),
      tsaToken(a.bundle),
    ];
    expect(ders.length).toBeGreaterThan(3);
    for (const der of ders) {
      const obj = ASN1Obj.parseBuffer(der);
      expect(encodeDer(obj).equals(stockToDer(obj))).toBe(true);
      // Every subtree too (the TBS certificate, names, extensions…).
      const walk = (o: ASN1Obj): void => {
        expect(encodeDer(o).equals(stockToDer(o))).toBe(true);
        o.subs.forEach(walk);
      };
      walk(obj);
    }
    // OCTET STRINGs of 0…70000 bytes: short form, and 1-, 2- and 3-byte long forms.
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 70000]) {
      const len =
        n < 128
          ? [n]
          : n < 256
            ? [0x81, n]
            : n < 65536
              ? [0x82, n >> 8, n & 255]
              : [0x83, n >> 16, (n >> 8) & 255, n & 255];
      const der = Buffer.concat([Buffer.from([0x04, ...len]), Buffer.alloc(n, 0x41)]);
      const obj = ASN1Obj.parseBuffer(der);
      expect(encodeDer(obj).equals(stockToDer(obj))).toBe(true);
      expect(encodeDer(obj).equals(der)).toBe(true);
    }
  });
});

describe('ASN1Obj.toDER behind encodeDer', () => {
  it("is installed, gives the stock bytes, and a fresh buffer per call (RFC 3161's check writes into it)", () => {
    const obj = ASN1Obj.parseBuffer(tsaToken(a.bundle));
    expect(obj.toDER()).not.toBe(obj.toDER());
    expect(stockToDer(obj)).not.toBe(obj.toDER());
    expect(obj.toDER().equals(stockToDer(obj))).toBe(true);
    const mine = obj.toDER();
    mine[0] = 0x31;
    expect(obj.toDER().equals(stockToDer(obj))).toBe(true);
    expect(ASN1Obj.prototype.toDER.toString()).toContain('encodeDer');
  });
});

describe('MemoCertificate', () => {
  it('answers as stock X509Certificate: equals, verify (right and wrong issuer), publicKey, clone', () => {
    const [caA] = rootCertificates(a.plane.trustedRoot);
    const [caB] = rootCertificates(b.plane.trustedRoot);
    const pairs: [Buffer, Buffer][] = [
      [leafDer(a.bundle), caA!],
      [leafDer(a.bundle), caB!],
      [caA!, caA!],
      [caA!, caB!],
      [leafDer(b.bundle), caB!],
    ];
    for (const [subject, issuer] of pairs) {
      const stock = [X509Certificate.parse(Buffer.from(subject)), X509Certificate.parse(Buffer.from(issuer))] as const;
      const memo = [MemoCertificate.fromDer(subject), MemoCertificate.fromDer(issuer)] as const;
      for (let round = 0; round < 2; round++) {
        expect(memo[0].verify(memo[1])).toBe(stock[0].verify(stock[1]));
        expect(memo[0].verify(stock[1])).toBe(stock[0].verify(stock[1]));
        expect(memo[0].verify()).toBe(stock[0].verify());
        expect(memo[0].equals(memo[1])).toBe(stock[0].equals(stock[1]));
        expect(memo[0].equals(stock[0])).toBe(true);
        expect(memo[0].publicKey.equals(stock[0].publicKey)).toBe(true);
        expect(stockToDer(memo[0].clone().root).equals(stockToDer(stock[0].clone().root))).toBe(true);
      }
    }
    expect(MemoCertificate.fromDer(leafDer(a.bundle)).verify(MemoCertificate.fromDer(caA!))).toBe(true);
    expect(MemoCertificate.fromDer(leafDer(a.bundle)).verify(MemoCertificate.fromDer(caB!))).toBe(false);
  });
});

describe('MemoCertificate.adoptKey', () => {
  it("takes OpenSSL's key only for this certificate's exact DER, and @sigstore/core is then answered with it", () => {
    const der = leafDer(a.bundle);
    const memo = MemoCertificate.fromDer(der);
    const node = new NodeX509(der);
    memo.adoptKey(der, node.publicKey);
    expect(memo.publicKeyObject()).toBe(node.publicKey);
    expect(sigstoreCrypto.createPublicKey(memo.publicKey)).toBe(node.publicKey);
    expect(node.publicKey.equals(sigstoreCrypto.createPublicKey(Buffer.from(memo.publicKey)))).toBe(true);
  });

  it("refuses another certificate's DER and key: the key stays the one this parse makes", () => {
    const der = leafDer(a.bundle);
    const other = leafDer(b.bundle);
    const memo = MemoCertificate.fromDer(der);
    const wrong = new NodeX509(other).publicKey;
    memo.adoptKey(other, wrong);
    expect(memo.publicKeyObject()).not.toBe(wrong);
    expect(memo.publicKeyObject().equals(wrong)).toBe(false);
    expect(memo.publicKeyObject().equals(new NodeX509(der).publicKey)).toBe(true);
    // Adopted once made: a later adoptKey with the right DER changes nothing either.
    const made = memo.publicKeyObject();
    memo.adoptKey(der, new NodeX509(der).publicKey);
    expect(memo.publicKeyObject()).toBe(made);
  });
});

describe('one BundleVerifier, reused', () => {
  it('refuses every sampled flip of the leaf certificate and the TSA token after accepting the original', () => {
    const v = new BundleVerifier(a.plane.trustedRoot);
    expect(outcome(v, a.bundle, a.policy)).toBe('ok');
    const leafFlips = flips(a.bundle, leafDer, 24);
    const mutated = [...leafFlips, ...flips(a.bundle, tsaToken, 24)];
    const accepted: number[] = [];
    const differs: number[] = [];
    mutated.forEach((m, i) => {
      const reused = outcome(v, m, a.policy);
      if (reused === 'ok') accepted.push(i);
      // A fresh verifier (nothing memoised yet) gives the same verdict.
      if (reused !== outcome(new BundleVerifier(a.plane.trustedRoot), m, a.policy)) differs.push(i);
      expect(outcome(v, a.bundle, a.policy)).toBe('ok');
    });
    expect(differs).toEqual([]);
    // Every leaf flip is refused. A few flips of the token's outer wrapper (its tag bytes, which stock's ASN.1
    // reader does not check) verify in stock and here alike, fresh or reused: not something memoisation decides.
    expect(accepted.filter((i) => i < leafFlips.length)).toEqual([]);
    expect(accepted.length).toBeLessThan(4);
  });

  it("another trusted root's verifier refuses the bundle after verifying its own", () => {
    const vb = new BundleVerifier(b.plane.trustedRoot);
    expect(outcome(vb, b.bundle, b.policy)).toBe('ok');
    expect(outcome(vb, a.bundle, a.policy)).toMatch(/^refused: /);
    expect(outcome(new BundleVerifier(a.plane.trustedRoot), a.bundle, a.policy)).toBe('ok');
  });
});
