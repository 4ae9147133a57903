/**
 * The log collects witness cosignatures (C2SP tlog-witness): `tlog serve --witness-url/--witness-vkey` asks
 * `tlog witness-serve` witnesses after each checkpoint and serves the checkpoint with their lines appended (HTTP and
 * the tile directory). A witness that is down or never answers does not block appends; a cosignature that does not
 * verify under the configured vkey is dropped; `tlog monitor --tiles --min-witnesses` sees the result.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cosignatureKeyId,
  parseCheckpoint,
  parseSignedNote,
  parseWitnessVkey,
  verifyCosignatures,
  witnessVkey,
} from '@airlock/tlog';
import { startForgingWitness, startHangingWitness, type FakeWitness } from '@airlock/testkit';
import { runCli, startCli } from './helpers/cli.js';

const dirs: string[] = [];
const procs: Array<{ stop: () => Promise<void> }> = [];
const fakes: FakeWitness[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop();
  for (const f of fakes) await f.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `airlock-wcollect-${tag}-`));
  dirs.push(d);
  return d;
};
const work = tmp('work');
let stderrs = '';

function witnessKeyFile(name: string) {
  const kp = generateKeyPairSync('ed25519');
  const file = join(work, `${name.replace(/\W/g, '_')}.pem`);
  writeFileSync(file, kp.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { name, file, vkey: witnessVkey(name, kp.publicKey) };
}

async function startJson<T>(args: string[]): Promise<T & { stop: () => Promise<void> }> {
  const p = await startCli([...args, '--json'], (out) => out.trim().endsWith('}'));
  procs.push(p);
  p.child.stderr!.on('data', (d: Buffer) => (stderrs += d.toString()));
  return { ...(JSON.parse(p.stdout()) as T), stop: p.stop };
}

const signKey = join(work, 'signer.pem');
writeFileSync(
  signKey,
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
  {
    mode: 0o600,
  },
);
async function logSomething(url: string, text: string): Promise<void> {
  const f = join(work, `${text.replace(/\W/g, '_')}.txt`);
  writeFileSync(f, text);
  const r = await runCli(['sign', f, '--key', signKey, '--rekor-url', url, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}

/** Polls the served checkpoint until it has `size` and cosignatures from all `names` (bounded wait, no timing claim). */
async function checkpointWith(url: string, size: number, keys: string[]): Promise<string> {
  const want = keys.map(parseWitnessVkey);
  let text = '';
  for (let i = 0; i < 600; i++) {
    text = await (await fetch(`${url}/api/v2/checkpoint`)).text();
    const cp = parseCheckpoint(parseSignedNote(text).note);
    if (cp.size === size && verifyCosignatures(text, want).length === want.length) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `checkpoint of size ${size} with ${keys.length} cosignature(s) never appeared; last:\n${text}\nstderr: ${stderrs}`,
  );
}

describe('the log collects witness cosignatures', () => {
  it(
    'two witnesses cosign; down, hanging and forging witnesses never block or pollute',
    { timeout: 240_000 },
    async () => {
      const data = tmp('log');
      const first = await startJson<{ url: string; origin: string; publicKey: string }>([
        'tlog',
        'serve',
        '--data',
        data,
      ]);
      await first.stop();
      const pub = join(work, 'log.pub');
      writeFileSync(pub, first.publicKey);

      const A = witnessKeyFile('witness.example/a');
      const B = witnessKeyFile('witness.example/b');
      const C = witnessKeyFile('witness.example/forger');
      const witness = (w: typeof A) =>
        startJson<{ url: string; vkey: string }>([
          'tlog',
          'witness-serve',
          '--name',
          w.name,
          '--key',
          w.file,
          '--state',
          join(tmp('wstate'), 'w.json'),
          '--origin',
          first.origin,
          '--public-key',
          pub,
          '--log-name',
          '127.0.0.1',
        ]);
      const wa = await witness(A);
      const wb = await witness(B);
      expect(wa.vkey).toBe(A.vkey);

      // C answers 200 with a line under its configured name and key ID, not signed by its key: must be dropped.
      const forger = await startForgingWitness(C.name, cosignatureKeyId(C.name, parseWitnessVkey(C.vkey).publicKey));
      fakes.push(forger);
      const cUrl = forger.url;
      // D accepts the request and never answers.
      const hanger = await startHangingWitness();
      fakes.push(hanger);
      const dUrl = hanger.url;
      const D = witnessKeyFile('witness.example/hung');

      const log = await startJson<{ url: string }>([
        'tlog',
        'serve',
        '--data',
        data,
        '--witness-url',
        wa.url,
        '--witness-vkey',
        A.vkey,
        '--witness-url',
        wb.url,
        '--witness-vkey',
        B.vkey,
        '--witness-url',
        cUrl,
        '--witness-vkey',
        C.vkey,
        '--witness-url',
        dUrl,
        '--witness-vkey',
        D.vkey,
      ]);
      await logSomething(log.url, 'one');
      await logSomething(log.url, 'two');
      // Appends completed although D has not answered a single request.
      expect(hanger.requests()).toBeGreaterThan(0);
      const cosigned = await checkpointWith(log.url, 2, [A.vkey, B.vkey]);
      expect(forger.requests()).toBeGreaterThan(0);
      expect(cosigned).not.toContain(C.name);
      expect(readFileSync(join(data, 'tiles', 'checkpoint'), 'utf8')).toBe(cosigned);

      const monitor = (min: string) =>
        runCli([
          'tlog',
          'monitor',
          '--tiles',
          '--url',
          `${log.url}/api/v2`,
          '--public-key',
          pub,
          '--log-name',
          '127.0.0.1',
          '--state',
          join(tmp('mstate'), 'm.json'),
          '--witness',
          A.vkey,
          '--witness',
          B.vkey,
          '--min-witnesses',
          min,
          '--json',
        ]);
      const both = await monitor('2');
      expect(both.code, both.stdout + both.stderr).toBe(0);
      expect(JSON.parse(both.stdout)).toMatchObject({ ok: true, treeSize: 2 });

      // B goes down: appends still succeed, the new checkpoint carries A's cosignature only.
      await wb.stop();
      await logSomething(log.url, 'three');
      const onlyA = await checkpointWith(log.url, 3, [A.vkey]);
      expect(verifyCosignatures(onlyA, [parseWitnessVkey(B.vkey)])).toEqual([]);
      const two = await monitor('2');
      expect(two.code, two.stdout).toBe(1);
      expect(JSON.parse(two.stdout).error.message).toMatch(/1 valid witness cosignature/);
      const one = await monitor('1');
      expect(one.code, one.stdout + one.stderr).toBe(0);
      expect(JSON.parse(one.stdout)).toMatchObject({ ok: true, treeSize: 3 });
    },
  );
});
