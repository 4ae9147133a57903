import { describe, expect, it } from 'vitest';
import { TlogError } from '../src/errors.js';
import { entryPreparation } from '../src/types/index.js';
import { prepareAsync, prepareSync, type Preparation } from '../src/types/preparation.js';
import { v2Preparation } from '../src/types/v2.js';
import { VerifierPool } from '../src/verify-pool.js';
import { b64, dsseEntry, dsseV2Request, hashedRekord, makeKeySigner } from './helpers.js';

// The log's event loop prepares proposals with their signature checks on the thread pool (prepareAsync); verifier
// threads, imports and tests run the same preparations synchronously. Both must give the same verdict and entry.

async function outcome(run: () => unknown): Promise<unknown> {
  try {
    return { entry: await run() };
  } catch (err) {
    return { code: err instanceof TlogError ? err.code : 'not a TlogError', message: (err as Error).message };
  }
}

const a = makeKeySigner();
const b = makeKeySigner();
const ed = makeKeySigner('ed25519');
const rsa = makeKeySigner('rsa');
const p384 = makeKeySigner('P-384');
const tampered = dsseEntry([a], 'tampered');
const envelope = JSON.parse(tampered.spec.proposedContent.envelope) as { payload: string };
envelope.payload = b64('something else');
tampered.spec.proposedContent.envelope = JSON.stringify(envelope);

const wrongKey = hashedRekord(a, 'nine');
wrongKey.spec.signature.publicKey.content = b64(b.pem);

const v1: Array<[string, unknown, string | undefined]> = [
  ['v1 dsse, one verifier', dsseEntry([a], 'one'), undefined],
  ['dsse, the second of two verifiers matches', dsseEntry([a], 'two', [b, a]), undefined],
  ['dsse, two signatures', dsseEntry([a, b], 'three'), undefined],
  ['dsse, Ed25519', dsseEntry([ed], 'four'), undefined],
  ['dsse, RSA', dsseEntry([rsa], 'five'), undefined],
  ['dsse, wrong verifier', dsseEntry([a], 'six', [b]), 'TLOG_SIGNATURE_INVALID'],
  ['dsse, one of two signatures by nobody listed', dsseEntry([a, b], 'seven', [a]), 'TLOG_SIGNATURE_INVALID'],
  ['dsse, payload changed after signing', tampered, 'TLOG_SIGNATURE_INVALID'],
  ['hashedrekord', hashedRekord(a, Buffer.from('eight')), undefined],
  ['hashedrekord, wrong key', wrongKey, 'TLOG_SIGNATURE_INVALID'],
  ['not an object', 'nope', 'TLOG_INVALID_ENTRY'],
];
const v2: Array<[string, unknown, string | undefined]> = [
  ['v2 dsse P-256', dsseV2Request(a, a, 'PKIX_ECDSA_P256_SHA_256', 'sha256', 'ten'), undefined],
  ['v2 dsse P-384', dsseV2Request(p384, p384, 'PKIX_ECDSA_P384_SHA_384', 'sha384', 'eleven'), undefined],
  ['v2 dsse wrong key', dsseV2Request(b, a, 'PKIX_ECDSA_P256_SHA_256', 'sha256', 'twelve'), 'TLOG_SIGNATURE_INVALID'],
  ['v2 empty request', {}, 'TLOG_INVALID_ENTRY'],
];

describe('a preparation gives the same verdict and entry synchronously and with checks on the thread pool', () => {
  const table: Array<[string, () => Preparation, string | undefined]> = [
    ...v1.map(([name, p, code]): [string, () => Preparation, string | undefined] => [
      name,
      () => entryPreparation(p),
      code,
    ]),
    ...v2.map(([name, r, code]): [string, () => Preparation, string | undefined] => [
      name,
      () => v2Preparation(r),
      code,
    ]),
  ];
  it.each(table)('%s', async (_name, preparation, code) => {
    const sync = await outcome(() => prepareSync(preparation()));
    const async = await outcome(() => prepareAsync(preparation()));
    expect(async).toEqual(sync);
    if (code) expect(sync).toMatchObject({ code });
    else expect(sync).toHaveProperty('entry.leafHash');
  });

  it('the inline pool (the log default) checks on the thread pool and rejects, never throws, on bad input', async () => {
    const pool = new VerifierPool(0);
    const proposal = dsseEntry([a], 'pool');
    expect(await pool.prepare(proposal)).toEqual(prepareSync(entryPreparation(proposal)));
    const bad = pool.prepare(dsseEntry([a], 'pool bad', [b]));
    await expect(bad).rejects.toMatchObject({ code: 'TLOG_SIGNATURE_INVALID' });
    await expect(pool.prepare(null, 'v2')).rejects.toMatchObject({ code: 'TLOG_INVALID_ENTRY' });
  });
});
