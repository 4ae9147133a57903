/**
 * Issue 10 §1 / acceptance "forged identity": who can use the plane's keys.
 *   - A CA key that does not match the CA certificate is an input error of `airlock up` (exit 2, CA_KEY_INVALID
 *     naming the files), not "service unavailable" (3).
 *   - With the plane run by its own service user (keys 0600, owned by that user), the old forging path — another
 *     local user reading the issuer key file to mint the runner's token (`airlock identity token --break-glass`,
 *     `airlock sign --data … --subject …`) — is refused with a clear error, and nothing is signed.
 *   - Which identity may sign importable transfer bundles is the operator's configuration on `mirror import`: it
 *     has no default (a bundle from another identity is refused: sync-import-serve / mirror-faults tests).
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, runCli, startCli } from './helpers/cli.js';

const RUNNER = 'spiffe://airlock.internal/airlock/runner';
const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const tempDir = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
const errorOf = (stdout: string): { code: string; message: string } =>
  (JSON.parse(stdout) as { error: { code: string; message: string } }).error;

describe('airlock up: a CA key that does not match the CA certificate', () => {
  it('exits 2 (input error) with CA_KEY_INVALID naming the key and certificate', { timeout: 60_000 }, async () => {
    const data = join(tempDir('airlock-cakey-'), 'plane');
    const first = await startCli(['up', '--data', data, '--json'], (o) => o.trim().endsWith('}'));
    await first.stop();
    // Another P-256 key in place of the intermediate's (0600, as the plane requires): the chain no longer holds.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    });
    writeFileSync(join(data, 'ca', 'intermediate-key.pem'), other, { mode: 0o600 });
    const r = await runCli(['up', '--data', data, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(errorOf(r.stdout).code).toBe('CA_KEY_INVALID');
    expect(errorOf(r.stdout).message).toMatch(/intermediate key .*intermediate-key\.pem does not match certificate/);
  });
});

describe('mirror import: the bundle signer identity is operator configuration', () => {
  it('refuses to import without --sync-identity and --sync-issuer (exit 2), before reading the bundle', async () => {
    const d = tempDir('airlock-import-policy-');
    const root = join(d, 'trusted_root.json');
    writeFileSync(root, '{}');
    const bundle = join(d, 'b.tar');
    writeFileSync(bundle, 'not read');
    const base = ['mirror', 'import', bundle, '--store', join(d, 'store'), '--create', '--trusted-root', root];
    for (const extra of [
      [],
      ['--sync-identity', 'spiffe://airlock.internal/airlock/mirror-sync'],
      ['--sync-issuer', 'http://127.0.0.1:1'],
    ]) {
      const r = await runCli([...base, ...extra, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(errorOf(r.stdout).message).toContain('--sync-identity (or --sync-identity-regexp) and --sync-issuer');
      expect(existsSync(join(d, 'store'))).toBe(false);
    }
  });
});

function runAs(uid: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      uid,
      gid: uid,
      cwd: REPO_ROOT,
      env: { ...process.env, HOME: '/tmp', SIGSTORE_ID_TOKEN: '', AIRLOCK_AGENT_SOCKET: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!isRoot)('the plane run by its own key owner: the key-file path is closed to others', () => {
  const PLANE_UID = 1600;
  const OTHER_UID = 1500;

  it(
    'another user cannot mint the runner identity from the key file (break-glass or sign --subject)',
    { timeout: 120_000 },
    async () => {
      const root = tempDir('airlock-keyowner-');
      chmodSync(root, 0o755);
      const data = join(root, 'plane');
      mkdirSync(data, { mode: 0o755 });
      chownSync(data, PLANE_UID, PLANE_UID);
      // The plane runs as its service user, so its keys are created 0600 and owned by that user.
      const up = await new Promise<{ stop: () => Promise<void> }>((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, 'up', '--data', data, '--json'], {
          uid: PLANE_UID,
          gid: PLANE_UID,
          cwd: REPO_ROOT,
          env: { ...process.env, HOME: '/tmp' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => {
          out += d;
          if (out.trim().endsWith('}'))
            resolve({
              stop: () =>
                new Promise((r) => {
                  child.once('exit', () => r());
                  child.kill('SIGTERM');
                }),
            });
        });
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => reject(new Error(`up exited ${code}: ${out}${err}`)));
      });
      try {
        const work = join(root, 'work');
        mkdirSync(work, { mode: 0o755 });
        chownSync(work, OTHER_UID, OTHER_UID);
        const artifact = join(work, 'a.txt');
        writeFileSync(artifact, 'forged?\n');
        chownSync(artifact, OTHER_UID, OTHER_UID);

        const token = await runAs(OTHER_UID, [
          'identity',
          'token',
          '--data',
          data,
          '--subject',
          RUNNER,
          '--break-glass',
          '--json',
        ]);
        expect(token.code, token.stdout + token.stderr).not.toBe(0);
        expect(token.stdout).not.toMatch(/"token"/);
        expect(errorOf(token.stdout).code).toBe('IDENTITY_KEY_UNREADABLE');
        expect(errorOf(token.stdout).message).toMatch(/signing-key\.pem/);

        const bundle = join(work, 'a.sigstore.json');
        const sign = await runAs(OTHER_UID, [
          'sign',
          artifact,
          '--data',
          data,
          '--subject',
          RUNNER,
          '--bundle',
          bundle,
          '--json',
        ]);
        expect(sign.code, sign.stdout + sign.stderr).not.toBe(0);
        expect(errorOf(sign.stdout).message, sign.stdout).toMatch(/signing-key\.pem is not readable by uid 1500/);
        expect(existsSync(bundle)).toBe(false);
      } finally {
        await up.stop();
      }
    },
  );
});
