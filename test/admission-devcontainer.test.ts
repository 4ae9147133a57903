/**
 * The Dev Containers integration (issue 9 §2): fixtures/devcontainer/.devcontainer/devcontainer.json's
 * `initializeCommand` run the way Dev Containers runs it — the JSON parsed, `${localEnv:VAR}` and
 * `${localWorkspaceFolder}` substituted, the string run by `/bin/sh -c` in the workspace folder with `airlock` on
 * PATH — against the admission world (a real trust plane, a real docker-registry, images built and signed by
 * `airlock run`). The runner-signed image starts (exit 0, `ALLOW:`), the unsigned one and a tag moved onto an
 * unsigned image are refused (exit 1, one `REFUSE:` line), and with the registry down the start is refused with
 * exit 3. Skips (printing why) without docker-registry, skopeo, git, bwrap or strace unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import {
  admissionWorldProblems,
  buildAdmissionWorld,
  makePki,
  opensslProblem,
  toolsAvailable,
  workloadReview,
  type AdmissionWorld,
} from '@airlock/testkit';
import { CLI, REPO_ROOT, startCli } from './helpers/cli.js';

const available = toolsAvailable('Dev Containers workspace check', [...admissionWorldProblems(), opensslProblem()]);

function post(url: string, ca: Buffer, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

interface DevContainer {
  image: string;
  initializeCommand: string;
}

/** Dev Containers' variable substitution for the host side (containers.dev json_reference "Variables"). */
function substitute(text: string, env: Record<string, string>, workspace: string): string {
  return text
    .replace(
      /\$\{localEnv:([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}/g,
      (_m, name: string, dflt?: string) => env[name] ?? dflt ?? '',
    )
    .replace(/\$\{localWorkspaceFolder\}/g, workspace);
}

function runInitializeCommand(
  workspace: string,
  env: Record<string, string>,
  bin: string,
): Promise<{ code: number | null; stdout: string; stderr: string; command: string }> {
  const config = JSON.parse(
    readFileSync(join(workspace, '.devcontainer', 'devcontainer.json'), 'utf8'),
  ) as DevContainer;
  const command = substitute(config.initializeCommand, env, workspace);
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: workspace,
      env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, command }));
  });
}

