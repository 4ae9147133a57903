/**
 * The `airlock sign` / `attest` / `verify` CLI contract against a real trust plane (in-process, loopback):
 * sign tells the user the identity, issuer and verify command; bundles are never overwritten silently; the
 * bundle path is checked before anything is sent to the CA or the log; conflicting or invalid verify flags, a
 * bad --key file and a bundle missing a field are errors that say what is wrong.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { runCli } from './helpers/cli.js';

let dir: string;
let work: string;
let plane: RunningTrustPlane;
let subject: string;
let file: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sign-cli-'));
  work = join(dir, 'work');
  mkdirSync(work);
  plane = await startTrustPlane({ dataDir: join(dir, 'plane') });
  subject = `spiffe://${plane.endpoints.trustDomain}/ci/sign-cli`;
  file = join(work, 'artifact.txt');
  writeFileSync(file, 'an artifact\n');
  const r = await runCli(['sign', file, '--data', join(dir, 'plane'), '--subject', subject, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  bundle = (JSON.parse(r.stdout) as { bundle: string }).bundle;
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const data = (): string => join(dir, 'plane');

async function treeSize(): Promise<number> {
  const res = await fetch(`${plane.endpoints.tlogUrl}/api/v1/log`);
  return ((await res.json()) as { treeSize: number }).treeSize;
}

/** Splits a POSIX shell command line made of plain and single-quoted words. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/(?:[^\s']+|'(?:[^']|'\\'')*')+/g))
    words.push(m[0].replace(/'((?:[^']|'\\'')*)'/g, (_, q: string) => q.replace(/'\\''/g, "'")));
  return words;
}

function jsonError(stdout: string): { code: string; message: string } {
  return (JSON.parse(stdout) as { ok: boolean; error: { code: string; message: string } }).error;
}

describe('airlock sign', () => {
  it('prints the identity and issuer a verifier needs, and a verify command line that verifies', async () => {
    const f = join(work, 'told.txt');
    writeFileSync(f, 'tell me how to verify\n');
    const human = await runCli(['sign', f, '--data', data(), '--subject', subject]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`identity:  ${subject}`);
    expect(human.stdout).toContain(`issuer:    ${plane.endpoints.identityIssuerUrl}`);
    expect(human.stdout).toMatch(/verify with:\n {2}airlock verify /);

    const g = join(work, 'told-json.txt');
    writeFileSync(g, 'tell me in JSON\n');
    const r = await runCli(['sign', g, '--data', data(), '--subject', subject, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { signer: Record<string, string>; verifyCommand: string; bundle: string };
    expect(out.signer).toEqual({ subjectAlternativeName: subject, issuer: plane.endpoints.identityIssuerUrl });
    const words = shellWords(out.verifyCommand);
    expect(words.slice(0, 2)).toEqual(['airlock', 'verify']);
    expect(words).toEqual(expect.arrayContaining(['--certificate-identity', subject, '--bundle', out.bundle]));
    const v = await runCli([...words.slice(1), '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, signer: { subjectAlternativeName: subject } });
  });

  it('refuses to overwrite an existing bundle (exit 2, naming it) before contacting the log; --force overwrites', async () => {
    const before = readFileSync(bundle, 'utf8');
    const size = await treeSize();
    const r = await runCli(['sign', file, '--data', data(), '--subject', subject, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(jsonError(r.stdout).message).toContain(bundle);
    expect(jsonError(r.stdout).message).toContain('--force');
    expect(readFileSync(bundle, 'utf8')).toBe(before);
    expect(await treeSize()).toBe(size);

    const forced = await runCli(['sign', file, '--data', data(), '--subject', subject, '--force', '--json']);
    expect(forced.code, forced.stdout + forced.stderr).toBe(0);
    expect(readFileSync(bundle, 'utf8')).not.toBe(before);
    expect(await treeSize()).toBe(size + 1);
  });

  it('checks the bundle path is writable before anything reaches the CA or the log', async () => {
    const size = await treeSize();
    const notADir = join(work, 'plain-file');
    writeFileSync(notADir, 'x');
    for (const [out, why] of [
      [join(work, 'no-such-dir', 'out.sigstore.json'), 'does not exist'],
      [join(notADir, 'out.sigstore.json'), 'ENOTDIR'],
      [work, 'is a directory'],
    ] as const) {
      const r = await runCli(['sign', file, '--data', data(), '--subject', subject, '--bundle', out, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(jsonError(r.stdout)).toMatchObject({ code: 'USAGE', message: expect.stringContaining(out) });
      expect(jsonError(r.stdout).message).toContain(why);
    }
    expect(await treeSize()).toBe(size);
  });
});

describe('airlock attest', () => {
  it('writes FILE.intoto.sigstore.json by default, next to the signature bundle and without touching it', async () => {
    const predicate = join(work, 'predicate.json');
    writeFileSync(predicate, JSON.stringify({ builder: 'test' }));
    const before = readFileSync(bundle, 'utf8');
    const args = ['attest', file, '--predicate-type', 'https://airlock.dev/attestation/test/v1'];
    const r = await runCli([...args, '--predicate', predicate, '--data', data(), '--subject', subject, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { bundle: string; verifyCommand: string };
    expect(out.bundle).toBe(`${file}.intoto.sigstore.json`);
    expect(out.bundle).not.toBe(bundle);
    expect(readFileSync(bundle, 'utf8')).toBe(before);
    const v = await runCli(shellWords(out.verifyCommand).slice(1));
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // A second attest refuses too.
    const again = await runCli([...args, '--predicate', predicate, '--data', data(), '--subject', subject]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(out.bundle);
  });
});

describe('airlock verify: flag and input errors', () => {
  const base = (): string[] => ['verify', file, '--bundle', bundle, '--data', data(), '--json'];
  const issuer = (): string[] => ['--certificate-oidc-issuer', plane.endpoints.identityIssuerUrl];

  it('--certificate-identity with --certificate-identity-regexp is a usage error', async () => {
    const r = await runCli([
      ...base(),
      ...issuer(),
      '--certificate-identity',
      subject,
      '--certificate-identity-regexp',
      '.*',
    ]);
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('mutually exclusive'),
    });
  });

  it('an invalid regular expression is a usage error naming the flag', async () => {
    const r = await runCli([...base(), ...issuer(), '--certificate-identity-regexp', 'spiffe://(']);
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout).message).toContain('--certificate-identity-regexp');
    const i = await runCli([
      ...base(),
      '--certificate-identity',
      subject,
      '--certificate-oidc-issuer-regexp',
      'http://[',
    ]);
    expect(i.code).toBe(2);
    expect(jsonError(i.stdout).message).toContain('--certificate-oidc-issuer-regexp');
  });

  it('--certificate-oidc-issuer-regexp matches anchored, and is exclusive with --certificate-oidc-issuer', async () => {
    const id = ['--certificate-identity', subject];
    const ok = await runCli([...base(), ...id, '--certificate-oidc-issuer-regexp', 'http://127\\.0\\.0\\.1:[0-9]+']);
    expect(ok.code, ok.stdout).toBe(0);
    const prefix = await runCli([...base(), ...id, '--certificate-oidc-issuer-regexp', 'http://127\\.0\\.0\\.1']);
    expect(prefix.code).toBe(1);
    expect(jsonError(prefix.stdout).code).toBe('VERIFY_POLICY');
    const both = await runCli([...base(), ...id, ...issuer(), '--certificate-oidc-issuer-regexp', '.*']);
    expect(both.code).toBe(2);
    expect(jsonError(both.stdout).message).toContain('mutually exclusive');
  });

  it('a --key file that is not a PEM public key: exit 2 saying so, not an OpenSSL code', async () => {
    const notPem = join(work, 'not-a-key.pem');
    writeFileSync(notPem, 'hello\n');
    const priv = join(work, 'private.pem');
    writeFileSync(
      priv,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    for (const [key, says] of [
      [notPem, 'not a PEM public key'],
      [priv, 'private key'],
      [join(work, 'missing.pub'), 'cannot read'],
    ] as const) {
      const r = await runCli([...base(), '--key', key]);
      expect(r.code, r.stdout).toBe(2);
      expect(jsonError(r.stdout).message).toContain(says);
      expect(jsonError(r.stdout).message).toContain(key);
      expect(jsonError(r.stdout).message).not.toMatch(/DECODER|routines|error:[0-9A-F]{8}/);
    }
  });

  it('a bundle missing a field names the field', async () => {
    const b = JSON.parse(readFileSync(bundle, 'utf8')) as {
      verificationMaterial: { tlogEntries: Array<Record<string, unknown>> };
    };
    delete b.verificationMaterial.tlogEntries[0]!.inclusionProof;
    const broken = join(work, 'broken.sigstore.json');
    writeFileSync(broken, JSON.stringify(b));
    const r = await runCli([
      'verify',
      file,
      '--bundle',
      broken,
      '--data',
      data(),
      '--certificate-identity',
      subject,
      ...issuer(),
      '--json',
    ]);
    expect(r.code).toBe(1);
    expect(jsonError(r.stdout)).toMatchObject({
      code: 'VERIFY_BUNDLE_MALFORMED',
      message: expect.stringContaining('verificationMaterial.tlogEntries[0].inclusionProof'),
    });
  });
});
