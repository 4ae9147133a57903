/**
 * The native verification engine must reach the same verdict as stock @sigstore/verify. Every byte position of
 * the security-relevant bundle fields is a candidate; a deterministic sample of single-bit flips is verified by
 * both engines and the outcomes (accept, or the error code) must agree.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SerializedBundle } from '@sigstore/bundle';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner } from '@airlock/sign';
import { BundleVerifier, type IdentityPolicy } from '@airlock/verify';

const ARTIFACT = Buffer.from('differential testing of two verifiers\n');
let plane: RunningTrustPlane;
let dir: string;
let bundles: { blob: SerializedBundle; dsse: SerializedBundle };
let policy: IdentityPolicy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-diff-'));
  plane = await startTrustPlane({ dataDir: dir });
  const subject = `spiffe://${plane.endpoints.trustDomain}/diff`;
  policy = { subject, issuer: plane.endpoints.identityIssuerUrl };
  const signer = new AirlockSigner({
    fulcioUrl: plane.endpoints.caUrl,
    rekorUrl: plane.endpoints.tlogUrl,
    identity: () => plane.issueToken(subject),
  });
  // A few entries first so inclusion proofs have hashes.
  for (let i = 0; i < 3; i++) await signer.signBlob(Buffer.from(`warm-up ${i}`));
  bundles = {
    blob: await signer.signBlob(ARTIFACT),
    dsse: await signer.attest({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'a', digest: { sha256: createHash('sha256').update(ARTIFACT).digest('hex') } }],
      predicateType: 'https://airlock.dev/attestation/test/v1',
      predicate: {},
    }),
  };
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Path = Array<string | number>;
/** Every base64 leaf of the bundle that carries signed or signing material. */
function base64Leaves(b: unknown, path: Path = []): Path[] {
  if (typeof b === 'string') {
    const key = path[path.length - 1];
    return [
      'rawBytes',
      'signature',
      'sig',
      'signedEntryTimestamp',
      'rootHash',
      'payload',
      'canonicalizedBody',
      'digest',
      'keyId',
    ].includes(String(key)) ||
      (path.includes('hashes') && typeof key === 'number')
      ? [path]
      : [];
  }
  if (Array.isArray(b)) return b.flatMap((v, i) => base64Leaves(v, [...path, i]));
  if (b && typeof b === 'object') return Object.entries(b).flatMap(([k, v]) => base64Leaves(v, [...path, k]));
  return [];
}

function get(o: unknown, p: Path): unknown {
  return p.reduce<unknown>((acc, k) => (acc as Record<string | number, unknown>)[k], o);
}
function set(o: unknown, p: Path, v: unknown): void {
  const parent = get(o, p.slice(0, -1)) as Record<string | number, unknown>;
  parent[p[p.length - 1]!] = v;
}

function outcome(v: BundleVerifier, b: unknown): string {
  try {
    v.verify(b, { artifact: ARTIFACT, policy });
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? `uncoded: ${(e as Error).message}`;
  }
}

describe('native engine vs @sigstore/verify', () => {
  it('agree on the untouched bundles', () => {
    const stock = new BundleVerifier(plane.trustedRoot, { engine: 'sigstore' });
    const native = new BundleVerifier(plane.trustedRoot, { engine: 'native' });
    for (const b of Object.values(bundles)) {
      expect(outcome(stock, b)).toBe('ok');
      expect(outcome(native, b)).toBe('ok');
    }
  });

  it('agree on sampled single-bit flips in every signed field, and never accept one', () => {
    const stock = new BundleVerifier(plane.trustedRoot, { engine: 'sigstore' });
    const native = new BundleVerifier(plane.trustedRoot, { engine: 'native' });
    let compared = 0;
    const accepted: string[] = [];
    for (const [name, original] of Object.entries(bundles)) {
      for (const path of base64Leaves(original)) {
        const bytes = Buffer.from(get(original, path) as string, 'base64');
        // Sample ~12 positions per field, spread over its length, deterministic.
        const positions = new Set<number>();
        for (let k = 0; k < 12 && bytes.length > 0; k++) positions.add(Math.floor((k * bytes.length) / 12));
        for (const pos of positions) {
          const mutated = JSON.parse(JSON.stringify(original)) as SerializedBundle;
          const flipped = Buffer.from(bytes);
          flipped[pos] = flipped[pos]! ^ (1 << (pos % 8));
          set(mutated, path, flipped.toString('base64'));
          const a = outcome(stock, mutated);
          const b = outcome(native, mutated);
          compared++;
          expect({ name, path: path.join('.'), pos, native: b }).toEqual({
            name,
            path: path.join('.'),
            pos,
            native: a,
          });
          if (a === 'ok') accepted.push(`${name}:${path.join('.')}@${pos}`);
        }
      }
    }
    expect(accepted).toEqual([]);
    expect(compared).toBeGreaterThan(100);
  });
});
