/**
 * Issue 10 §4 acceptance, end to end through the CLI with a real swtpm: `airlock identity agent --tpm-socket`
 * attests its node to the plane's issuer; `airlock run --reference-values` gets a quote by the attested AK over
 * buildQuoteNonce(invocation id, spec digest) from the agent and verifies it before dispatch; the runner's
 * certificate carries the node claims, the provenance the quote; `airlock verify artifact` with a
 * `requireAttestedBuilder` policy passes it. Each attack fails with its reason named: a tampered reference value
 * (in the operator's file, and in a re-signed provenance), a replayed quote (an earlier build's), a quote from a
 * different TPM (a second swtpm), an unattested runner (an agent without a TPM). Skips (printing why) without
 * swtpm/tpm2-tools, bwrap, git or root unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { chmodSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestAgentToken } from '@airlock/agent';
import {
  buildQuoteNonce,
  extendPcr,
  makeReferenceValueSet,
  parseTpm2bPublic,
  TpmAttester,
  tpmName,
  type BuildQuoteRecord,
} from '@airlock/attest';
import { encodeOidContent, fromBase64, NODE_ATTESTATION_OID } from '@airlock/core';
import { AirlockSigner } from '@airlock/sign';
import {
  bwrapProblem,
  gitProblem,
  makeGitFixtureRepo,
  rmrf,
  sandboxTempDir,
  startSwtpm,
  swtpmProblem,
  toolsAvailable,
  type Swtpm,
} from '@airlock/testkit';
import { runCli, startCli } from './helpers/cli.js';
import { sha256 } from './helpers/policy-world.js';

const GOOD_FIXTURE = fileURLToPath(new URL('../fixtures/runner/good', import.meta.url));
const TD = 'airlock.internal';
const RUNNER = `spiffe://${TD}/airlock/runner`;
const NODE = realpathSync(process.execPath);
const IMAGE = sha256('airlock runner image v1');

const enabled = toolsAvailable('airlock run bound to a TPM-attested node (swtpm, bwrap, git, root)', [
  swtpmProblem(),
  bwrapProblem(),
  gitProblem(),
  process.getuid?.() === 0 ? undefined : "not root: the agent must read its callers' /proc entries",
]);

interface RunJson {
  ok: boolean;
  invocationId?: string;
  artifacts?: { name: string; path: string; provenance: { statement: string; bundle?: string } }[];
  nodeAttestation?: { quoteDigest: string; nonce: string; akName: string; referenceValues: { id: string } };
  error?: { code: string; message: string };
}

interface Statement {
  predicate: {
    buildDefinition: {
      externalParameters: { spec: { digest: { sha256: string } } };
      internalParameters: { nodeAttestation?: BuildQuoteRecord };
    };
    runDetails: { metadata: { invocationId: string } };
  };
}

describe.runIf(enabled)('airlock run bound to a TPM-attested node (swtpm)', () => {
  let root: string;
  let plane: string;
  let issuerUrl: string;
  let a: Swtpm, c: Swtpm;
  let spec: string;
  let rvFile: string;
  let agentSocket: string;
  let bareSocket: string;
  let policyFile: string;
  let first: RunJson & { code: number | null; out: string };
  const stops: Array<() => Promise<void>> = [];
  const reference = makeReferenceValueSet('runner-image-v1', 'sha256', {
    ...Object.fromEntries([0, 1, 2, 3, 4, 5, 6, 7].map((p) => [String(p), '00'.repeat(32)])),
    '23': extendPcr('sha256', [Buffer.from(IMAGE, 'hex')]).toString('hex'),
  });
  let n = 0;

  beforeAll(async () => {
    root = sandboxTempDir('attested-run');
    chmodSync(root, 0o755);
    plane = join(root, 'plane');
    const up = await startCli(
      ['up', '--data', plane, '--json'],
      (o) => o.trim().endsWith('}') && o.includes('tlogUrl'),
    );
    stops.push(up.stop);
    issuerUrl = (JSON.parse(readFileSync(join(plane, 'endpoints.json'), 'utf8')) as { identityIssuerUrl: string })
      .identityIssuerUrl;
    a = await startSwtpm(join(root, 'tpm-a'), { localCaDir: join(root, 'vendor1') });
    c = await startSwtpm(join(root, 'tpm-c'), { localCaDir: join(root, 'vendor2') });
    stops.push(a.stop, c.stop);
    // The runner image measured into PCR 23 (what a measured boot of the runner VM would do).
    for (const [t, name] of [
      [a, 'a'],
      [c, 'c'],
    ] as const)
      await new TpmAttester({ tcti: t.tcti, workDir: join(root, `measure-${name}`) }).extendPcr(IMAGE);

    rvFile = join(root, 'reference-values.json');
    writeFileSync(rvFile, JSON.stringify([reference]));
    const ekCa = join(root, 'ek-ca.pem');
    writeFileSync(ekCa, a.rootCaPem + a.issuerCaPem);
    const entries = join(root, 'entries.json');
    writeFileSync(
      entries,
      JSON.stringify({ entries: [{ spiffeId: RUNNER, selectors: ['unix:uid:0', `unix:path:${NODE}`] }] }),
    );
    agentSocket = join(root, 'agent.sock');
    bareSocket = join(root, 'bare-agent.sock');
    const agentArgs = (socket: string) => ['identity', 'agent', '--socket', socket, '--entries', entries];
    const attested = await startCli(
      [
        ...agentArgs(agentSocket),
        '--data',
        plane,
        '--tpm-socket',
        a.tcti.replace(/^swtpm:path=/, ''),
        '--ek-ca',
        ekCa,
        '--reference-values',
        rvFile,
        '--tpm-work-dir',
        join(root, 'agent-tpm'),
        '--audit-log',
        join(root, 'agent-audit.log'),
        '--json',
      ],
      (o) => o.trim().endsWith('}'),
      60_000,
    );
    stops.push(attested.stop);
    // The same registration on an agent that never attested a node.
    const bare = await startCli(
      [...agentArgs(bareSocket), '--data', plane, '--audit-log', join(root, 'bare-audit.log'), '--json'],
      (o) => o.trim().endsWith('}'),
    );
    stops.push(bare.stop);

    const fx = makeGitFixtureRepo(GOOD_FIXTURE, root);
    spec = join(root, 'good.spec.json');
    writeFileSync(
      spec,
      JSON.stringify({
        source: { repo: fx.repo, commit: fx.commit, ref: 'refs/heads/main' },
        builder: { type: 'command', argv: ['sh', 'build.sh'] },
        outputs: ['hello.txt'],
        timeoutSeconds: 120,
      }),
    );
    policyFile = join(root, 'attested.policy.json');
    writeFileSync(
      policyFile,
      JSON.stringify({
        apiVersion: 'airlock.dev/policy/v1',
        authorities: { runner: { keyless: { subject: RUNNER, issuer: issuerUrl } } },
        provenance: { authorities: ['runner'], requireAttestedBuilder: { referenceValues: [reference.id] } },
      }),
    );
    first = await run(agentSocket, rvFile);
  }, 240_000);

  afterAll(async () => {
    for (const s of stops.splice(0).reverse()) await s();
    if (root) rmrf(root);
  });

  async function run(socket: string, rv?: string): Promise<RunJson & { code: number | null; out: string }> {
    const out = join(root, `out-${++n}`);
    const r = await runCli([
      'run',
      '--spec',
      spec,
      '--out',
      out,
      '--data',
      plane,
      '--agent-socket',
      socket,
      '--work-root',
      join(root, 'work'),
      ...(rv ? ['--reference-values', rv] : []),
      '--json',
    ]);
    const parsed = JSON.parse(r.stdout || '{}') as RunJson;
    if (r.code !== 0 && parsed.ok !== false) throw new Error(`airlock run: ${r.stderr}`);
    return { ...parsed, code: r.code, out };
  }

  const parseQuoteAttest = (q: unknown): Buffer => fromBase64((q as { quote: { attest: string } }).quote.attest);

  const statementOf = (r: RunJson): Statement =>
    JSON.parse(readFileSync(r.artifacts![0]!.provenance.statement, 'utf8')) as Statement;

  async function verify(artifact: string, bundle: string) {
    const r = await runCli([
      'verify',
      'artifact',
      artifact,
      '--bundle',
      bundle,
      '--policy',
      policyFile,
      '--data',
      plane,
      '--json',
    ]);
    const out = JSON.parse(r.stdout) as { rules?: { rule: string; passed: boolean; message: string }[] };
    const rule = JSON.stringify(out).match(/"rule":"provenance\.attestedBuilder"[^}]*"message":"([^"]*)"/);
    return { code: r.code, out, message: rule?.[1] ?? r.stdout };
  }

  /** A provenance edited by whoever holds the runner's identity (the attacker model), re-signed as the runner. */
  async function forge(r: RunJson, edit: (na: BuildQuoteRecord, s: Statement) => void): Promise<string> {
    const statement = statementOf(r);
    edit(statement.predicate.buildDefinition.internalParameters.nodeAttestation!, statement);
    const endpoints = JSON.parse(readFileSync(join(plane, 'endpoints.json'), 'utf8')) as {
      caUrl: string;
      tlogUrl: string;
    };
    const signer = new AirlockSigner({
      fulcioUrl: endpoints.caUrl,
      rekorUrl: endpoints.tlogUrl,
      identity: async () => (await requestAgentToken(agentSocket, { subject: RUNNER })).token,
    });
    const bundle = join(root, `forged-${++n}.sigstore.json`);
    writeFileSync(bundle, JSON.stringify(await signer.attest(statement as never)));
    return bundle;
  }

  it('agent attests the node → run binds the build → certificate has the claims → provenance has the quote → policy PASS', async () => {
    expect(first.code).toBe(0);
    const st = statementOf(first);
    const na = st.predicate.buildDefinition.internalParameters.nodeAttestation!;
    // The provenance carries the quote's digest, bound to this invocation and spec digest.
    expect(na.quoteDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(na.quoteDigest).toBe(first.nodeAttestation!.quoteDigest);
    expect(na.quoteDigest).toBe(`sha256:${sha256(fromBase64(na.quote.attest))}`);
    expect(st.predicate.runDetails.metadata.invocationId).toBe(first.invocationId);
    const specDigest = st.predicate.buildDefinition.externalParameters.spec.digest.sha256;
    expect(na.nonce).toBe(buildQuoteNonce(first.invocationId!, specDigest).toString('hex'));
    expect(na.referenceValues).toEqual(reference);
    // The runner's signing certificate carries the node claims naming the same AK.
    const bundle = JSON.parse(readFileSync(first.artifacts![0]!.provenance.bundle!, 'utf8')) as {
      verificationMaterial: { certificate: { rawBytes: string } };
    };
    const der = Buffer.from(bundle.verificationMaterial.certificate.rawBytes, 'base64');
    const oid = encodeOidContent(NODE_ATTESTATION_OID.akName);
    const at = der.indexOf(Buffer.concat([Buffer.from([0x06, oid.length]), oid]));
    expect(at).toBeGreaterThan(0);
    expect(der.subarray(at, at + 200).includes(Buffer.from(na.akName))).toBe(true);
    expect(tpmName(parseTpm2bPublic(fromBase64(na.akPublic))).toString('hex')).toBe(na.akName);

    const v = await verify(first.artifacts![0]!.path, first.artifacts![0]!.provenance.bundle!);
    expect(v.message).toMatch(/built on a node attested against reference value set/);
    expect(v.code).toBe(0);
  }, 120_000);

  it('a tampered reference value in the operator file: the run refuses before dispatch (exit 17), named', async () => {
    const tampered = join(root, 'tampered-rv.json');
    writeFileSync(tampered, JSON.stringify([{ ...reference, pcrs: { ...reference.pcrs, '23': 'ab'.repeat(32) } }]));
    const r = await run(agentSocket, tampered);
    expect(r.code).toBe(17);
    expect(r.error?.code).toBe('RUNNER_NODE_ATTESTATION_FAILED');
    expect(r.error?.message).toMatch(/REFERENCE_VALUES_INVALID.*changed after the id was computed/);
    // Not dispatched: the build log is created at checkout, and the output directory is still empty.
    expect(readdirSync(r.out)).toEqual([]);
  }, 120_000);

  it('a reference value set this node does not match (id recomputed): refused before dispatch, named', async () => {
    const other = join(root, 'other-rv.json');
    const set = makeReferenceValueSet('runner-image-v2', 'sha256', { ...reference.pcrs, '23': 'cd'.repeat(32) });
    writeFileSync(other, JSON.stringify([set]));
    const r = await run(agentSocket, other);
    expect(r.code).toBe(17);
    expect(r.error?.message).toMatch(/REFERENCE_VALUE_MISMATCH.*PCR sha256:23/);
    expect(readdirSync(r.out)).toEqual([]);
  }, 120_000);

  it('a tampered reference value in a re-signed provenance fails the policy, named', async () => {
    const bundle = await forge(first, (na) => {
      na.referenceValues.pcrs['23'] = 'ab'.repeat(32);
      na.pcrs.values['23'] = 'ab'.repeat(32);
    });
    const v = await verify(first.artifacts![0]!.path, bundle);
    expect(v.code).toBe(1);
    expect(v.message).toMatch(/REFERENCE_VALUES_INVALID.*changed after the id was computed/);
  }, 120_000);

  it('a replayed quote (an earlier build’s, in a later build’s provenance) fails the policy, named', async () => {
    const second = await run(agentSocket, rvFile);
    expect(second.code).toBe(0);
    const old = statementOf(first).predicate.buildDefinition.internalParameters.nodeAttestation!;
    const bundle = await forge(second, (na) => Object.assign(na, old));
    const v = await verify(second.artifacts![0]!.path, bundle);
    expect(v.code).toBe(1);
    expect(v.message).toMatch(/QUOTE_NONCE_MISMATCH.*replayed build quote/);
  }, 180_000);

  it('a quote from a different TPM (second swtpm, same PCRs, right nonce) fails the policy, named', async () => {
    const st = statementOf(first);
    const nonce = buildQuoteNonce(
      st.predicate.runDetails.metadata.invocationId,
      st.predicate.buildDefinition.externalParameters.spec.digest.sha256,
    );
    const other = new TpmAttester({ tcti: c.tcti, workDir: join(root, 'c-quote') });
    const q = await other.quote(nonce.toString('hex'), { bank: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 23] });
    const otherAk = tpmName(parseTpm2bPublic(fromBase64(q.akPublic))).toString('hex');
    // Honest fields: the record names TPM C's AK.
    const honest = await forge(first, (na) => {
      Object.assign(na, { akPublic: q.akPublic, akName: otherAk, quote: q.quote, pcrs: q.pcrs });
      na.quoteDigest = `sha256:${sha256(fromBase64(q.quote.attest))}`;
    });
    const v1 = await verify(first.artifacts![0]!.path, honest);
    expect(v1.code).toBe(1);
    expect(v1.message).toMatch(/AK_MISMATCH.*build quote from a different TPM/);
    // Lying fields: the attested AK's name and public key, TPM C's quote and signature.
    const lying = await forge(first, (na) => {
      Object.assign(na, { quote: q.quote, pcrs: q.pcrs });
      na.quoteDigest = `sha256:${sha256(fromBase64(q.quote.attest))}`;
    });
    const v2 = await verify(first.artifacts![0]!.path, lying);
    expect(v2.code).toBe(1);
    expect(v2.message).toMatch(/QUOTE_SIGNATURE_INVALID.*different TPM/);
  }, 120_000);

  it('an unattested runner: the run refuses to bind (exit 17), and its plain provenance fails the policy, named', async () => {
    const refused = await run(bareSocket, rvFile);
    expect(refused.code).toBe(17);
    expect(refused.error?.message).toMatch(/NODE_NOT_ATTESTED.*unattested runner/);
    expect(readdirSync(refused.out)).toEqual([]);
    const plain = await run(bareSocket);
    expect(plain.code).toBe(0);
    const v = await verify(plain.artifacts![0]!.path, plain.artifacts![0]!.provenance.bundle!);
    expect(v.code).toBe(1);
    expect(v.message).toMatch(/unattested builder/);
  }, 180_000);

  it('the agent quotes only over the nonce it derives itself, only for well-formed build ids', async () => {
    const build = { invocationId: 'run-1', specDigest: sha256('spec') };
    const ok = await requestAgentToken(agentSocket, { subject: RUNNER, buildQuote: build });
    const attest = parseQuoteAttest(ok.buildQuote);
    expect(attest.includes(buildQuoteNonce(build.invocationId, build.specDigest))).toBe(true);
    // No field lets a caller pick the nonce (e.g. an issuer's challenge), and malformed ids are refused.
    await expect(
      requestAgentToken(agentSocket, { subject: RUNNER, buildQuote: { ...build, nonce: 'ab'.repeat(32) } } as never),
    ).rejects.toThrow(/buildQuote must be/);
    await expect(
      requestAgentToken(agentSocket, { subject: RUNNER, buildQuote: { ...build, specDigest: 'xyz' } }),
    ).rejects.toThrow(/buildQuote must be/);
    // An agent that attested no node answers the token without a quote.
    expect((await requestAgentToken(bareSocket, { subject: RUNNER, buildQuote: build })).buildQuote).toBeUndefined();
  }, 60_000);

  it('an attested runner that skipped the build binding: its provenance fails the policy, named', async () => {
    const plain = await run(agentSocket);
    expect(plain.code).toBe(0);
    const v = await verify(plain.artifacts![0]!.path, plain.artifacts![0]!.provenance.bundle!);
    expect(v.code).toBe(1);
    expect(v.message).toMatch(/records no build quote/);
  }, 120_000);
});
