import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { hasErrorCode, makeStatement, sha256Hex } from '@airlock/core';
import { startTrustPlane } from '@airlock/plane';
import { AirlockSigner, type SerializedBundle } from '@airlock/sign';
import { BundleVerifier } from '@airlock/verify';
import { EXIT, fail, printResult, type OutputOptions } from '../output.js';

/** proto3 JSON omits zero-valued int64 fields, so the first log entry has no `logIndex`. */
function logIndexOf(b: SerializedBundle): string {
  const e = b.verificationMaterial.tlogEntries[0];
  return e ? (e.logIndex ?? '0') : '(not logged)';
}

interface DemoStep {
  step: string;
  ms: number;
  detail: Record<string, unknown>;
}

/**
 * The end-to-end main job on embedded defaults. Today: start the trust plane, sign a file and an in-toto
 * statement with a workload identity, verify both against the generated trusted root, and show that a policy
 * naming another identity rejects them.
 */
export async function runDemo(opts: { data?: string; log: (line: string) => void }): Promise<{ ok: boolean; dataDir: string; steps: DemoStep[] }> {
  const dataDir = opts.data ?? mkdtempSync(join(tmpdir(), 'airlock-demo-'));
  const steps: DemoStep[] = [];
  const step = async <T>(name: string, fn: () => Promise<T>, detail: (t: T) => Record<string, unknown>): Promise<T> => {
    const t0 = performance.now();
    opts.log(`→ ${name}…`);
    const result = await fn();
    const s = { step: name, ms: Math.round(performance.now() - t0), detail: detail(result) };
    steps.push(s);
    opts.log(`  ✓ ${name} (${s.ms} ms) ${Object.entries(s.detail).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}`);
    return result;
  };

  const plane = await step('start trust plane', () => startTrustPlane({ dataDir }), (p) => ({ tlog: p.endpoints.tlogUrl, ca: p.endpoints.caUrl, issuer: p.endpoints.identityIssuerUrl }));
  try {
    const identity = `spiffe://${plane.endpoints.trustDomain}/demo/release-signer`;
    const issuer = plane.endpoints.identityIssuerUrl;
    const artifactPath = join(dataDir, 'hello-airlock.txt');
    const artifact = Buffer.from('hello from inside the airlock\n');
    writeFileSync(artifactPath, artifact);
    const signer = new AirlockSigner({
      fulcioUrl: plane.endpoints.caUrl,
      rekorUrl: plane.endpoints.tlogUrl,
      identity: () => plane.issueToken(identity),
    });

    const blobBundle = await step('sign file', () => signer.signBlob(artifact), (b) => ({
      file: artifactPath,
      sha256: sha256Hex(artifact),
      logIndex: logIndexOf(b),
    }));
    writeFileSync(`${artifactPath}.sigstore.json`, JSON.stringify(blobBundle));

    const statement = makeStatement([{ name: 'hello-airlock.txt', digest: { sha256: sha256Hex(artifact) } }], 'https://airlock.dev/attestation/demo/v1', {
      message: 'attested by the airlock demo',
    });
    const dsseBundle = await step('sign in-toto statement (DSSE)', () => signer.attest(statement), (b) => ({
      predicateType: statement.predicateType,
      logIndex: logIndexOf(b),
    }));
    writeFileSync(join(dataDir, 'hello-airlock.intoto.sigstore.json'), JSON.stringify(dsseBundle));

    const verifier = new BundleVerifier(plane.trustedRoot);
    const policy = { subject: identity, issuer };
    await step('verify file signature', async () => verifier.verify(blobBundle, { artifact, policy }), (r) => ({ signer: r.signer.subjectAlternativeName, logIndex: r.tlogEntries[0]?.logIndex }));
    await step('verify statement', async () => verifier.verify(dsseBundle, { artifact, policy }), (r) => ({ signer: r.signer.subjectAlternativeName, predicateType: r.statement?.predicateType }));
    await step(
      'reject a policy naming another identity',
      async () => {
        try {
          verifier.verify(dsseBundle, { artifact, policy: { subject: `spiffe://${plane.endpoints.trustDomain}/someone-else`, issuer } });
        } catch (err) {
          if (hasErrorCode(err, 'VERIFY_POLICY')) return (err as Error).message;
          throw err;
        }
        throw new Error('a bundle verified under the wrong identity: the demo failed');
      },
      (message) => ({ rejected: message }),
    );
    return { ok: true, dataDir, steps };
  } finally {
    await plane.close();
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end demo on embedded defaults (trust plane up, sign, attest, verify) and print what it did')
    .option('--data <dir>', 'keep the plane data and outputs in this directory (default: a new temp directory)')
    .option('--json', 'print the report as JSON')
    .action(async (flags: OutputOptions & { data?: string }) => {
      try {
        const log = flags.json ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
        const report = await runDemo({ ...(flags.data ? { data: flags.data } : {}), log });
        printResult(flags, report, () => `\nairlock demo: all ${report.steps.length} steps passed. Data and bundles in ${report.dataDir}`);
      } catch (err) {
        fail(flags, err, EXIT.FAILURE);
      }
    });
}
