/**
 * What AirlockSigner writes is what a strict verifier insists on: a message signature's digest is the artifact's
 * SHA-256, and the log entry body names the very key or certificate the bundle is verified with. Real plane.
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SerializedBundle } from '@sigstore/bundle';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner, KeySigner } from '../src/index.js';

const DATA = Buffer.from('signed by airlock\n');
let plane: RunningTrustPlane;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sign-bundles-'));
  plane = await startTrustPlane({ dataDir: dir });
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Body {
  kind: string;
  spec: {
    data?: { hash: { algorithm: string; value: string } };
    signature?: { publicKey: { content: string } };
    signatures?: Array<{ verifier: string }>;
  };
}

function logBody(b: SerializedBundle): Body {
  return JSON.parse(Buffer.from(b.verificationMaterial.tlogEntries[0]!.canonicalizedBody, 'base64').toString());
}

const endpoints = (): { fulcioUrl: string; rekorUrl: string } => ({
  fulcioUrl: plane.endpoints.caUrl,
  rekorUrl: plane.endpoints.tlogUrl,
});

describe('AirlockSigner bundles', () => {
  it('key-signed: messageDigest is the artifact SHA-256 and the log entry names the signing key', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keySigner = new KeySigner(privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const signer = new AirlockSigner({ ...endpoints(), keySigner });
    const blob = await signer.signBlob(DATA);
    if (!('messageSignature' in blob) || !blob.messageSignature) throw new Error('expected a message signature');
    const sha = createHash('sha256').update(DATA).digest();
    expect(blob.messageSignature.messageDigest).toEqual({ algorithm: 'SHA2_256', digest: sha.toString('base64') });
    const body = logBody(blob);
    expect(body.spec.data?.hash).toEqual({ algorithm: 'sha256', value: sha.toString('hex') });
    const spki = (pem: string): Buffer => createPublicKey(pem).export({ type: 'spki', format: 'der' });
    expect(spki(Buffer.from(body.spec.signature!.publicKey.content, 'base64').toString())).toEqual(
      spki(keySigner.publicKeyPem),
    );
    const dsse = await signer.signEnvelope(Buffer.from('{}'), 'application/json');
    const verifiers = logBody(dsse).spec.signatures!.map((s) => spki(Buffer.from(s.verifier, 'base64').toString()));
    expect(verifiers).toEqual([spki(keySigner.publicKeyPem)]);
  });

  it('certificate-signed: the log entry names the certificate the bundle carries', async () => {
    const subject = `spiffe://${plane.endpoints.trustDomain}/ci/sign-test`;
    const signer = new AirlockSigner({ ...endpoints(), identity: () => plane.issueToken(subject) });
    const blob = await signer.signBlob(DATA);
    const vm = blob.verificationMaterial as { certificate?: { rawBytes: string } };
    const pem = Buffer.from(logBody(blob).spec.signature!.publicKey.content, 'base64').toString();
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    expect(der.toString('base64')).toBe(vm.certificate!.rawBytes);
  });
});
