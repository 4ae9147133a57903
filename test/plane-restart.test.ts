/**
 * Issue 7 acceptance, stable identities: `airlock up --data D` as a real child process; sign; stop (SIGTERM); every
 * command that reads endpoints.json now exits 3 "trust plane not running"; restart with the same --data; sign
 * again. Both bundles verify under ONE identity policy (same issuer URL) with stock @sigstore/verify and with
 * `airlock verify`, and the trusted root (log and CA URLs) is unchanged. Then the port rules: a contradicting
 * port flag is refused (2) unless --reassign-ports, and a recorded port that is taken is a clear error (3).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { runCli, startCli } from './helpers/cli.js';

interface Endpoints {
  tlogUrl: string;
  caUrl: string;
  identityIssuerUrl: string;
  trustDomain: string;
  pid: number;
  state?: string;
}

const dir = mkdtempSync(join(tmpdir(), 'airlock-restart-'));
const data = join(dir, 'plane');
const running: Array<{ stop: () => Promise<void> }> = [];
afterAll(async () => {
  for (const p of running) await p.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function up(extra: string[] = []): Promise<{ stop: () => Promise<void> }> {
  const p = await startCli(['up', '--data', data, ...extra, '--json'], (out) => out.trim().endsWith('}'));
  running.push(p);
  return p;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const endpoints = (): Endpoints => readJson<Endpoints>(join(data, 'endpoints.json'));
const errorOf = (stdout: string): { code: string; message: string } =>
  (JSON.parse(stdout) as { error: { code: string; message: string } }).error;

async function sign(name: string): Promise<{ file: string; bundle: string; artifact: Buffer }> {
  const file = join(dir, name);
  const artifact = Buffer.from(`artifact ${name}\n`);
  writeFileSync(file, artifact);
  const r = await runCli(['sign', file, '--data', data, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return { file, bundle: `${file}.sigstore.json`, artifact };
}

describe('airlock up --data D: restart keeps every URL in certificates, roots and policies', () => {
  it('sign, stop, refuse with exit 3, restart, sign; one policy verifies both', { timeout: 300_000 }, async () => {
    const first = await up();
    const before = endpoints();
    const rootBefore = readFileSync(join(data, 'trusted_root.json'), 'utf8');
    expect(before.state).toBe('running');
    const one = await sign('one.txt');

    // A second plane on the same data dir is refused, not started beside the first.
    const twice = await runCli(['up', '--data', data, '--json']);
    expect(twice.code, twice.stdout + twice.stderr).toBe(3);
    expect(errorOf(twice.stdout).code).toBe('PLANE_ALREADY_RUNNING');

    await first.stop();
    expect(endpoints().state).toBe('stopped');
    const stopped = await runCli(['sign', one.file, '--data', data, '--bundle', join(dir, 'x.json'), '--json']);
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(3);
    expect(errorOf(stopped.stdout)).toMatchObject({ code: 'PLANE_NOT_RUNNING' });
    expect(errorOf(stopped.stdout).message).toContain('trust plane not running');
    const token = await runCli([
      'identity',
      'token',
      '--data',
      data,
      '--subject',
      'spiffe://airlock.internal/x',
      '--break-glass',
    ]);
    expect(token.code, token.stderr).toBe(3);
    expect(token.stderr).toContain('trust plane not running');

    // A crash leaves state "running" with a dead pid: still "not running", exit 3.
    writeFileSync(join(data, 'endpoints.json'), JSON.stringify({ ...endpoints(), state: 'running' }));
    const crashed = await runCli(['sign', one.file, '--data', data, '--bundle', join(dir, 'y.json'), '--json']);
    expect(crashed.code, crashed.stdout + crashed.stderr).toBe(3);
    expect(errorOf(crashed.stdout).message).toMatch(/trust plane not running.*is gone/);

    const second = await up();
    const after = endpoints();
    expect(after.pid).not.toBe(before.pid);
    expect({ ...after, pid: 0, startedAt: '' }).toMatchObject({ ...before, pid: 0, startedAt: '' });
    expect(readFileSync(join(data, 'trusted_root.json'), 'utf8')).toBe(rootBefore);
    const two = await sign('two.txt');

    // ONE policy: the identity and the issuer URL as recorded before the restart.
    const identity = `spiffe://${before.trustDomain}/airlock/cli`;
    const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(rootBefore)));
    const verifier = new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 1 });
    const policy = {
      subjectAlternativeName: identity,
      extensions: { issuer: before.identityIssuerUrl },
    };
    for (const s of [one, two]) {
      const bundle = bundleFromJSON(readJson<SerializedBundle>(s.bundle));
      expect(() => verifier.verify(toSignedEntity(bundle, s.artifact), policy)).not.toThrow();
      const v = await runCli([
        'verify',
        s.file,
        '--bundle',
        s.bundle,
        '--data',
        data,
        '--certificate-identity',
        identity,
        '--certificate-oidc-issuer',
        before.identityIssuerUrl,
        '--json',
      ]);
      expect(v.code, v.stdout + v.stderr).toBe(0);
    }
    await second.stop();
  });

  it('refuses a port flag that contradicts the recorded port (2) unless --reassign-ports', async () => {
    const recorded = readJson<{ ports: { tlog: number } }>(join(data, 'plane.json')).ports.tlog;
    const other = recorded === 65000 ? 65001 : 65000;
    const r = await runCli(['up', '--data', data, '--tlog-port', String(other), '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(errorOf(r.stdout)).toMatchObject({ code: 'PLANE_PORT_CONFLICT' });
    expect(errorOf(r.stdout).message).toContain(String(recorded));
    // The same port as recorded is no conflict.
    const same = await up(['--tlog-port', String(recorded)]);
    expect(new URL(endpoints().tlogUrl).port).toBe(String(recorded));
    await same.stop();
  });

  it('names the taken port instead of picking a new one (3)', async () => {
    const { ca } = readJson<{ ports: { ca: number } }>(join(data, 'plane.json')).ports;
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(ca, '127.0.0.1', r));
    try {
      const r = await runCli(['up', '--data', data, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(errorOf(r.stdout)).toMatchObject({ code: 'PLANE_PORT_IN_USE' });
      expect(errorOf(r.stdout).message).toContain(String(ca));
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()));
    }
    // Nothing was re-recorded: the next start binds the same port again.
    expect(readJson<{ ports: { ca: number } }>(join(data, 'plane.json')).ports.ca).toBe(ca);
  });

  it('with --reassign-ports the flag wins and is recorded', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const free = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const moved = await up(['--tlog-port', String(free), '--reassign-ports']);
    expect(new URL(endpoints().tlogUrl).port).toBe(String(free));
    await moved.stop();
    expect(readJson<{ ports: { tlog: number } }>(join(data, 'plane.json')).ports.tlog).toBe(free);
  });
});
