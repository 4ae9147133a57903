/**
 * Issue 10 §1: the CA's intermediate key and the log's signing key live in a PKCS#11 token (real SoftHSM2 in a
 * temp token dir), never in the data dir. `airlock up --ca-key pkcs11:… --log-key pkcs11:…`, sign with `airlock
 * sign` (stock @sigstore/sign), verify with stock @sigstore/verify; a wrong PIN and a missing object are clear
 * errors (exit 2) that never print the PIN. `airlock tlog serve --log-key pkcs11:…` runs the log alone on the token key.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createPublicKey, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { toolProblem, toolsAvailable } from '@airlock/testkit';
import type * as Pkcs11Types from 'pkcs11js';
import { runCli, startCli } from './helpers/cli.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '20261206';
const ok = toolsAvailable('PKCS#11 keys (softhsm2)', [
  toolProblem('softhsm2-util', ['--version']),
  existsSync(MODULE) ? undefined : `${MODULE} is missing (apt-get install softhsm2)`,
]);

const dir = mkdtempSync(join(tmpdir(), 'airlock-pkcs11-'));
const data = join(dir, 'plane');
const running: Array<{ stop: () => Promise<void> }> = [];
afterAll(async () => {
  for (const p of running) await p.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh SoftHSM2 token `airlock` with two P-256 key pairs generated inside it (`ca-key`, `log-key`). */
