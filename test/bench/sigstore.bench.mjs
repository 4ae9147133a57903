#!/usr/bin/env node
// Trust-plane throughput: sign+log per second through the internal CA and log, and bundle verification per
// second — airlock's product verification path (BundleVerifier: stock @sigstore/verify plus airlock's own checks)
// against stock @sigstore/verify alone on the very same bundles, in the same run. Bounded: a fixed number of
// signatures and a fixed verification time per contender.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { ASN1Obj } from '@sigstore/core';
import { startTrustPlane } from '../../packages/plane/dist/index.js';
import { AirlockSigner } from '../../packages/sign/dist/index.js';
import { BundleVerifier } from '../../packages/verify/dist/index.js';

const SIGNATURES = Number(process.env.BENCH_SIGNATURES ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const VERIFY_MS = Number(process.env.BENCH_VERIFY_MS ?? 4000);
const ROUNDS = Number(process.env.BENCH_VERIFY_ROUNDS ?? 8);

const AIRLOCK_TO_DER = ASN1Obj.prototype.toDER;
const STOCK_TO_DER = ASN1Obj.prototype[Symbol.for('airlock.verify.stockToDER')] ?? AIRLOCK_TO_DER;

const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-sigstore-'));
const plane = await startTrustPlane({ dataDir: dir });
try {
  const subject = `spiffe://${plane.endpoints.trustDomain}/bench`;
  const token = await plane.issueToken(subject, { ttlSeconds: 3600 });
  const signer = new AirlockSigner({
    fulcioUrl: plane.endpoints.caUrl,
    rekorUrl: plane.endpoints.tlogUrl,
    identity: token,
  });
  const artifacts = Array.from({ length: SIGNATURES }, (_, i) => Buffer.from(`artifact ${i} ${'x'.repeat(64)}`));
  const bundles = new Array(SIGNATURES);
  const statements = artifacts.map((a, i) => ({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: `a${i}`, digest: { sha256: createHash('sha256').update(a).digest('hex') } }],
    predicateType: 'https://airlock.dev/attestation/bench/v1',
    predicate: { i },
  }));

  // sign+log: CONCURRENCY workers, each signature = key generation, certificate from the CA, log entry.
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < SIGNATURES) {
        const i = next++;
        bundles[i] = await signer.attest(statements[i]);
      }
    }),
  );
  const signSeconds = (performance.now() - t0) / 1000;
  const signPerSec = SIGNATURES / signSeconds;

  const policy = { subject, issuer: plane.endpoints.identityIssuerUrl };
  // The contenders take turns in short slices (ROUNDS each), so load from elsewhere on the machine and JIT
  // warm-up fall on both alike; each verifies the same bundles in the same order.
  const measure = (contenders) => {
    const totals = contenders.map(() => ({ n: 0, ms: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      contenders.forEach(([, verifyOne, stockDer], c) => {
        const t = totals[c];
        // @airlock/verify puts a faster, byte-identical ASN1Obj.toDER into @sigstore/core (memo-certificate.ts):
        // the stock contender runs with the library's own, so the peer stays stock.
        ASN1Obj.prototype.toDER = stockDer ? STOCK_TO_DER : AIRLOCK_TO_DER;
        const start = performance.now();
        while (performance.now() - start < VERIFY_MS / ROUNDS) {
          verifyOne(t.n % SIGNATURES);
          t.n++;
        }
        t.ms += performance.now() - start;
      });
    }
    return contenders.map(([name], c) => ({ name, perSecond: totals[c].n / (totals[c].ms / 1000) }));
  };

  // Stock @sigstore/verify, trust material built once, the same checks it always does (policy via its regex).
  const stockVerifier = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(plane.trustedRoot)), {
    ctlogThreshold: 0,
    tlogThreshold: 1,
    timestampThreshold: 1,
  });
  const stockPolicy = {
    subjectAlternativeName: `^${subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
    extensions: { issuer: policy.issuer },
  };
  const verifier = new BundleVerifier(plane.trustedRoot);
  const rows = measure([
    [
      'stock @sigstore/verify',
      (i) => stockVerifier.verify(toSignedEntity(bundleFromJSON(bundles[i])), stockPolicy),
      true,
    ],
    ['airlock BundleVerifier', (i) => verifier.verify(bundles[i], { artifact: artifacts[i], policy })],
  ]);
  ASN1Obj.prototype.toDER = AIRLOCK_TO_DER;
  const [stock, airlock] = rows;
  console.log(
    `sign+log (DSSE, ${CONCURRENCY} concurrent): ${signPerSec.toFixed(1)}/s (${SIGNATURES} in ${signSeconds.toFixed(2)} s)`,
  );
  console.log('verification (same bundles, single thread):');
  for (const r of rows)
    console.log(
      `  ${r.name.padEnd(28)} ${r.perSecond.toFixed(0).padStart(7)}/s  ×${(r.perSecond / stock.perSecond).toFixed(2)} vs stock`,
    );
  console.log(
    'BENCH_JSON ' +
      JSON.stringify({
        bench: 'sigstore',
        signPerSecond: Number(signPerSec.toFixed(1)),
        concurrency: CONCURRENCY,
        verify: Object.fromEntries(rows.map((r) => [r.name, Number(r.perSecond.toFixed(0))])),
        airlockVsStock: Number((airlock.perSecond / stock.perSecond).toFixed(2)),
      }),
  );
} finally {
  await plane.close();
  rmSync(dir, { recursive: true, force: true });
}
