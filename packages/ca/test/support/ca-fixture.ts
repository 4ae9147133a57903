import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function makeTmpDir(prefix: string, registry: string[]): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  registry.push(d);
  return d;
}

export interface RequestKey {
  privateKey: KeyObject;
  publicPem: string;
}

export function p256(): RequestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string };
}

/** Fulcio's PoP: sign the identity string (SHA-256 for ECDSA/RSA, pure for Ed25519). */
export function proofOfPossession(key: RequestKey, identity: string): string {
  const alg = key.privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return sign(alg, Buffer.from(identity), key.privateKey).toString('base64');
}

export function signingCertBody(token: string, key: RequestKey, identity: string): Record<string, unknown> {
  return {
    credentials: { oidcIdentityToken: token },
    publicKeyRequest: {
      publicKey: { algorithm: 'ECDSA', content: key.publicPem },
      proofOfPossession: proofOfPossession(key, identity),
    },
  };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/v2/signingCert`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export function chainOf(json: Record<string, unknown>): string[] {
  const sct = json.signedCertificateDetachedSct as { chain: { certificates: string[] } };
  return sct.chain.certificates;
}
