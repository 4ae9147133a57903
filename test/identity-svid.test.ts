/**
 * Issue 10 §3: the workload attestation agent hands out X.509 SVIDs (Workload API X509SVIDResponse shape) with the
 * same kernel-based attestation as tokens. Real `airlock up`, real `airlock identity agent`, callers are real
 * processes as other uids: the registered one gets an SVID whose only URI SAN is its SPIFFE ID (chaining to the
 * plane's SPIFFE CA, key 0600 on disk), an unregistered one is refused and gets nothing, every answer is in the audit
 * log, and `airlock identity svid --watch` replaces the SVID with a new one before the old one expires.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestAgentX509Svid } from '@airlock/agent';
import { splitDerCertificates } from '@airlock/identity';
import { CLI, REPO_ROOT, startCli } from './helpers/cli.js';

const TD = 'airlock.internal';
const RUNNER = `spiffe://${TD}/airlock/runner`;
const ROOT_ID = `spiffe://${TD}/airlock/test-root`;
const NODE = realpathSync(process.execPath);
const isRoot = process.getuid?.() === 0;

let root: string;
let plane: string;
let socket: string;
let audit: string;
const stops: Array<() => Promise<void>> = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!isRoot) return;
  root = mkdtempSync(join(tmpdir(), 'airlock-svid-'));
  chmodSync(root, 0o755); // callers run as other uids and must reach the socket and their out dirs
  plane = join(root, 'plane');
  const up = await startCli(['up', '--data', plane, '--json'], (o) => o.trim().endsWith('}'));
  stops.push(up.stop);
  const entries = join(root, 'entries.json');
  writeFileSync(
    entries,
    JSON.stringify({
      entries: [
        // Short SVIDs so rotation happens within the test: re-fetch at half-life, i.e. ~10 s.
        { spiffeId: RUNNER, selectors: ['unix:uid:1500', `unix:path:${NODE}`], svidTtlSeconds: 20 },
        { spiffeId: ROOT_ID, selectors: ['unix:uid:0'] },
      ],
    }),
  );
  for (const [uid, d] of [
    [1500, 'u1500'],
    [1501, 'u1501'],
  ] as const) {
    mkdirSync(join(root, d), { mode: 0o700 });
    chownSync(join(root, d), uid, uid);
  }
  socket = join(root, 'agent.sock');
  audit = join(root, 'audit.jsonl');
  const agent = await startCli(
    ['identity', 'agent', '--socket', socket, '--entries', entries, '--data', plane, '--audit-log', audit, '--json'],
    (o) => o.trim().endsWith('}'),
  );
  stops.push(agent.stop);
}, 120_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of stops.splice(0).reverse()) await s();
  if (root) rmSync(root, { recursive: true, force: true });
});

function runAs(uid: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CLI, ...args], { uid, gid: uid, cwd: REPO_ROOT, env: { ...process.env, HOME: '/tmp' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const auditLines = (): Array<{ event: string; kind?: string; uid?: number; spiffeId?: string; serial?: string }> =>
  readFileSync(audit, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string });

const planeBundle = (): X509Certificate => new X509Certificate(readFileSync(join(plane, 'svid-ca', 'ca.pem')));

describe.skipIf(!isRoot)('X.509 SVIDs from the identity agent', () => {
  it(
    'the registered workload gets an SVID for its ID (files written, key 0600, audit-logged)',
    { timeout: 60_000 },
    async () => {
      const out = join(root, 'u1500', 'runner-svid');
      const r = await runAs(1500, ['identity', 'svid', '--socket', socket, '--out-dir', out, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as {
        ok: boolean;
        spiffeId: string;
        expiresAt: string;
        files: Record<string, string>;
      };
      expect(summary).toMatchObject({ ok: true, spiffeId: RUNNER });

      const leaf = new X509Certificate(readFileSync(summary.files.cert!));
      expect(leaf.subjectAltName).toBe(`URI:${RUNNER}`);
      expect(leaf.ca).toBe(false);
      expect(leaf.verify(planeBundle().publicKey)).toBe(true);
      expect(new X509Certificate(readFileSync(summary.files.bundle!)).fingerprint256).toBe(
        planeBundle().fingerprint256,
      );
      expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(summary.files.key!)))).toBe(true);
      expect(statSync(summary.files.key!).mode & 0o777).toBe(0o600);
      expect(statSync(summary.files.json!).mode & 0o777).toBe(0o600);
      expect(statSync(summary.files.key!).uid).toBe(1500);
      expect(new Date(leaf.validTo).getTime()).toBe(new Date(summary.expiresAt).getTime());
      // The Workload-API JSON carries the same leaf, its key and the bundle.
      const json = JSON.parse(readFileSync(summary.files.json!, 'utf8')) as Record<string, string>;
      expect(Object.keys(json).sort()).toEqual([
        'bundle',
        'expires_at',
        'hint',
        'spiffe_id',
        'x509_svid',
        'x509_svid_key',
      ]);
      expect(splitDerCertificates(Buffer.from(json.x509_svid!, 'base64'))[0]!.equals(leaf.raw)).toBe(true);

      const issued = auditLines().filter((l) => l.event === 'issued' && l.kind === 'x509-svid');
      expect(issued).toContainEqual(
        expect.objectContaining({ uid: 1500, spiffeId: RUNNER, serial: leaf.serialNumber }),
      );
    },
  );

  it(
    'an unregistered caller is refused (exit 2, names the caller), gets no files, and the refusal is logged',
    { timeout: 60_000 },
    async () => {
      const out = join(root, 'u1501', 'intruder-svid');
      const r = await runAs(1501, [
        'identity',
        'svid',
        '--socket',
        socket,
        '--out-dir',
        out,
        '--subject',
        RUNNER,
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      const body = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
      expect(body.ok).toBe(false);
      expect(body.error.code).toBe('AGENT_NO_MATCH');
      expect(body.error.message).toMatch(/caller uid 1501 .*matches no registration entry/);
      expect(existsSync(join(out, 'svid.pem'))).toBe(false);
      expect(auditLines()).toContainEqual(expect.objectContaining({ event: 'refused', kind: 'x509-svid', uid: 1501 }));
      expect(auditLines().filter((l) => l.event === 'issued' && l.uid === 1501)).toEqual([]);
    },
  );

  it('a workload that brings its own key gets an SVID for that key and no key back', { timeout: 30_000 }, async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyPem = keys.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const svid = await requestAgentX509Svid(socket, { publicKeyPem });
    expect(svid.spiffe_id).toBe(ROOT_ID);
    expect(svid.x509_svid_key).toBeUndefined();
    const leaf = new X509Certificate(splitDerCertificates(svid.x509_svid)[0]!);
    expect(leaf.checkPrivateKey(keys.privateKey)).toBe(true);
    // A private key in place of the public one is refused (the request would already have leaked it).
    const priv = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await expect(requestAgentX509Svid(socket, { publicKeyPem: priv })).rejects.toMatchObject({
      code: 'AGENT_REQUEST_INVALID',
    });
  });

  it(
    'identity svid --watch rotates: a new certificate arrives before the old one expires',
    { timeout: 60_000 },
    async () => {
      const out = join(root, 'u1500', 'rotating-svid');
      const child = spawn(NODE, [CLI, 'identity', 'svid', '--socket', socket, '--out-dir', out, '--watch', '--json'], {
        uid: 1500,
        gid: 1500,
        cwd: REPO_ROOT,
        env: { ...process.env, HOME: '/tmp' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const certFile = join(out, 'svid.pem');
      const read = (): X509Certificate | undefined => {
        try {
          return new X509Certificate(readFileSync(certFile));
        } catch {
          return undefined;
        }
      };
      let first: X509Certificate | undefined;
      while (!(first = read())) await new Promise((r) => setTimeout(r, 50));
      let next: X509Certificate | undefined;
      let seenAt = 0;
      for (;;) {
        const c = read();
        if (c && c.serialNumber !== first.serialNumber) {
          next = c;
          seenAt = Date.now();
          break;
        }
        expect(Date.now(), `no rotation before the first SVID expired; stderr: ${stderr}`).toBeLessThan(
          new Date(first.validTo).getTime(),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seenAt).toBeLessThan(new Date(first.validTo).getTime());
      expect(new Date(next.validTo).getTime()).toBeGreaterThan(new Date(first.validTo).getTime());
      expect(next.subjectAltName).toBe(`URI:${RUNNER}`);
      expect(next.checkPrivateKey(createPrivateKey(readFileSync(join(out, 'svid-key.pem'))))).toBe(true);
      expect(statSync(join(out, 'svid-key.pem')).mode & 0o777).toBe(0o600);
      // The watcher says so after it has replaced the files; on a loaded machine the line can reach us through the
      // pipe after the new certificate is seen on disk (a .ci/run under load failed here: '' did not contain it).
      while (!stderr.includes('rotated the X.509 SVID')) {
        expect(Date.now(), `rotation not logged; stderr: ${stderr}`).toBeLessThan(seenAt + 10_000);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  );
});
