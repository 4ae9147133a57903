/**
 * The embedded TSA against real clients: stock @sigstore/sign's TSA client (JSON request), `openssl ts -query`
 * (binary TimeStampReq), `openssl ts -reply -text` and `openssl ts -verify` with the served chain, and
 * @sigstore/core's RFC 3161 parser. Bad requests get 4xx with a code; the key file must be 0600.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TSAWitness } from '@sigstore/sign';
import { RFC3161Timestamp, X509Certificate, crypto as sigstoreCrypto } from '@sigstore/core';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SignedData } from '@peculiar/asn1-cms';
import { TimeStampResp, TSTInfo } from '@peculiar/asn1-tsp';
import { toolProblem, toolsAvailable } from '@airlock/testkit';
import {
  TSA_DIR,
  TSA_KEY_FILE,
  TsaError,
  loadOrCreateTsaMaterial,
  startTsaServer,
  type TsaServer,
} from '../src/index.js';

let dir: string;
let server: TsaServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-tsa-'));
  server = await startTsaServer({ dataDir: dir });
});

afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sha256 = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
const post = (body: string | Buffer, type: string): Promise<Response> =>
  fetch(`${server.url}/api/v1/timestamp`, { method: 'POST', headers: { 'content-type': type }, body });

/** The TSTInfo inside a DER TimeStampResp, parsed with the asn1 schemas. */
function tstInfoOf(der: Buffer): TSTInfo {
  const resp = AsnConvert.parse(der, TimeStampResp);
  const signed = AsnConvert.parse(resp.timeStampToken!.content, SignedData);
  return AsnConvert.parse(signed.encapContentInfo.eContent!.single!.buffer, TSTInfo);
}

describe('TSA HTTP API', () => {
  it('answers the JSON request stock @sigstore/sign sends with a token over sha256(signature) that verifies', async () => {
    const signature = Buffer.from('a signature the TSA witnesses');
    const witnessed = await new TSAWitness({ tsaBaseURL: server.url }).testify({
      $case: 'messageSignature',
      messageSignature: { signature, messageDigest: { algorithm: 0, digest: Buffer.alloc(32) } },
    });
    const der = Buffer.from(witnessed.rfc3161Timestamps[0]!.signedTimestamp);
    const ts = RFC3161Timestamp.parse(der);
    expect(ts.status).toBe(0n);
    const key = sigstoreCrypto.createPublicKey(
      Buffer.from(X509Certificate.parse(Buffer.from(server.chainDer[0]!)).publicKey),
    );
    ts.verify(signature, key);
    expect(() => ts.verify(Buffer.from('another signature'), key)).toThrow(/message imprint does not match/);
  });

  it('echoes the nonce and policy of a JSON request and answers 201 application/timestamp-reply', async () => {
    const res = await post(
      JSON.stringify({
        artifactHash: sha256('x').toString('base64'),
        hashAlgorithm: 'sha256',
        nonce: 123456789,
        tsaPolicyOID: '1.2.3.4',
        certificates: true,
      }),
      'application/json',
    );
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/timestamp-reply');
    const tst = tstInfoOf(Buffer.from(await res.arrayBuffer()));
    expect(Buffer.from(tst.nonce!).readUInt32BE(0)).toBe(123456789);
    expect(tst.policy).toBe('1.2.3.4');
  });

  it.each([
    [
      'SHA-1 (weak)',
      { artifactHash: sha256('x').subarray(0, 20).toString('base64'), hashAlgorithm: 'sha1' },
      400,
      'TSA_HASH_ALGORITHM',
    ],
    [
      'imprint of the wrong length',
      { artifactHash: Buffer.alloc(31).toString('base64'), hashAlgorithm: 'sha256' },
      400,
      'TSA_REQUEST_INVALID',
    ],
    [
      'unknown algorithm',
      { artifactHash: sha256('x').toString('base64'), hashAlgorithm: 'crc32' },
      400,
      'TSA_HASH_ALGORITHM',
    ],
    [
      'negative nonce',
      { artifactHash: sha256('x').toString('base64'), hashAlgorithm: 'sha256', nonce: -1 },
      400,
      'TSA_REQUEST_INVALID',
    ],
    ['not an object', [1, 2], 400, 'TSA_REQUEST_INVALID'],
  ])('refuses a JSON request with %s', async (_name, body, status, code) => {
    const res = await post(JSON.stringify(body), 'application/json');
    expect(res.status).toBe(status);
    expect(((await res.json()) as { code: string }).code).toBe(code);
  });

  it('refuses other media types (415) and non-DER queries (400)', async () => {
    const text = await post('x', 'text/plain');
    expect(text.status).toBe(415);
    expect(((await text.json()) as { code: string }).code).toBe('TSA_UNSUPPORTED_MEDIA_TYPE');
    const garbage = await post(Buffer.from('not der'), 'application/timestamp-query');
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { code: string }).code).toBe('TSA_REQUEST_INVALID');
  });

  it('serves its chain as PEM at /api/v1/timestamp/certchain, leaf (critical timeStamping EKU) first', async () => {
    const res = await fetch(`${server.url}/api/v1/timestamp/certchain`);
    expect(res.status).toBe(200);
    const pem = await res.text();
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const text = execFileSync('openssl', ['x509', '-noout', '-ext', 'extendedKeyUsage'], { input: pem }).toString();
    expect(text).toMatch(/X509v3 Extended Key Usage: critical\s+Time Stamping/);
  });
});

