/**
 * Public Rekor v2 example bundles from sigstore-js' own test fixtures (fixtures/sigstore-js/README.md names the
 * source): a hashedrekord 0.0.2 message signature and a dsse 0.0.2 envelope, both logged in the public-good
 * `log2025-1.rekor.sigstore.dev` and RFC 3161-timestamped. Verdicts of stock @sigstore/verify 3.1.1 and of airlock
 * verify, on the bundles as published and mutated.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { BundleVerifier } from '@airlock/verify';

const dir = join(import.meta.dirname, '..', 'fixtures', 'sigstore-js');
const read = (f: string): unknown => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const root = read('trusted_root.json');
const ARTIFACT = readFileSync(join(dir, 'artifact.txt'));
const messageSignature = read('v3-hashedrekord-v002.sigstore.json') as SerializedBundle;
const dsse = read('v3-dsse-v002.sigstore.json') as SerializedBundle;

function stock(bundle: SerializedBundle): string {
  try {
    const trust = toTrustMaterial(TrustedRoot.fromJSON(root));
    new Verifier(trust, { ctlogThreshold: 1, tlogThreshold: 1, timestampThreshold: 1 }).verify(
      toSignedEntity(bundleFromJSON(bundle), bundle.dsseEnvelope ? undefined : ARTIFACT),
    );
    return 'ok';
  } catch (err) {
    return `refused ${(err as { code?: string }).code ?? (err as Error).message}`;
  }
}

function airlock(bundle: SerializedBundle): string {
  try {
    new BundleVerifier(root).verify(bundle, {
      artifact: ARTIFACT,
      allowAnyIdentity: true,
      ...(bundle.dsseEnvelope ? { expectedPayloadType: bundle.dsseEnvelope.payloadType } : {}),
    });
    return 'ok';
  } catch (err) {
    return `refused ${(err as { code?: string }).code ?? (err as Error).message}`;
  }
}

const mutate = (b: SerializedBundle, f: (c: SerializedBundle) => void): SerializedBundle => {
  const c = structuredClone(b);
  f(c);
  return c;
};
const entry = (b: SerializedBundle) => b.verificationMaterial.tlogEntries[0]!;
const flip = (b64: string): string => {
  const d = Buffer.from(b64, 'base64');
  d[d.length - 1]! ^= 1;
  return d.toString('base64');
};

describe('sigstore-js public Rekor v2 bundles: stock @sigstore/verify 3.1.1 vs airlock verify', () => {
  it.each([
    { name: 'hashedrekord 0.0.2 as published', bundle: () => messageSignature, stock: /^ok$/, airlock: /^ok$/ },
    { name: 'dsse 0.0.2 as published', bundle: () => dsse, stock: /^ok$/, airlock: /^ok$/ },
    {
      name: 'hashedrekord 0.0.2 without inclusion proof',
      bundle: () => mutate(messageSignature, (b) => delete entry(b).inclusionProof),
      stock: /^refused/,
      airlock: /^refused/,
    },
    {
      name: 'hashedrekord 0.0.2 with a flipped inclusion-proof hash',
      bundle: () =>
        mutate(messageSignature, (b) => {
          const p = entry(b).inclusionProof!;
          p.hashes[0] = flip(p.hashes[0]!);
        }),
      stock: /^refused TLOG_INCLUSION_PROOF_ERROR/,
      airlock: /^refused VERIFY_TLOG_PROOF/,
    },
    {
      name: 'dsse 0.0.2 with the checkpoint signature line removed',
      bundle: () =>
        mutate(dsse, (b) => {
          const cp = entry(b).inclusionProof!.checkpoint!;
          cp.envelope = cp.envelope.slice(0, cp.envelope.indexOf('\n\n') + 2);
        }),
      stock: /^refused TLOG_INCLUSION_PROOF_ERROR/,
      airlock: /^refused/,
    },
    {
      name: 'hashedrekord 0.0.2 without its RFC 3161 timestamp (no trusted time)',
      bundle: () => mutate(messageSignature, (b) => delete b.verificationMaterial.timestampVerificationData),
      stock: /^refused/,
      airlock: /^refused/,
    },
  ])('$name', ({ bundle, stock: s, airlock: a }) => {
    const b = bundle();
    expect(stock(b)).toMatch(s);
    expect(airlock(b)).toMatch(a);
  });
});
