import { createHash, createPublicKey, generateKeyPairSync, KeyObject, sign, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { preAuthEncoding } from '@airlock/core';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface TestSigner {
  privateKey: KeyObject;
  /** PEM of what goes into entries: the certificate, or the SPKI public key. */
  pem: string;
  publicKeyPem: string;
}

/** A P-256 key with a self-signed certificate (the shape of a Fulcio leaf for the log's purposes). */
export async function makeCertSigner(cn = 'tlog-test'): Promise<TestSigner> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0102',
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    signingAlgorithm: alg,
    keys,
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  const privateKey = KeyObject.from(keys.privateKey);
  const publicKeyPem = KeyObject.from(keys.publicKey).export({ type: 'spki', format: 'pem' }).toString();
  return { privateKey, pem: cert.toString('pem'), publicKeyPem };
}

/** A bare key signer: entries carry the PEM SPKI. */
export function makeKeySigner(type: 'P-256' | 'P-384' | 'rsa' | 'ed25519' = 'P-256'): TestSigner {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: type });
  const publicKeyPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { privateKey: pair.privateKey, pem: publicKeyPem, publicKeyPem };
}

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** A Rekor v2 `hashedRekordRequestV002` (a P-256 key signer's raw SPKI as the verifier) signing `artifact`. */
export function hashedRekordV2Request(signer: TestSigner, artifact: string) {
  const data = Buffer.from(artifact);
  const rawBytes = Buffer.from(signer.publicKeyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64').toString('base64');
  return {
    hashedRekordRequestV002: {
      digest: createHash('sha256').update(data).digest('base64'),
      signature: {
        content: sign('sha256', data, signer.privateKey).toString('base64'),
        verifier: { publicKey: { rawBytes }, keyDetails: 'PKIX_ECDSA_P256_SHA_256' },
      },
    },
  };
}

/** A Rekor v2 dsseRequestV002 whose envelope `signer` signed (hashing the PAE with `hash`), naming `verifierOf`'s key. */
export function dsseV2Request(
  signer: TestSigner,
  verifierOf: TestSigner,
  keyDetails: string,
  hash: string,
  payload: string,
) {
  const type = 'application/vnd.in-toto+json';
  const pae = preAuthEncoding(type, Buffer.from(payload));
  const der = createPublicKey(verifierOf.publicKeyPem).export({ type: 'spki', format: 'der' });
  return {
    dsseRequestV002: {
      envelope: {
        payload: b64(payload),
        payloadType: type,
        signatures: [{ sig: b64(sign(hash, pae, signer.privateKey)), keyid: '' }],
      },
      verifiers: [{ publicKey: { rawBytes: b64(der) }, keyDetails }],
    },
  };
}

/** A proposed hashedrekord entry signing `artifact`. */
export function hashedRekord(
  signer: TestSigner,
  artifact: Buffer | string,
  opts: { alg?: 'sha256' | 'sha384' | 'sha512' } = {},
) {
  const alg = opts.alg ?? 'sha256';
  const data = Buffer.from(artifact);
  const digest = createHash(alg).update(data).digest('hex');
  const signature = sign(signer.privateKey.asymmetricKeyType === 'ed25519' ? null : alg, data, signer.privateKey);
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: alg, value: digest } },
      signature: { content: signature.toString('base64'), publicKey: { content: b64(signer.pem) } },
    },
  };
}

export function dsseEnvelope(
  signers: TestSigner[],
  payload: Buffer | string,
  payloadType = 'application/vnd.in-toto+json',
) {
  const body = Buffer.from(payload);
  const pae = preAuthEncoding(payloadType, body);
  return {
    payloadType,
    payload: body.toString('base64'),
    signatures: signers.map((s) => ({
      keyid: '',
      sig: sign(s.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', pae, s.privateKey).toString('base64'),
    })),
  };
}

/** A proposed dsse entry as sigstore-js sends it. */
export function dsseEntry(signers: TestSigner[], payload: Buffer | string, verifiers: TestSigner[] = signers) {
  const envelope = JSON.stringify(dsseEnvelope(signers, payload));
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: { proposedContent: { envelope, verifiers: verifiers.map((v) => b64(v.pem)) } },
  };
}

export function statement(name: string, content: string): string {
  return JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name, digest: { sha256: createHash('sha256').update(content).digest('hex') } }],
    predicateType: 'https://airlock.dev/test/v1',
    predicate: {},
  });
}

export function tempDir(prefix = 'airlock-tlog-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function postJson(
  url: string,
  body: unknown,
): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

export async function getJson(url: string): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(url);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** RFC 6962 MTH over leaf data, the textbook recursion (independent of src/merkle.ts). */
export function referenceRoot(leaves: Buffer[]): Buffer {
  const h = (...parts: Buffer[]) => parts.reduce((acc, p) => acc.update(p), createHash('sha256')).digest();
  const mth = (lo: number, hi: number): Buffer => {
    if (hi - lo === 0) return h();
    if (hi - lo === 1) return h(Buffer.from([0]), leaves[lo]!);
    let k = 1;
    while (k * 2 < hi - lo) k *= 2;
    return h(Buffer.from([1]), mth(lo, lo + k), mth(lo + k, hi));
  };
  return mth(0, leaves.length);
}
