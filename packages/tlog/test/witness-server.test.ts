/** The C2SP tlog-witness endpoint's answers: cosign, 409 with its size, 404, 403, 422, state kept across restarts. */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatCheckpoint, signNote } from '../src/checkpoint.js';
import { hashChildren, hashLeaf } from '../src/merkle.js';
import { parseWitnessVkey, verifyCosignatures, witnessVkey } from '../src/note.js';
import { LogSigner } from '../src/signing-key.js';
import { formatAddCheckpoint } from '../src/witness/protocol.js';
import { startWitnessServer, type RunningWitness } from '../src/witness/server.js';

const logKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const signer = new LogSigner(logKey);
const stranger = new LogSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const witnessKey = generateKeyPairSync('ed25519');
const NAME = 'witness.example/t';
const vkey = parseWitnessVkey(witnessVkey(NAME, witnessKey.publicKey));
const ORIGIN = 'log.example - 1';
const [l0, l1, l2] = ['a', 'b', 'c'].map((s) => hashLeaf(Buffer.from(s))) as [Buffer, Buffer, Buffer];
const roots: Record<number, Buffer> = { 1: l0, 2: hashChildren(l0, l1), 3: hashChildren(hashChildren(l0, l1), l2) };
const cp = (size: number, origin = ORIGIN, by = signer) =>
  signNote(formatCheckpoint({ origin, size, rootHash: roots[size]! }), 'log.example', by);

const dir = mkdtempSync(join(tmpdir(), 'airlock-witness-'));
const running: RunningWitness[] = [];
afterAll(async () => {
  for (const w of running) await w.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<RunningWitness> {
  const w = await startWitnessServer({
    name: NAME,
    key: witnessKey.privateKey,
    stateFile: join(dir, 'state.json'),
    logs: [{ origin: ORIGIN, publicKeyPem: signer.publicKeyPem, keyName: 'log.example' }],
  });
  running.push(w);
  return w;
}

async function add(w: RunningWitness, oldSize: number, proof: Buffer[], checkpoint: string) {
  const res = await fetch(`${w.url}/add-checkpoint`, {
    method: 'POST',
    body: formatAddCheckpoint({ oldSize, proof, checkpoint }),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

describe('tlog-witness add-checkpoint', () => {
  it('cosigns consistent checkpoints and answers the protocol errors', async () => {
    const w = await start();
    const first = await add(w, 0, [], cp(1));
    expect(first.status).toBe(200);
    expect(verifyCosignatures(cp(1) + first.body, [vkey]).map((c) => c.name)).toEqual([NAME]);

    const stale = await add(w, 0, [], cp(2));
    expect(stale).toMatchObject({ status: 409, type: 'text/x.tlog.size', body: '1\n' });
    expect((await add(w, 1, [l1], cp(2))).status).toBe(200);

    expect((await add(w, 2, [l0], cp(3))).status).toBe(422); // proof for another tree
    expect((await add(w, 2, [l2], cp(3, 'other.example - 1'))).status).toBe(404);
    expect((await add(w, 2, [l2], cp(3, ORIGIN, stranger))).status).toBe(403);
    expect((await add(w, 5, [], cp(3))).status).toBe(400); // old beyond the checkpoint
    expect((await add(w, 2, [l2], cp(3))).status).toBe(200);
    await w.close();

    const again = await start();
    expect(await add(again, 0, [], cp(3))).toMatchObject({ status: 409, body: '3\n' });
  });
});
