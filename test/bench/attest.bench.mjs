#!/usr/bin/env node
// Node attestation time with a software TPM: one full round per iteration — the verifier issues a challenge
// (MakeCredential + nonce), the attester activates the credential and quotes PCRs 0–7 + 23 through tpm2-tools
// (each tool a process, each followed by tpm2_flushcontext), and the verifier checks EK chain, activation, quote,
// PCR digest and reference values. Also: the one-off identity step (EK read + AK creation). swtpm on a UNIX socket.
// Then the build binding `airlock run --reference-values` does before dispatch (issue 10 §4): a quote by the attested
// AK over buildQuoteNonce(invocationId, specDigest) plus bindBuildQuote (signature, nonce, PCRs, claims), and the
// policy side alone (verifyBuildQuoteRecord). Env: BENCH_ATTEST_ITERATIONS (default 10; p99 wants ≥ 100).
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  NodeAttestationVerifier,
  TpmAttester,
  bindBuildQuote,
  buildQuoteNonce,
  extendPcr,
  makeReferenceValueSet,
  verifyBuildQuoteRecord,
} from '../../packages/attest/dist/index.js';
import { startSwtpm, swtpmProblem } from '../../packages/testkit/dist/index.js';
import { emit, printTable, skip, summarize, time } from './lib.mjs';

const ITERATIONS = Number(process.env.BENCH_ATTEST_ITERATIONS ?? 10);

const problem = swtpmProblem();
if (problem) skip(problem);

const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-attest-'));
const tpm = await startSwtpm(join(dir, 'tpm'));
try {
  const image = createHash('sha256').update('bench runner image').digest();
  const zero = '00'.repeat(32);
  const pcrs = Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((p) => [String(p), zero]));
  pcrs['23'] = extendPcr('sha256', [image]).toString('hex');
  const referenceValues = [makeReferenceValueSet('bench', 'sha256', pcrs)];
  const verifier = new NodeAttestationVerifier({
    manufacturerRoots: tpm.rootCaPem,
    manufacturerIntermediates: tpm.issuerCaPem,
    referenceValues,
  });
  const attester = new TpmAttester({ tcti: tpm.tcti, workDir: join(dir, 'work') });
  await attester.extendPcr(image.toString('hex'));
  const t0 = performance.now();
  const identity = await attester.identity();
  const identityMs = performance.now() - t0;

  const round = await time(
    async () => {
      const challenge = verifier.challenge(identity);
      const evidence = await attester.attest(challenge);
      verifier.verify(evidence); // throws on any failure: a benchmark that measures a refusal is wrong
    },
    { iterations: ITERATIONS, warmup: 1 },
  );
  // The verifier's share alone (no TPM): challenge + verify of fresh evidence, measured separately.
  const verifyOnly = [];
  for (let i = 0; i < 3; i++) {
    const challenge = verifier.challenge(identity);
    const evidence = await attester.attest(challenge);
    const v0 = performance.now();
    verifier.verify(evidence);
    verifyOnly.push(performance.now() - v0);
  }
  // The build binding, as `airlock run` does it before dispatch (the agent's socket hop is measured by agent.bench).
  const claims = verifier.verify(await attester.attest(verifier.challenge(identity))).claims;
  const node = { akName: claims.ak.name, referenceValueSetId: claims.referenceValues.id };
  const specDigest = createHash('sha256').update('bench spec').digest('hex');
  const records = [];
  const build = await time(
    async () => {
      const invocationId = randomUUID();
      const nonce = buildQuoteNonce(invocationId, specDigest).toString('hex');
      const quote = await attester.quote(nonce, verifier.pcrSelection);
      const record = bindBuildQuote(quote, { invocationId, specDigest, referenceValues, node });
      records.push({ invocationId, record });
    },
    { iterations: ITERATIONS, warmup: 1 },
  );
  const policy = summarize(
    records.map(({ invocationId, record }) => {
      const v0 = performance.now();
      verifyBuildQuoteRecord(record, { invocationId, specDigest, node });
      return performance.now() - v0;
    }),
  );
  const rows = [
    { step: 'identity (EK read + AK create)', p50: identityMs, p99: identityMs, n: 1 },
    {
      step: 'node attestation round (challenge → activate + quote → verify)',
      p50: round.p50,
      p99: round.p99,
      n: round.iterations,
    },
    {
      step: 'node attestation verify only (TypeScript)',
      p50: verifyOnly.sort((a, b) => a - b)[1],
      p99: Math.max(...verifyOnly),
      n: verifyOnly.length,
    },
    { step: 'build quote (tpm2_quote + bindBuildQuote)', p50: build.p50, p99: build.p99, n: build.iterations },
    { step: 'build quote re-verify (policy side)', p50: policy.p50, p99: policy.p99, n: policy.iterations },
  ];
  printTable(rows, ['step', 'p50', 'p99', 'n']);
  emit({
    summary: {
      attestP50Ms: round.p50,
      attestP90Ms: round.p90,
      attestP99Ms: round.p99,
      identityMs,
      verifyP50Ms: rows[2].p50,
      buildQuoteP50Ms: build.p50,
      buildQuoteP99Ms: build.p99,
      buildQuoteVerifyP50Ms: policy.p50,
      buildQuoteVerifyP99Ms: policy.p99,
      iterations: round.iterations,
    },
    round,
    buildQuote: build,
    buildQuoteVerify: policy,
  });
} finally {
  await tpm.stop();
  rmSync(dir, { recursive: true, force: true });
}