describe.skipIf(!available)('Dev Containers initializeCommand runs `airlock admit workspace`', () => {
  let world: AdmissionWorld;
  let workspace: string;
  let bin: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    world = await buildAdmissionWorld({ cli: CLI, progress: (m) => process.stderr.write(`world: ${m}\n`) });
    workspace = join(world.dir, 'workspace');
    cpSync(join(REPO_ROOT, 'fixtures', 'devcontainer'), workspace, { recursive: true });
    // `airlock` on PATH, as an installed CLI would be.
    bin = join(world.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'airlock'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'airlock'), 0o755);
    const registries = join(world.dir, 'registries.yaml');
    writeFileSync(registries, `registries:\n  '${world.registry.host}': { plainHttp: true }\n`);
    env = { AIRLOCK_TRUSTED_ROOT: world.trustedRootPath, AIRLOCK_REGISTRY_CONFIG: registries };
  }, 1_800_000);

  afterAll(async () => {
    await world?.close();
  });

  it('the fixture is a devcontainer.json whose image and checked image are the same variable', () => {
    const config = JSON.parse(
      readFileSync(join(workspace, '.devcontainer', 'devcontainer.json'), 'utf8'),
    ) as DevContainer;
    expect(config.image).toBe('${localEnv:AIRLOCK_WORKSPACE_IMAGE}');
    expect(config.initializeCommand).toMatch(
      /^airlock admit workspace --image "\$\{localEnv:AIRLOCK_WORKSPACE_IMAGE\}" /,
    );
  });

  it('the runner-signed image: exit 0, one ALLOW line', async () => {
    const r = await runInitializeCommand(
      workspace,
      { ...env, AIRLOCK_WORKSPACE_IMAGE: world.images.signed.reference },
      bin,
    );
    expect(r.code, `${r.command}\n${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toMatch(/^ALLOW: /);
  }, 300_000);

  it('the unsigned image: exit 1, one REFUSE line naming the image', async () => {
    const r = await runInitializeCommand(
      workspace,
      { ...env, AIRLOCK_WORKSPACE_IMAGE: world.images.unsigned.reference },
      bin,
    );
    expect(r.code, `${r.command}\n${r.stdout}${r.stderr}`).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toMatch(/^REFUSE: /);
    expect(r.stdout).toContain(world.images.unsigned.repository);
  }, 300_000);

  it('a tag moved from the signed image onto an unsigned one: refused', async () => {
    const r = await runInitializeCommand(
      workspace,
      { ...env, AIRLOCK_WORKSPACE_IMAGE: world.images.retagged.reference },
      bin,
    );
    expect(r.code, `${r.command}\n${r.stdout}${r.stderr}`).toBe(1);
    expect(r.stdout).toMatch(/^REFUSE: /);
  }, 300_000);

  it('the same check over HTTP: `airlock admission serve` answers POST /workspace, /validate and /mutate', async () => {
    const pkiDir = join(world.dir, 'webhook-pki');
    mkdirSync(pkiDir);
    const pki = makePki(pkiDir);
    const ca = readFileSync(pki.caFile);
    const server = await startCli(
      [
        ...['admission', 'serve', '--policy', join(workspace, '.devcontainer', 'admission-policy.yaml')],
        ...['--trusted-root', world.trustedRootPath, '--registry-config', env.AIRLOCK_REGISTRY_CONFIG!],
        ...['--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--listen', '127.0.0.1:0', '--json'],
      ],
      (out) => out.trim().endsWith('}'),
      120_000,
    );
    try {
      const { url } = JSON.parse(server.stdout()) as { url: string };
      const signed = world.images.signed;
      const allowed = await post(`${url}/workspace`, ca, { image: signed.reference });
      expect(allowed.status).toBe(200);
      expect(allowed.json).toMatchObject({ allowed: true, image: { digest: signed.digest, verdict: 'PASS' } });
      const refused = await post(`${url}/workspace`, ca, { image: world.images.unsigned.reference });
      expect(refused.json).toMatchObject({ allowed: false, image: { verdict: 'FAIL' } });

      const review = workloadReview('Deployment', { containers: [signed.reference] });
      const validate = (await post(`${url}/validate`, ca, review)).json.response as Record<string, unknown>;
      expect(validate).toMatchObject({ uid: review.request.uid, allowed: true });
      expect(validate.auditAnnotations).toMatchObject({ verdict: 'allow' });
      const mutate = (await post(`${url}/mutate`, ca, review)).json.response as { allowed: boolean; patch: string };
      expect(mutate.allowed).toBe(true);
      const patch = JSON.parse(Buffer.from(mutate.patch, 'base64').toString('utf8')) as { value: string }[];
      expect(patch.map((p) => p.value)).toEqual([expect.stringContaining(`@${signed.digest}`)]);
      const unsigned = workloadReview('Deployment', { containers: [world.images.unsigned.reference] });
      const denied = (await post(`${url}/validate`, ca, unsigned)).json.response as Record<string, unknown>;
      expect(denied).toMatchObject({ uid: unsigned.request.uid, allowed: false });
    } finally {
      await server.stop();
    }
  }, 300_000);

  it('the registry down: the start is refused with exit 3 (unreachable), never allowed', async () => {
    await world.registry.stop();
    const r = await runInitializeCommand(
      workspace,
      { ...env, AIRLOCK_WORKSPACE_IMAGE: world.images.signed.reference },
      bin,
    );
    expect(r.code, `${r.command}\n${r.stdout}${r.stderr}`).toBe(3);
    expect(r.stdout).toMatch(/^REFUSE: /);
  }, 300_000);
});