describe('TSA key file', () => {
  it('refuses a group/world-readable key (TSA_KEY_PERMISSIONS) and accepts it again at 0600', async () => {
    const d = mkdtempSync(join(tmpdir(), 'airlock-tsa-perm-'));
    try {
      await loadOrCreateTsaMaterial(d);
      const key = join(d, TSA_DIR, TSA_KEY_FILE);
      chmodSync(key, 0o644);
      const err = await loadOrCreateTsaMaterial(d).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TsaError);
      expect((err as TsaError).code).toBe('TSA_KEY_PERMISSIONS');
      chmodSync(key, 0o600);
      const again = await loadOrCreateTsaMaterial(d);
      expect(again.chain).toHaveLength(2);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

const opensslOk = toolsAvailable('TSA openssl ts checks', [toolProblem('openssl', ['version'])]);

describe.runIf(opensslOk)('openssl ts accepts the TimeStampResp', () => {
  it.each([
    ['with the certificate embedded (-cert)', ['-cert']],
    ['without certificates (the leaf given as -untrusted)', []],
  ])('openssl ts -reply -text and -verify: %s', async (_name, certFlag) => {
    const w = mkdtempSync(join(tmpdir(), 'airlock-tsa-openssl-'));
    try {
      writeFileSync(join(w, 'data'), 'timestamp me\n');
      execFileSync('openssl', [
        'ts',
        '-query',
        '-data',
        join(w, 'data'),
        '-sha256',
        ...certFlag,
        '-out',
        join(w, 'q.tsq'),
      ]);
      const res = await post(readFileSync(join(w, 'q.tsq')), 'application/timestamp-query');
      expect(res.status).toBe(201);
      writeFileSync(join(w, 'r.tsr'), Buffer.from(await res.arrayBuffer()));
      const chain = await (await fetch(`${server.url}/api/v1/timestamp/certchain`)).text();
      const [leaf, root] = chain.split(/(?<=-----END CERTIFICATE-----\n)/);
      writeFileSync(join(w, 'root.pem'), root!);
      writeFileSync(join(w, 'leaf.pem'), leaf!);
      const text = execFileSync('openssl', ['ts', '-reply', '-in', join(w, 'r.tsr'), '-text']).toString();
      expect(text).toMatch(/Status: Granted/);
      expect(text).toMatch(/Policy OID: 1\.3\.6\.1\.4\.1\.57264\.2/);
      const verify = (args: string[]): string =>
        execFileSync('openssl', ['ts', '-verify', '-in', join(w, 'r.tsr'), '-CAfile', join(w, 'root.pem'), ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }).toString();
      const untrusted = certFlag.length ? [] : ['-untrusted', join(w, 'leaf.pem')];
      expect(verify(['-queryfile', join(w, 'q.tsq'), ...untrusted])).toMatch(/Verification: OK/);
      expect(verify(['-data', join(w, 'data'), ...untrusted])).toMatch(/Verification: OK/);
      // The same reply against other data must fail: openssl really checks the imprint.
      writeFileSync(join(w, 'other'), 'something else\n');
      expect(() => verify(['-data', join(w, 'other'), ...untrusted])).toThrow();
    } finally {
      rmSync(w, { recursive: true, force: true });
    }
  });
});