function initToken(): void {
  mkdirSync(join(dir, 'tokens'));
  writeFileSync(
    join(dir, 'softhsm2.conf'),
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\n`,
  );
  process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
  const init = toolProblem('softhsm2-util', [
    '--init-token',
    '--free',
    '--label',
    'airlock',
    '--pin',
    PIN,
    '--so-pin',
    '12345678',
  ]);
  expect(init).toBeUndefined();
  const pk = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;
  const lib = new pk.PKCS11();
  lib.load(MODULE);
  lib.C_Initialize();
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === 'airlock')!;
    const session = lib.C_OpenSession(slot, pk.CKF_SERIAL_SESSION | pk.CKF_RW_SESSION);
    lib.C_Login(session, pk.CKU_USER, PIN);
    for (const [label, id] of [
      ['ca-key', 1],
      ['log-key', 2],
      ['issuer-key', 3],
    ] as const) {
      const common = [
        { type: pk.CKA_TOKEN, value: true },
        { type: pk.CKA_LABEL, value: label },
        { type: pk.CKA_ID, value: Buffer.from([id]) },
      ];
      lib.C_GenerateKeyPair(
        session,
        { mechanism: pk.CKM_EC_KEY_PAIR_GEN },
        [
          ...common,
          { type: pk.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
          { type: pk.CKA_VERIFY, value: true },
        ],
        [
          ...common,
          { type: pk.CKA_PRIVATE, value: true },
          { type: pk.CKA_SENSITIVE, value: true },
          { type: pk.CKA_SIGN, value: true },
        ],
      );
    }
    lib.C_Logout(session);
  } finally {
    lib.C_Finalize();
  }
}

const pinFile = join(dir, 'pin');
const uri = (object: string, pin = pinFile): string =>
  `pkcs11:token=airlock;object=${object};type=private?module-path=${MODULE}&pin-source=file:${pin}`;
const errorOf = (stdout: string): { code: string; message: string } =>
  (JSON.parse(stdout) as { error: { code: string; message: string } }).error;

describe.runIf(ok)('airlock up with the CA and log keys in a PKCS#11 token (SoftHSM2)', () => {
  it(
    'signs with stock @sigstore/sign and verifies with stock @sigstore/verify; no key file in the data dir',
    { timeout: 180_000 },
    async () => {
      initToken();
      writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
      const plane = await startCli(
        ['up', '--data', data, '--ca-key', uri('ca-key'), '--log-key', uri('log-key'), '--json'],
        (out) => out.trim().endsWith('}'),
      );
      running.push(plane);
      expect(plane.stdout()).not.toContain(PIN);
      const file = join(dir, 'artifact.txt');
      const artifact = Buffer.from('signed through a token\n');
      writeFileSync(file, artifact);
      const r = await runCli(['sign', file, '--data', data, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);

      const endpoints = JSON.parse(readFileSync(join(data, 'endpoints.json'), 'utf8')) as {
        identityIssuerUrl: string;
        trustDomain: string;
      };
      const root = TrustedRoot.fromJSON(JSON.parse(readFileSync(join(data, 'trusted_root.json'), 'utf8')));
      const verifier = new Verifier(toTrustMaterial(root), {
        ctlogThreshold: 0,
        tlogThreshold: 1,
        timestampThreshold: 1,
      });
      const bundle = bundleFromJSON(JSON.parse(readFileSync(`${file}.sigstore.json`, 'utf8')) as SerializedBundle);
      expect(() =>
        verifier.verify(toSignedEntity(bundle, artifact), {
          subjectAlternativeName: `spiffe://${endpoints.trustDomain}/airlock/cli`,
          extensions: { issuer: endpoints.identityIssuerUrl },
        }),
      ).not.toThrow();

      // The CA and log keys are nowhere in the data dir: only the chain certificates.
      expect(readdirSync(join(data, 'ca')).sort()).toEqual(['intermediate.pem', 'root.pem']);
      expect(existsSync(join(data, 'tlog-signing-key.pem'))).toBe(false);
      await plane.stop();

      // Restart: the chain is loaded (not regenerated) and must carry the token key; the trusted root is unchanged.
      const rootBefore = readFileSync(join(data, 'trusted_root.json'), 'utf8');
      const again = await startCli(
        ['up', '--data', data, '--ca-key', uri('ca-key'), '--log-key', uri('log-key'), '--json'],
        (out) => out.trim().endsWith('}'),
      );
      running.push(again);
      expect(readFileSync(join(data, 'trusted_root.json'), 'utf8')).toBe(rootBefore);
      const second = await runCli(['sign', file, '--data', data, '--bundle', join(dir, 'second.json'), '--json']);
      expect(second.code, second.stdout + second.stderr).toBe(0);
      await again.stop();

      // Another token key as the CA key does not match the recorded intermediate; without --ca-key there is no key.
      const swapped = await runCli(['up', '--data', data, '--ca-key', uri('log-key'), '--json']);
      expect(swapped.code, swapped.stdout + swapped.stderr).toBe(2); // the operator's key input, not "unavailable"
      expect(errorOf(swapped.stdout).code).toBe('CA_KEY_INVALID');
      expect(errorOf(swapped.stdout).message).toContain('does not match the intermediate certificate');
      const fileCa = await runCli(['up', '--data', data, '--json']);
      expect(fileCa.code, fileCa.stdout + fileCa.stderr).toBe(2);
      expect(errorOf(fileCa.stdout).message).toContain('missing root-key.pem, intermediate-key.pem');
    },
  );

  it(
    'airlock tlog serve --log-key pkcs11:… signs checkpoints with the token key; no key file in its data dir',
    { timeout: 60_000 },
    async () => {
      const logData = join(dir, 'tlog-only');
      const log = await startCli(
        ['tlog', 'serve', '--data', logData, '--listen', '127.0.0.1:0', '--log-key', uri('log-key'), '--json'],
        (out) => out.trim().endsWith('}'),
      );
      running.push(log);
      const started = JSON.parse(log.stdout()) as { url: string; publicKey: string };
      expect(log.stdout()).not.toContain(PIN);
      // The same key the plane's trusted root names for its log (from `up --log-key` above): the token's.
      const root = JSON.parse(readFileSync(join(data, 'trusted_root.json'), 'utf8')) as {
        tlogs: Array<{ publicKey: { rawBytes: string } }>;
      };
      const tokenSpki = Buffer.from(root.tlogs[0]!.publicKey.rawBytes, 'base64');
      expect(createPublicKey(started.publicKey).export({ format: 'der', type: 'spki' }).equals(tokenSpki)).toBe(true);
      // A checkpoint signed now verifies under that key.
      const res = await fetch(`${started.url}/api/v1/log`);
      const note = ((await res.json()) as { signedTreeHead: string }).signedTreeHead;
      const split = note.indexOf('\n\n');
      const body = note.slice(0, split + 1);
      const sigLine = note.slice(split + 2).split('\n')[0]!;
      const sig = Buffer.from(sigLine.split(' ').pop()!, 'base64').subarray(4);
      expect(verify('sha256', Buffer.from(body), createPublicKey(started.publicKey), sig)).toBe(true);
      expect(readdirSync(logData).filter((f) => f.includes('key'))).toEqual([]);
      await log.stop();

      // A malformed URI is the operator's input error: exit 2.
      const bad = await runCli(['tlog', 'serve', '--data', logData, '--log-key', 'pkcs11:nonsense', '--json']);
      expect(bad.code, bad.stdout + bad.stderr).toBe(2);
      expect(errorOf(bad.stdout).code).toMatch(/^PLANE_PKCS11_/);
    },
  );

  it(
    'up --identity-key pkcs11:…: no issuer key file, break-glass minting refused; the agent signs with the token key',
    { timeout: 120_000 },
    async () => {
      const plane = join(dir, 'plane-issuer');
      const up = await startCli(['up', '--data', plane, '--identity-key', uri('issuer-key'), '--json'], (out) =>
        out.trim().endsWith('}'),
      );
      running.push(up);
      expect(existsSync(join(plane, 'identity', 'signing-key.pem'))).toBe(false);
      const subject = 'spiffe://airlock.internal/airlock/cli';
      // The old forging path: read the key file and mint. There is no file, and no second key is made.
      const token = await runCli([
        'identity',
        'token',
        '--data',
        plane,
        '--subject',
        subject,
        '--break-glass',
        '--json',
      ]);
      expect(token.code, token.stdout + token.stderr).toBe(2);
      expect(errorOf(token.stdout).code).toBe('IDENTITY_KEY_IN_TOKEN');
      const file = join(dir, 'issuer-artifact.txt');
      writeFileSync(file, 'signed with a token-held issuer key\n');
      const minted = await runCli(['sign', file, '--data', plane, '--subject', subject, '--json'], {
        env: { SIGSTORE_ID_TOKEN: '', AIRLOCK_AGENT_SOCKET: '' },
      });
      expect(minted.code, minted.stdout + minted.stderr).not.toBe(0);
      expect(errorOf(minted.stdout).message).toContain('lives in a PKCS#11 token');
      expect(existsSync(join(plane, 'identity', 'signing-key.pem'))).toBe(false);

      // The agent holds the token key: a registered caller signs, and the CA accepts the token-signed JWT.
      const entries = join(dir, 'entries.json');
      writeFileSync(
        entries,
        JSON.stringify({
          entries: [
            {
              spiffeId: subject,
              selectors: [`unix:uid:${process.getuid!()}`, `unix:path:${realpathSync(process.execPath)}`],
            },
          ],
        }),
      );
      const socket = join(dir, 'agent.sock');
      const agent = await startCli(
        [
          ...['identity', 'agent', '--socket', socket, '--entries', entries, '--data', plane],
          '--identity-key',
          uri('issuer-key'),
          '--json',
        ],
        (out) => out.trim().endsWith('}'),
      );
      running.push(agent);
      const signed = await runCli(['sign', file, '--data', plane, '--agent-socket', socket, '--json']);
      expect(signed.code, signed.stdout + signed.stderr).toBe(0);
      expect(JSON.parse(signed.stdout)).toMatchObject({ ok: true, signer: { subjectAlternativeName: subject } });
      await agent.stop();
      await up.stop();
    },
  );

  it('a wrong PIN is a clear error (exit 2) that never prints the PIN', { timeout: 60_000 }, async () => {
    const wrong = join(dir, 'wrong-pin');
    writeFileSync(wrong, '99999999\n', { mode: 0o600 });
    const r = await runCli(['up', '--data', join(dir, 'other'), '--ca-key', uri('ca-key', wrong), '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(errorOf(r.stdout)).toMatchObject({ code: 'PLANE_PKCS11_LOGIN' });
    expect(errorOf(r.stdout).message).toContain('the PIN is incorrect');
    expect(r.stdout + r.stderr).not.toContain('99999999');
    expect(r.stdout + r.stderr).not.toContain(PIN);
  });

  it(
    'a URI naming a missing object, or carrying pin-value, is a clear error (exit 2)',
    { timeout: 60_000 },
    async () => {
      const missing = await runCli(['up', '--data', join(dir, 'other'), '--ca-key', uri('no-such-key'), '--json']);
      expect(missing.code, missing.stdout + missing.stderr).toBe(2);
      expect(errorOf(missing.stdout)).toMatchObject({ code: 'PLANE_PKCS11_OBJECT' });
      expect(errorOf(missing.stdout).message).toContain('object=no-such-key');
      expect(errorOf(missing.stdout).message).toContain('no private key object matches');

      const inline = `pkcs11:token=airlock;object=ca-key?module-path=${MODULE}&pin-value=${PIN}`;
      const r = await runCli(['up', '--data', join(dir, 'other'), '--ca-key', inline, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(errorOf(r.stdout)).toMatchObject({ code: 'PLANE_PKCS11_URI' });
      expect(errorOf(r.stdout).message).toContain('pin-value is refused');
      expect(r.stdout + r.stderr).not.toContain(PIN);
    },
  );
});
