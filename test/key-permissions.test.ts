/**
 * Issue 10 §1: the trust plane's private keys (issuer, CA, log) must be 0600 and owned by the plane's own user;
 * the plane refuses to start otherwise, naming the file and its mode but never its content. Minting a token from
 * the issuer key file (`airlock identity token`) is an admin break-glass path that needs `--break-glass`.
 */
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTrustPlane } from '@airlock/plane';
import { runCli, startCli } from './helpers/cli.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A plane data dir whose keys exist (one clean start and stop). */
async function initialisedPlane(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keyperm-'));
  dirs.push(dir);
  const plane = await startTrustPlane({ dataDir: dir });
  await plane.close();
  return dir;
}

async function startError(dir: string): Promise<{ code?: string; message: string }> {
  try {
    const plane = await startTrustPlane({ dataDir: dir });
    await plane.close();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('the plane started');
}

const KEYS = [
  { what: 'identity issuer key', rel: 'identity/signing-key.pem', code: 'IDENTITY_KEY_PERMISSIONS' },
  { what: 'CA intermediate key', rel: 'ca/intermediate-key.pem', code: 'CA_KEY_PERMISSIONS' },
  { what: 'CA root key', rel: 'ca/root-key.pem', code: 'CA_KEY_PERMISSIONS' },
  { what: 'log signing key', rel: 'tlog-signing-key.pem', code: 'TLOG_SIGNING_KEY_PERMISSIONS' },
  { what: 'timestamp authority key', rel: 'tsa/tsa-key.pem', code: 'TSA_KEY_PERMISSIONS' },
];
const isRoot = process.getuid?.() === 0;

describe('trust plane key files', () => {
  for (const k of KEYS) {
    it(`refuses to start with a group/world-readable ${k.what}, naming file and mode only`, async () => {
      const dir = await initialisedPlane();
      const file = join(dir, k.rel);
      const pem = readFileSync(file, 'utf8');
      chmodSync(file, 0o644);
      const err = await startError(dir);
      expect(err.code).toBe(k.code);
      expect(err.message).toContain(file);
      expect(err.message).toContain('0644');
      expect(err.message).not.toContain('PRIVATE KEY');
      expect(err.message).not.toContain(pem.split('\n')[1]!.slice(0, 20));
      chmodSync(file, 0o600); // back to private: the same plane starts again
      const plane = await startTrustPlane({ dataDir: dir });
      await plane.close();
    });

    it.skipIf(!isRoot)(`refuses a ${k.what} owned by another user (0600 but not the plane's)`, async () => {
      const dir = await initialisedPlane();
      const file = join(dir, k.rel);
      chownSync(file, 1500, 1500);
      const err = await startError(dir);
      expect(err.code).toBe(k.code);
      expect(err.message).toContain(file);
      expect(err.message).toMatch(/owned by uid 1500/);
    });
  }
});

describe('airlock identity token is break-glass only', () => {
  it('refuses to mint from the key file without --break-glass (exit 2), mints and logs loudly with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-breakglass-'));
    dirs.push(dir);
    const up = await startCli(
      ['up', '--data', dir, '--json'],
      (o) => o.includes('"tlogUrl"') && o.trim().endsWith('}'),
    );
    try {
      const subject = 'spiffe://airlock.internal/airlock/runner';
      const refused = await runCli(['identity', 'token', '--data', dir, '--subject', subject, '--json']);
      expect(refused.code, refused.stdout + refused.stderr).toBe(2);
      const body = JSON.parse(refused.stdout) as { ok: boolean; error: { code: string; message: string } };
      expect(body.ok).toBe(false);
      expect(body.error.code).toBe('IDENTITY_BREAK_GLASS_REQUIRED');
      expect(body.error.message).toMatch(/--break-glass/);
      expect(body.error.message).toMatch(/agent/);

      const minted = await runCli(['identity', 'token', '--data', dir, '--subject', subject, '--break-glass']);
      expect(minted.code, minted.stderr).toBe(0);
      expect(minted.stdout.trim().split('.')).toHaveLength(3);
      expect(minted.stderr).toMatch(/BREAK-GLASS/);
      expect(minted.stderr).toContain(subject);
      expect(minted.stderr).not.toContain(minted.stdout.trim()); // the token itself is never logged
    } finally {
      await up.stop();
    }
  });
});
